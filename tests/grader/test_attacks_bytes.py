"""Floods of bytes from a kernel, graded in one batch beside honest students.

Every attacker answers both exercises right, then, after the tests, sends the worker more
than the grader keeps in a way the output budget once missed: widget and comm buffers, one
huge display message, a storm of tiny comm messages, a multipart message of many frames.
Each frame is capped before it is received (grader.run.kernel_client), everything received
counts against the output budget, and the worker's memory is limited
(grader.run.cluster.worker_memory_bytes). So each attacker's graded notebook and feedback
stay under the budget, their row says why their output was cut (or why the worker died),
the honest students get exactly their points, and the batch ends in bounded time.

The worker's and the coordinator's peak memory during the batch are measured (psutil) and
printed (`pytest -s`).
"""

import csv
import os
import subprocess
import sys
import threading
import time
import uuid

import corpus
import nbformat
import psutil
import pytest

from grader.labs.c2_w2 import LAB as lab
from grader.run.cluster import WORKER_DIED_TWICE, worker_memory_bytes
from grader.settings import Limits

NOTEBOOK = lab.notebook_name
OUTPUT_MB = 4
MARK = "NBGRADER_BYTES_ATTACK_BATCH"  # in every process of the batch: ours, not another's
BATCH_SECONDS = 900

pytestmark = pytest.mark.usefixtures("sandbox_required")

COMM_BUFFERS = """
from ipykernel.comm import Comm
for _ in range(20):  # 60 MB, each message under the frame cap: the budget stops it
    Comm(target_name='x', data={}, buffers=[b'0' * 3_000_000])
print('sent')
"""
ONE_HUGE_BUFFER = """
from ipykernel.comm import Comm
Comm(target_name='x', data={}, buffers=[b'0' * 60_000_000])  # one frame over the cap
print('sent')
"""
WIDGET_IMAGE = """
import ipywidgets
ipywidgets.Image(value=b'0' * 60_000_000, format='png')  # its state's buffer: 60 MB
print('sent')
"""
HUGE_DISPLAY = """
from IPython.display import display
display({'text/plain': 'y' * 100_000_000}, raw=True)
print('sent')
"""
MANY_COMMS = """
from ipykernel.comm import Comm
channel = Comm(target_name='x', data={})
for i in range(100_000):
    channel.send(data={'i': i})
print('sent')
"""
MANY_FRAMES = """
from ipykernel.comm import Comm
frame = b'0' * 5_000_000  # under the frame cap; 400 of them in one message: 2 GB
Comm(target_name='x', data={}, buffers=[frame] * 400)
print('sent')
"""


def _attacker(source):
    def build(release):
        notebook = corpus.answered(release, corpus.STABLE, corpus.MODEL)
        index = next(i for i, cell in enumerate(notebook.cells)
                     if cell.metadata.get("nbgrader", {}).get("grade_id") == "UNQ_C2_test")
        notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
        return notebook
    return build


def _honest(release):
    return corpus.answered(release, corpus.STABLE, corpus.MODEL)


CUT = "printed more than the grader keeps"
# The kernel's side of iopub (a PUB socket) drops what the worker does not read in time:
# how many of 100,000 tiny messages reach the worker, and so whether they pass the budget,
# depends on the machine's load.
CUT_OR_NOT = (CUT, "")
# student -> (build, status, points of each exercise, detail contains)
CLASS = {
    "honest-one": (_honest, "graded", "50", ""),
    "honest-two": (_honest, "graded", "50", ""),
    "attack-comm-buffers": (_attacker(COMM_BUFFERS), "graded", "50", CUT),
    "attack-one-huge-buffer": (_attacker(ONE_HUGE_BUFFER), "graded", "50", CUT),
    "attack-widget-image": (_attacker(WIDGET_IMAGE), "graded", "50", CUT),
    "attack-huge-display": (_attacker(HUGE_DISPLAY), "graded", "50", CUT),
    "attack-many-comms": (_attacker(MANY_COMMS), "graded", "50", CUT_OR_NOT),
    "attack-many-frames": (_attacker(MANY_FRAMES), "error", "0", WORKER_DIED_TWICE),
}
# Either outcome is right for this attacker. nbclient waits 4 s (its iopub_timeout) for a
# cell's IOPub messages once the kernel has replied: on a loaded machine the 2 GB message
# is still on its way then, the run goes on to its end and the kernel is stopped, and the
# worker never holds it (the attacker keeps the points of their right answers, with no
# "sent" printed); otherwise it kills its worker, twice. (Seen in a clean clone's run
# beside other suites: graded 50/50, the attack cell without output.)
NOT_RECEIVED = ("graded", "50", "")


class PeakMemory:
    """The largest resident memory of the coordinating process and of any Dask worker
    process it started (its kernel templates and kernels are not counted), sampled."""

    def __init__(self, pid):
        self.pid = pid
        self.coordinator_mb = 0.0
        self.workers_mb = {}  # pid -> its peak: a worker killed for memory is replaced
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.wait(0.05):
            try:
                coordinator = psutil.Process(self.pid)
                self.coordinator_mb = max(self.coordinator_mb, _rss_mb(coordinator))
                for worker in coordinator.children():
                    if "spawn_main" in " ".join(worker.cmdline()):  # Dask's worker processes
                        self.workers_mb[worker.pid] = max(self.workers_mb.get(worker.pid, 0),
                                                          _rss_mb(worker))
            except psutil.Error:
                continue

    def close(self):
        self._stop.set()
        self._thread.join()

    @property
    def worker_mb(self):
        return max(self.workers_mb.values(), default=0.0)


