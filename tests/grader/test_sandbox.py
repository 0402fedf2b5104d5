"""The sandbox's levels: confined where the machine allows, per-process limits where not."""

import csv
import json
import resource
import subprocess
import sys
import uuid

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


@pytest.mark.usefixtures("sandbox_required")
def test_with_the_sandbox_a_kernel_is_confined(template, support_dir):
    (report,) = _run(template, support_dir, Limits(cell_timeout=30), REPORT)
    facts = json.loads(report)
    assert facts["uid"] >= isolation.FIRST_UID
    assert facts["cwd"] == isolation.LAB_DIR
    assert (facts["seed"], facts["execution"]) == (None, "autograde")


def test_an_outcome_carries_where_its_seconds_went(support_dir):
    notebook = new_notebook(cells=[new_code_cell("x = 1"),
                                   new_code_cell("total = sum(range(3 * 10**7))")])
    fresh = KernelTemplate()  # its import is the first run's, and only the first's
    try:
        first, second = (run_notebook(notebook, support_dir=support_dir,
                                      notebook_name="lab.ipynb", kernel_template=fresh,
                                      limits=Limits(cell_timeout=60)).stages
                         for _ in range(2))
    finally:
        fresh.close()
    for stage in ("submission folder", "executor and cgroup", "fork + confinement",
                  "kernel handshake", "cell 00", "cell 01", "kernel stop", "output limits",
                  "submission folder removal"):
        assert first[stage]["count"] == second[stage]["count"] == 1, stage
    assert first["template import"]["count"] == 1 and first["template import"]["cpu"] > 0
    assert "template import" not in second
    # The cell's CPU is the kernel's, read from /proc: the sum takes a good part of a second.
    assert first["cell 01"]["cpu"] > 0.1 and first["cell 01"]["cpu"] > first["cell 00"]["cpu"]
    assert json.loads(json.dumps(first)) == first


def test_kernel_environment_keeps_no_secrets():
    environment = isolation.kernel_environment({
        "PATH": "/usr/bin", "PGPASSWORD": "secret", "AWS_SECRET_ACCESS_KEY": "k",
        "GRADER_HIDDEN_SEED": "5", "NBGRADER_EXECUTION": "autograde", "JPY_SESSION_NAME": "x",
        "HOME": "/root", "TMPDIR": "/var/tmp/grader"})
    assert (environment["HOME"], environment["TMPDIR"]) == (isolation.HOME, "/tmp")
    assert "PGPASSWORD" not in environment and "AWS_SECRET_ACCESS_KEY" not in environment
    # The hidden inputs' seed reaches a kernel only inside its capture, never its environment.
    assert "GRADER_HIDDEN_SEED" not in environment
    assert environment["NBGRADER_EXECUTION"] == "autograde"
    unconfined = isolation.kernel_environment({"PGPASSWORD": "secret", "HOME": "/root",
                                               "TMPDIR": "/var/tmp/grader"}, scratch="/s/lab")
    assert unconfined == {"HOME": "/s/lab", "TMPDIR": "/s/lab",
                          "MPLCONFIGDIR": "/s/lab/matplotlib"}


@pytest.mark.usefixtures("sandbox_required")
def test_a_sandbox_that_cannot_be_made_is_that_submissions_error(template, tmp_path):
    broken = isolation.Confinement(mount_point=str(tmp_path / "missing"),
                                   lab_source=str(tmp_path))
    notebook = nbformat.from_dict(new_notebook(cells=[new_code_cell("print('hello')")]))
    outcome = execute(notebook, workdir=tmp_path, cell_timeout=10,
                      timeout=60, kernel_template=template, confinement=broken)
    assert outcome.end is RunEnd.SANDBOX_FAILED
    assert outcome.reason.startswith("the sandbox could not be set up"), outcome.reason
    assert "mount" in outcome.reason


CONFINED_ENVIRONMENT = """
import ctypes, json, os, tempfile
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/self/environ is its own again
with open("/proc/self/environ", "rb") as file:
    block = file.read().decode(errors="replace")
print(json.dumps({"block": block, "environ": dict(os.environ), "tmp": tempfile.gettempdir(),
                  "home": os.path.expanduser("~"), "cwd": os.getcwd()}))
"""


@pytest.mark.usefixtures("sandbox_required")
def test_a_confined_kernel_sees_nothing_of_the_graders_environment(monkeypatch, support_dir,
                                                                   tmp_path):
    # The grader's environment holds a secret, and a TMPDIR and HOME that do not exist in
    # the sandbox: the template is started from it, and every kernel is a copy of the
    # template, whose environment block /proc/self/environ shows.
    token = uuid.uuid4().hex
    for name, value in (("GRADER_TEST_SECRET_TOKEN", token), ("TMPDIR", str(tmp_path)),
                        ("HOME", str(tmp_path))):
        monkeypatch.setenv(name, value)
    template = KernelTemplate()
    try:
        (printed,) = _run(template, support_dir, Limits(cell_timeout=30), CONFINED_ENVIRONMENT)
    finally:
        template.close()
    assert token not in printed and str(tmp_path) not in printed
    facts = json.loads(printed)
    block = [entry.split("=", 1)[0] for entry in facts["block"].split("\0") if entry]
    assert [name for name in block if not _allowed(name)] == ["PYTHONPATH"]
    assert (facts["tmp"], facts["home"], facts["cwd"]) == ("/tmp", isolation.HOME,
                                                          isolation.LAB_DIR)
    assert facts["environ"]["MPLCONFIGDIR"] == "/tmp/matplotlib"


def _allowed(name):
    return name in isolation.KEPT_ENVIRONMENT or name.startswith(isolation.KEPT_PREFIXES)


SOCKET_DIRECTORY = """
import errno, json, os
written = 0
try:
    with open("/run/kernel/ballast", "wb") as file:
        for _ in range(64):
            file.write(b"x" * 2**20)
            file.flush()
            written += 2**20
except OSError as error:
    full = errno.errorcode[error.errno]
os.remove("/run/kernel/ballast")
os.symlink("/etc/hostname", "/run/kernel/link")
try:
    open("/run/kernel/link").read()
    followed = True
except OSError as error:
    followed = errno.errorcode[error.errno]
print(json.dumps({"written": written, "full": full, "followed": followed,
                  "sockets": sorted(os.listdir("/run/kernel"))}))
"""


@pytest.mark.usefixtures("sandbox_required")
def test_the_socket_directory_is_small_and_follows_no_links(template, support_dir):
    (printed,) = _run(template, support_dir, Limits(cell_timeout=30), SOCKET_DIRECTORY)
    facts = json.loads(printed)
    assert facts["full"] == "ENOSPC"
    assert facts["written"] <= isolation.SOCKET_DIR_MB * 2**20
    assert facts["followed"] == "ELOOP"  # nosymfollow: for the worker outside, too
    assert "connection.json" in facts["sockets"] and len(facts["sockets"]) == 7


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
        rows = list(csv.DictReader(file))
    assert [row["score"] for row in rows] == ["100", "100"], [
        (row["status"], row["detail"]) for row in rows]
    facts = json.loads((out / "run.json").read_text())
    assert facts["sandbox"] == OFF.level
    assert facts["hidden_inputs"] == "a fresh random 128-bit secret per graded submission"
