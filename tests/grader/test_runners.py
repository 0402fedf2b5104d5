"""Batches through the runner seam (grader.run.runner), in the library's `autograde`:

- the subprocess runner, end to end on a right and a wrong corpus notebook, gives the
  golden grades the sandbox batch gives (tests/grader/test_autograde.py checks those);
- recorded outcomes (CannedRunner) stand in for kernels where kernels prove nothing: a
  batch run again resumes, `regrade` grades everyone again, a student without an outcome
  costs only that student, and the run says what confined the kernels as they said.

The results course is copied from the session's (tests/grader/conftest.py), not made by
nbgrader for each OUT.
"""

import csv
import json
import shutil

import corpus
import pytest

from grader.labs.c2_w2 import LAB as lab
from grader.pipeline import autograde
from grader.publish.batch_profile import PROFILE_JSON
from grader.records import KernelProtection, RunEnd, RunOutcome, unreached
from grader.run.runner import CannedRunner
from grader.run.subprocess_runner import TRUSTED_ONLY, SubprocessRunner
from grader.settings import Limits

pytestmark = [pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
              pytest.mark.usefixtures("copy_results_course")]
RIGHT, WRONG = "ok-loop-softmax-input-model", "wrong-softmax-unnormalised"
COLUMNS = ["UNQ_C1", "UNQ_C2", "score", "max_score", "status"]
EXERCISES = [exercise.id for exercise in lab.exercises]
CONFINED = KernelProtection(namespaces=True, cgroups=True, syscall_policy=True)


def _class(class_dir, folder, students):
    for student in students:
        shutil.copytree(class_dir / student, folder / student)
    return folder


def _rows(out):
    with (out / "grades.csv").open(newline="") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


def _ended(end, protection=CONFINED):
    return RunOutcome({exercise: unreached(exercise, end) for exercise in EXERCISES}, end,
                      protection=protection)


# --- The subprocess runner, end to end ------------------------------------------------------

def test_the_subprocess_runner_gives_the_sandboxs_verdicts(class_dir, tmp_path):
    submissions = _class(class_dir, tmp_path / "submissions", [RIGHT, WRONG])
    batch = autograde(submissions=submissions, out=tmp_path / "out", lab=lab, workers=1,
                      limits=Limits(cell_timeout=30), runner=SubprocessRunner())
    rows, golden = _rows(tmp_path / "out"), corpus.expected_grades()
    for student in (RIGHT, WRONG):
        assert [rows[student][k] for k in COLUMNS] == [golden[student][k] for k in COLUMNS]
        assert golden[student]["detail_contains"] in rows[student]["detail"]
    assert batch.sandbox == "time limits only" and TRUSTED_ONLY in batch.warnings
    stages = _profile(tmp_path / "out")["stages"]
    workers = stages["workers"]  # the pages are rendered on the worker
    assert workers["feedback renderer start"]["count"] == 1
    assert workers["feedback page render"]["cpu"] > 0
    for stage in ("kernel handshake", "capture", "kernel stop", "notebook rebuild"):
        assert workers[stage]["count"] >= 2, stage  # one per submission, a capture each
    assert any(stage.startswith("cell ") and numbers["cpu"] > 0
               for stage, numbers in workers.items())


def _profile(out):
    return json.loads((out / PROFILE_JSON).read_text())


# --- Recorded outcomes ----------------------------------------------------------------------

STUDENTS = [RIGHT, WRONG, "wrong-model-units", "invalid-truncated"]
RECORDED = {RIGHT: _ended(RunEnd.FINISHED), WRONG: _ended(RunEnd.TIMED_OUT),
            "wrong-model-units": _ended(RunEnd.KERNEL_DIED, KernelProtection(namespaces=True))}


@pytest.fixture
def some_class(class_dir, tmp_path):
    return _class(class_dir, tmp_path / "submissions", STUDENTS)


def _canned(submissions, out, **options):
    return autograde(submissions=submissions, out=out, lab=lab, workers=1,
                     runner=CannedRunner(RECORDED), **options)


def test_out_holds_the_batchs_profile(some_class, tmp_path):
    batch = _canned(some_class, tmp_path / "out")
    profile = _profile(tmp_path / "out")
    # Each file goes to a worker, which reads it: the truncated one is found there
    sent, graded = len(STUDENTS), len(STUDENTS) - 1
    assert (profile["submissions"], profile["workers"]) == (len(batch.graded), 1)
    assert len(profile["result_seconds"]) == sent
    coordinator = profile["stages"]["coordinator"]
    for stage in ("intake", "read", "secret", "cluster start", "lab on the workers",
                  "waiting for workers", "graded notebook", "feedback page",
                  "journal record", "gradebook row", "cluster stop", "report",
                  "grades.csv + verdicts.json"):
        assert coordinator[stage]["wall"] > 0, stage
    assert coordinator["secret"]["count"] == sent
    assert coordinator["journal record"]["count"] == len(STUDENTS)
    # Recorded outcomes carry no stages of a kernel: the worker's reports to Dask, and the
    # reading, preparing, judging and publishing done there (grader.publish.on_worker).
    workers = profile["stages"]["workers"]
    for stage, count in (("dask task reports", sent), ("read + prepare", sent),
                         ("secret + hidden inputs", graded), ("judge", graded),
                         ("graded notebook", graded), ("feedback page", graded)):
        assert workers[stage]["count"] == count, stage
    assert not {"judge", "read + prepare"} & set(coordinator)


def test_a_batch_of_recorded_outcomes_run_again_resumes_and_regrade_grades_all(
        some_class, tmp_path):
    out = tmp_path / "out"
    first = _canned(some_class, out)
    assert first.graded == sorted(STUDENTS)
    rows = _rows(out)
    assert rows[WRONG]["status"] == "timeout" and rows["invalid-truncated"]["status"] \
        == "invalid"
    before = (out / "grades.csv").read_text()
    again = _canned(some_class, out)  # an error row (its kernel died) is graded again
    assert again.graded == ["wrong-model-units"] \
        and again.kept == sorted(set(STUDENTS) - {"wrong-model-units"})
    assert (out / "grades.csv").read_text() == before
    regraded = _canned(some_class, out, regrade=True)
    assert regraded.graded == sorted(STUDENTS)
    assert (out / "grades.csv").read_text() == before


def test_the_run_says_what_confined_the_kernels_from_their_typed_protection(some_class,
                                                                            tmp_path):
    batch = _canned(some_class, tmp_path / "out")
    assert batch.sandbox == "namespaces (1 submission), namespaces+cgroups (2 submissions)"
    assert any(warning.startswith("1 submission ran without a cgroup")
               for warning in batch.warnings)


def test_a_submission_the_runner_fails_costs_only_that_student(some_class, tmp_path):
    out = tmp_path / "out"
    autograde(submissions=some_class, out=out, lab=lab, workers=1,
              runner=CannedRunner({RIGHT: RECORDED[RIGHT]}))
    rows = _rows(out)
    assert rows[RIGHT]["status"] == "graded"
    assert rows[WRONG]["status"] == "error" and rows["wrong-model-units"]["status"] == "error"