def _rss_mb(process):
    return process.memory_info().rss / 2**20


@pytest.fixture(scope="module")
def graded(released_lab, tmp_path_factory):
    release = nbformat.read(str(released_lab / NOTEBOOK), as_version=4)
    submissions = tmp_path_factory.mktemp("bytes-attacks") / "submissions"
    out = submissions.parent / "out"
    for student, (build, *_) in CLASS.items():
        path = submissions / student / NOTEBOOK
        path.parent.mkdir(parents=True)
        nbformat.write(build(release), str(path))
    batch = uuid.uuid4().hex
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
         "--workers", "2", "--output-mb", str(OUTPUT_MB), "--cell-timeout", "60",
         "--timeout", "240"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=lab.root,
        env={**os.environ, MARK: batch})
    memory = PeakMemory(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=BATCH_SECONDS)
    finally:
        memory.close()
        if process.poll() is None:
            process.kill()
    seconds = time.monotonic() - started
    _print_measures(out, seconds, memory)
    return {"out": out, "returncode": process.returncode, "stderr": stderr,
            "stdout": stdout, "seconds": seconds, "memory": memory,
            "left": _left_running(batch)}


def _print_measures(out, seconds, memory):
    """What `pytest -s` shows of the batch: its time, peak memory, each row and size."""
    limit_mb = worker_memory_bytes(Limits(output_mb=OUTPUT_MB)) / 2**20
    workers = ", ".join(f"{peak:.0f}" for peak in sorted(memory.workers_mb.values()))
    print(f"\nbytes attacks: {seconds:.0f} s; peak RSS: coordinator "
          f"{memory.coordinator_mb:.0f} MB, each worker process {workers} MB (limit "
          f"{limit_mb:.0f} MB)")
    rows = _rows(out) if (out / "grades.csv").exists() else {}
    for student, row in sorted(rows.items()):
        notebook = out / "nbgrader" / "autograded" / student / lab.assignment / NOTEBOOK
        feedback = out / "feedback" / student / NOTEBOOK.replace(".ipynb", ".html")
        sizes = [f"{path.stat().st_size / 10**6:.2f} MB" if path.exists() else "-"
                 for path in (notebook, feedback)]
        print(f"  {student}: {row['status']} {row['UNQ_C1']}/{row['UNQ_C2']}; notebook "
              f"{sizes[0]}, feedback {sizes[1]}; {row['detail'][:100]}")


def _left_running(batch, patience=10):
    deadline = time.monotonic() + patience
    while True:
        left = []
        for process in psutil.process_iter():
            try:
                if process.environ().get(MARK) == batch:
                    left.append(process.cmdline())
            except psutil.Error:
                continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _rows(out):
    with (out / "grades.csv").open(newline="") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


def test_the_batch_finishes_in_bounded_time_with_one_row_each(graded):
    assert graded["returncode"] == 0, graded["stderr"]
    assert sorted(_rows(graded["out"])) == sorted(CLASS)
    assert graded["seconds"] < BATCH_SECONDS
    assert graded["left"] == []


@pytest.mark.parametrize("student", sorted(CLASS))
def test_every_student_gets_exactly_their_points_and_the_reason(graded, student):
    row = _rows(graded["out"])[student]
    _, status, points, detail = CLASS[student]
    if student == "attack-many-frames" and row["status"] == NOT_RECEIVED[0]:
        status, points, detail = NOT_RECEIVED
    assert [row["UNQ_C1"], row["UNQ_C2"], row["status"]] == [points, points, status], row
    if detail == CUT_OR_NOT:
        assert row["detail"] in ("", "The notebook printed more than the grader keeps; the "
                                     "rest of its output was dropped."), row
    else:
        assert detail in row["detail"], row
    if student.startswith("honest"):
        assert row["detail"] == "", row


@pytest.mark.parametrize("student", sorted(s for s, spec in CLASS.items() if spec[1] == "graded"))
def test_what_is_kept_stays_under_the_budget(graded, student):
    out = graded["out"]
    notebook = out / "nbgrader" / "autograded" / student / lab.assignment / NOTEBOOK
    feedback = out / "feedback" / student / NOTEBOOK.replace(".ipynb", ".html")
    budget = OUTPUT_MB * 10**6
    # The given cells (their images included) weigh ~1 MB; the feedback page a little more.
    assert notebook.stat().st_size < budget + 2 * 10**6, notebook.stat().st_size
    assert feedback.stat().st_size < budget + 3 * 10**6, feedback.stat().st_size
    saved = nbformat.read(str(notebook), as_version=4)
    assert "widgets" not in saved.metadata


def test_the_workers_memory_stays_under_its_limit(graded):
    limit_mb = worker_memory_bytes(Limits(output_mb=OUTPUT_MB)) / 2**20
    # Sampled every 0.05 s: a worker being killed for memory may pass the limit briefly.
    assert 0 < graded["memory"].worker_mb < 1.5 * limit_mb
    assert 0 < graded["memory"].coordinator_mb < 1024
