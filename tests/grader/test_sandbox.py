"""The sandbox's levels: confined where the machine allows, per-process limits where not."""

import csv
import json
import resource
import subprocess
import sys

import corpus
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.labs.c2_w2 import LAB as lab
from grader.records import RunEnd
from grader.run import isolation
from grader.run.execution import execute
from grader.run.sandbox import OFF, Limits, fallback_rlimits, protection, run_notebook
from grader.run.warm_kernels import KernelTemplate

REPORT = """
import json, os, resource
print(json.dumps({"uid": os.getuid(), "cwd": os.getcwd(),
                  "address_space": resource.getrlimit(resource.RLIMIT_AS)[0],
                  "file_size": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
                  "seed": os.environ.get("GRADER_HIDDEN_SEED"),
                  "execution": os.environ.get("NBGRADER_EXECUTION")}))
"""


@pytest.fixture(scope="module")
def support_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("support")


@pytest.fixture(scope="module")
def template():
    template = KernelTemplate()
    yield template
    template.close()


def _run(template, support_dir, limits, *sources):
    notebook = new_notebook(cells=[new_code_cell(source) for source in sources])
    outcome = run_notebook(notebook, support_dir=support_dir, notebook_name="lab.ipynb",
                           limits=limits, kernel_template=template)
    return [_printed(cell) for cell in outcome.notebook["cells"]]


def _printed(cell):
    return "".join(o.get("text", "") + o.get("ename", "") for o in cell["outputs"])


def test_off_says_what_is_missing():
    assert OFF.level == "time limits only"
    assert "--no-sandbox" in OFF.missing[0] and len(OFF.missing) == 1
    assert protection(enabled=False) is OFF


def test_fallback_limits_cover_what_is_missing():
    limits = Limits(memory_mb=300, disk_mb=50)
    assert fallback_rlimits(OFF, limits).memory_mb == 300
    assert fallback_rlimits(OFF, limits).file_mb == 50
    full = protection()
    if full.namespaces and full.cgroups:
        assert fallback_rlimits(full, limits).memory_mb is None
        assert fallback_rlimits(full, limits).file_mb is None


def test_without_the_sandbox_a_kernel_limits_itself(template, support_dir):
    limits = Limits(confine=False, memory_mb=1000, disk_mb=20, cell_timeout=30)
    report, memory, big_file = _run(
        template, support_dir, limits, REPORT, "x = bytearray(1500 * 2**20)",
        "open('big', 'wb').write(b'x' * (40 * 2**20))")
    facts = json.loads(report)
    assert facts["address_space"] != resource.RLIM_INFINITY
    assert facts["file_size"] == 20 * 2**20
    # The hidden inputs' seed is never in a kernel's environment: only in its capture.
    assert (facts["seed"], facts["execution"]) == (None, "autograde")
    assert "MemoryError" in memory
    assert "File too large" in big_file or "OSError" in big_file


@pytest.mark.skipif(not protection().namespaces, reason="needs Linux namespaces (root)")
def test_with_the_sandbox_a_kernel_is_confined(template, support_dir):
    (report,) = _run(template, support_dir, Limits(cell_timeout=30), REPORT)
    facts = json.loads(report)
    assert facts["uid"] >= isolation.FIRST_UID
    assert facts["cwd"] == isolation.LAB_DIR
    assert (facts["seed"], facts["execution"]) == (None, "autograde")


def test_kernel_environment_keeps_no_secrets():
    environment = isolation.kernel_environment({
        "PATH": "/usr/bin", "PGPASSWORD": "secret", "AWS_SECRET_ACCESS_KEY": "k",
        "GRADER_HIDDEN_SEED": "5", "NBGRADER_EXECUTION": "autograde", "JPY_SESSION_NAME": "x",
        "HOME": "/root"})
    assert environment["HOME"] == isolation.HOME
    assert "PGPASSWORD" not in environment and "AWS_SECRET_ACCESS_KEY" not in environment
    assert environment["GRADER_HIDDEN_SEED"] == "5"
    assert environment["NBGRADER_EXECUTION"] == "autograde"


@pytest.mark.skipif(not protection().namespaces, reason="needs Linux namespaces (root)")
def test_a_sandbox_that_cannot_be_made_is_that_submissions_error(template, tmp_path):
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    broken = isolation.Confinement(mount_point=str(tmp_path / "missing"),
                                   lab_source=str(tmp_path), socket_dir=str(sockets))
    notebook = nbformat.from_dict(new_notebook(cells=[new_code_cell("print('hello')")]))
    outcome = execute(notebook, workdir=tmp_path, cell_timeout=10,
                      timeout=60, kernel_template=template, confinement=broken)
    assert outcome.end is RunEnd.SANDBOX_FAILED
    assert outcome.reason.startswith("the sandbox could not be set up"), outcome.reason
    assert "mount" in outcome.reason


def test_no_sandbox_grades_and_says_once_what_is_missing(released_lab, tmp_path):
    release = nbformat.read(str(released_lab / lab.notebook_name), as_version=4)
    for student in ("one", "two"):
        path = tmp_path / "submissions" / student / lab.notebook_name
        path.parent.mkdir(parents=True)
        nbformat.write(corpus.answered(release, corpus.STABLE, corpus.MODEL), str(path))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(tmp_path / "submissions"), "--out",
         str(out), "--workers", "1", "--no-sandbox"],
        capture_output=True, text=True, cwd=lab.root, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("--no-sandbox") == 1, result.stderr
    with (out / "grades.csv").open(newline="") as file:
        assert [row["score"] for row in csv.DictReader(file)] == ["100", "100"]
    facts = json.loads((out / "run.json").read_text())
    assert facts["sandbox"] == OFF.level
    assert isinstance(facts["hidden_seed"], int)
