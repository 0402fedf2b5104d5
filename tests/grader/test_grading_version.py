"""The grading version: what can change a verdict, and nothing else."""

import pytest

import grader
from grader import cli
from grader.cli import summary
from grader.labs.c2_w2 import LAB as lab
from grader.pipeline import BatchResult, grading_version


def test_the_verdict_modules_are_as_when_the_grading_abi_was_decided():
    # A change to these modules may change verdicts. If it does, bump grader.GRADING_ABI
    # (every class is then offered a regrade); if not (a comment, a rename), record the new
    # digest: either way, set VERDICT_MODULES_DIGEST to the one printed here.
    now = grader.verdict_modules_digest()[:16]
    assert now == grader.VERDICT_MODULES_DIGEST, (
        f"the engine's verdict modules changed ({', '.join(grader.VERDICT_MODULES)}): bump "
        f"GRADING_ABI or update the recorded digest: VERDICT_MODULES_DIGEST = {now!r}")


def test_the_grading_version_is_the_abi_and_the_labs_digest():
    version = grading_version(lab)
    assert version.startswith(f"abi{grader.GRADING_ABI}/")
    assert grader.__version__ not in version  # a release that grades alike regrades no one


def test_the_engine_version_says_the_package_and_the_abi_only():
    assert grader.engine_version() == f"{grader.__version__}+abi{grader.GRADING_ABI}"


def test_version_prints_the_package_the_abi_and_the_labs_grading_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out == (f"c2w2-grader {grader.__version__}, grading ABI {grader.GRADING_ABI}; lab "
                   f"C2_W2 (grader.labs.c2_w2): grading version {grading_version(lab)}\n")


def test_the_summary_says_how_many_kept_results_another_version_made():
    batch = BatchResult(records=[], graded=[], kept=["a", "b"], missing=[], seconds=1.0,
                        workers=1, sandbox="", hidden_inputs="", other_version=["a", "b"])
    last = summary(batch, lab).splitlines()[-1]
    assert last.startswith("2 kept results were made by another grading version")
    assert last.endswith("--regrade grades them again")


class _Journal:
    def __init__(self, records):
        self.records = {record.student_id: record for record in records}

    def record_of(self, student_id):
        return self.records.get(student_id)


def _kept(regrade, version="abi1/new"):
    from types import SimpleNamespace

    from grader.pipeline import _Run

    saved = [SimpleNamespace(student_id=student, digest="same", version=made_by, status=status)
             for student, made_by, status in [("old", "abi1/old", "graded"),
                                              ("new", "abi1/new", "graded"),
                                              ("failed", "abi1/new", "error")]]
    run = _Run(lab=lab, limits=None, journal=_Journal(saved), batch=1, secret_key=None,
               regrade=regrade, version=version, on_progress=None)
    for student in ("old", "new", "failed", "late"):
        run._keep(SimpleNamespace(student_id=student, status="gradable", digest="same"))
    return run.kept, run.other_version


def test_another_grading_version_regrades_no_one_but_is_counted():
    assert _kept(regrade=False) == (["old", "new"], ["old"])


def test_regrade_grades_everyone_again():
    assert _kept(regrade=True) == ([], [])
