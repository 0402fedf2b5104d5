"""Attacks on the machine, graded in one batch beside honest students.

Each attacker answers both exercises right, then, in a cell after the tests and only when
the notebook knows it is being graded (NBGRADER_EXECUTION, as nbgrader sets it), tries to
read or write what is not theirs, reach the network, kill other processes, escape the
sandbox or exhaust the machine, and prints a report of what worked. The sandbox
(grader.run.isolation, grader.run.cgroups) must make every attempt fail, or stop the kernel, while
the honest students beside them get exactly their points.

Needs what the sandbox needs: root, Linux namespaces and cgroups (CI has them). Where
they are missing these tests fail, unless GRADER_TESTS_WITHOUT_SANDBOX is set (conftest).

The batch runs with a TMPDIR of its own and a secret in its environment, as a grader on a
shared server or under systemd would: the honest rows must still be exact.
"""

import csv
import json
import os
import socket
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
from grader.run import isolation

NOTEBOOK = lab.notebook_name
MEMORY_MB = 1536
# In the batch's environment, so that every process it starts carries it; NBGRADER_ variables
# are among the few a confined kernel keeps.
MARK = "NBGRADER_SANDBOX_ATTACK_BATCH"
REPORT = "ATTACK-REPORT"
# In the batch's environment too, and on no allow-list: no kernel may see it.
SECRET_VARIABLE = "GRADER_TEST_SECRET_TOKEN"
EITHER = "graded or error"  # grading may fail on a malformed message: no points gained

pytestmark = pytest.mark.usefixtures("sandbox_required")

GATE = """
import json, os, sys
_report = {"attempted": os.environ.get("NBGRADER_EXECUTION") == "autograde"}
def _try(name, action):
    try:
        _report[name] = ["worked", repr(action())[:200]]
    except BaseException as error:
        _report[name] = ["failed", type(error).__name__]
"""
END = f'\nprint("{REPORT}", json.dumps(_report))\n'

READ = GATE + """
def _walk():
    skip = ("/proc", "/sys", "/usr", "/lib", "/lib64", "/dev", "/etc", "/bin", "/sbin",
            os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix))
    found = []
    for top, dirs, files in os.walk("/"):
        if top.startswith(skip):
            dirs[:] = []
            continue
        found += [os.path.join(top, name) for name in files
                  if name.endswith((".ipynb", ".db", ".csv", ".html", ".json"))]
    return found
if _report["attempted"]:
    import sys
    _report["found"] = _walk()
    _try("source notebook", lambda: open(SOURCE).read(100))
    _try("other student", lambda: open(OTHER).read(100))
    _try("grading output", lambda: os.listdir(OUT))
    _try("grader's code", lambda: open(LAB_ROOT + "/grader/verdicts.py").read(100))
    _try("lab folder", lambda: [name for name in os.listdir(LAB_ROOT) if name != ".venv"]
                               or 1 / 0)  # the virtualenv's folder is there, read-only
    _try("other processes", lambda: [p for p in os.listdir("/proc")
                                     if p.isdigit() and int(p) != os.getpid()] or 1 / 0)
    _try("init's environment", lambda: open("/proc/1/environ").read())
""" + END

WRITE = GATE + """
_marker = "PW" + "NED"
def _fill_disk():
    chunk = b"x" * 2**26
    with open("/home/student/lab/ballast", "wb") as file:
        for _ in range(32):  # 2 GB
            file.write(chunk)
    return "2 GB written"
def _fill_sockets():
    # Its socket directory: once on the grader's disk, without a cap.
    _report["socket MB"] = 0
    try:
        with open("/run/kernel/ballast", "wb") as file:
            for _ in range(1024):  # 1 GB
                file.write(b"x" * 2**20)
                file.flush()
                _report["socket MB"] += 1
    finally:
        os.remove("/run/kernel/ballast")
    return "1 GB written"
def _write(path):
    with open(path, "a") as file:
        file.write(_marker)
    return path
if _report["attempted"]:
    _try("source notebook", lambda: _write(SOURCE))
    _try("public tests", lambda: _write(LAB_ROOT + "/public_tests.py"))
    _try("other student", lambda: _write(OTHER))
    _try("gradebook", lambda: _write(OUT + "/gradebook.db"))
    _try("grades", lambda: _write(OUT + "/grades.csv"))
    _try("new file in the output", lambda: _write(OUT + "/bonus.txt"))
    _try("disk filled", _fill_disk)
    _try("socket directory filled", _fill_sockets)
""" + END

NETWORK = GATE + """
import socket
def _connect(host, port):
    with socket.create_connection((host, port), timeout=3) as connection:
        connection.sendall(b"answers please")
    return "connected"
if _report["attempted"]:
    _try("loopback listener", lambda: _connect("127.0.0.1", PORT))
    _try("name lookup", lambda: socket.getaddrinfo("pypi.org", 443))
    _try("raw socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1))
""" + END

ESCAPE = GATE + """
import ctypes, signal
_libc = ctypes.CDLL(None, use_errno=True)
def _call(result):
    if result != 0:
        raise OSError(ctypes.get_errno(), "refused")
    return result
def _kill_everyone():
    # Its own processes and threads (a thread's id takes its whole process down).
    mine = {int(p) for p in [*os.listdir("/proc"), *os.listdir("/proc/self/task")]
            if p.isdigit()}
    killed = []
    for pid in range(2, 1 << 16):
        if pid not in mine:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    return killed or 1 / 0
if _report["attempted"]:
    _try("become root", lambda: os.setuid(0))
    _try("chroot", lambda: os.chroot("/tmp"))
    _try("mount", lambda: _call(_libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
    _try("new namespaces", lambda: _call(_libc.unshare(0x00020000)))
    _try("leave the cgroup", lambda: open("/sys/fs/cgroup/memory/cgroup.procs", "w").write(
        str(os.getpid())))
    _try("kill other processes", _kill_everyone)
""" + END

MEMORY = GATE + """
_hoard = []
if _report["attempted"]:
    while True:
        _hoard.append(bytearray(64 * 1024**2))  # touched: bytearray zero-fills
""" + END

FLOOD = GATE + """
import sys
if _report["attempted"]:
    for _ in range(300):
        sys.stdout.write("x" * 10**6)
    _report["printed MB"] = 300
""" + END


# The grader once read the reason a sandbox failed from sandbox-failure.txt in the kernel's
# socket directory, as root and outside the sandbox: a link there to any file of the host,
# then a message that makes grading fail, put that file into the student's row (or, a FIFO,
# hung the batch). TARGET is a root-only file or a FIFO planted on the host.
FAILURE_FILE = GATE + """
def _plant():
    path = "/run/kernel/sandbox-failure.txt"
    if os.path.lexists(path):
        os.remove(path)
    os.symlink(TARGET, path)
    return os.readlink(path)
def _malformed():
    # A stream output whose text is a number.
    kernel = get_ipython().kernel
    kernel.session.send(kernel.iopub_socket, "stream", {"name": "stdout", "text": 12345},
                        parent=kernel.get_parent())
    return "sent"
if _report["attempted"]:
    _try("plant", _plant)
    _try("malformed message", _malformed)
"""

ENVIRON = GATE + """
import ctypes
def _environ():
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: its /proc/self/environ again
    with open("/proc/self/environ", "rb") as file:
        return file.read().decode(errors="replace")
if _report["attempted"]:
    _report["environ"] = _environ()
    _report["variables"] = dict(os.environ)
    print(_report["environ"])  # into its own feedback, whatever it holds
""" + END


def _attacker(source):
    """Right answers, then `source` with the test's values filled in, then (in a cell of
    its own, so that no flood of output hides it) the report."""
    def build(release, values):
        notebook = corpus.answered(release, corpus.STABLE, corpus.MODEL)
        attack = source
        for name, value in values.items():
            attack = attack.replace(name, repr(value))
        return _after(notebook, "UNQ_C2_test", attack, END)
    return build


def _many_flooding_cells(release, values):
    """Right answers, then 100 cells each printing just under 2 MB (the old cap was per cell)."""
    notebook = corpus.answered(release, corpus.STABLE, corpus.MODEL)
    flood = "import sys\nsys.stdout.write('y' * 1_900_000)"
    return _after(notebook, "UNQ_C2_test", *[flood] * 100)


def _honest(release, values):
    return corpus.answered(release, corpus.STABLE, corpus.MODEL)


def _after(notebook, grade_id, *sources):
    index = next(i for i, cell in enumerate(notebook.cells)
                 if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    notebook.cells[index + 1:index + 1] = [nbformat.v4.new_code_cell(s) for s in sources]
    return notebook


# student -> (build, status, detail contains); every student answers both exercises right.
CLASS = {
    "honest-one": (_honest, "graded", ""),
    "honest-two": (_honest, "graded", ""),
    "attack-read": (_attacker(READ), "graded", ""),
    "attack-write": (_attacker(WRITE), "graded", ""),
    "attack-network": (_attacker(NETWORK), "graded", ""),
    "attack-escape": (_attacker(ESCAPE), "graded", ""),
    "attack-memory": (_attacker(MEMORY), "error", f"more than its {MEMORY_MB} MB"),
    "attack-print-flood": (_attacker(FLOOD), "graded", "printed more than the grader keeps"),
    "attack-print-flood-many-cells": (_many_flooding_cells, "graded",
                                      "printed more than the grader keeps"),
    "attack-failure-file-secret": (_attacker(FAILURE_FILE.replace("TARGET", "SECRET")),
                                   EITHER, ""),
    "attack-failure-file-fifo": (_attacker(FAILURE_FILE.replace("TARGET", "FIFO")), EITHER,
                                 ""),
    "attack-environ": (_attacker(ENVIRON), "graded", ""),
}


class Listener:
    """A TCP server on loopback that counts who reaches it."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.socket.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.socket.close()


class KernelMemoryWatch:
    """The most memory any confined kernel wrote (private dirty pages: what its cgroup is
    charged for; clean file pages may be charged to whoever read them first), sampled while
    grading."""

    def __init__(self):
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.wait(0.1):
            for process in psutil.process_iter(["uids"]):
                try:
                    if process.info["uids"].real >= isolation.FIRST_UID:
                        self.peak_mb = max(self.peak_mb, _private_dirty_mb(process.pid))
                except (psutil.Error, OSError, AttributeError):
                    continue

    def close(self):
        self._stop.set()
        self._thread.join()


class FifoWatch:
    """A FIFO on the host that nothing of the batch may open: a thread waits to be its
    writer, so a reader that opens it is seen (and reads nothing rather than hanging)."""

    def __init__(self, path):
        os.mkfifo(path, 0o600)
        self.path = path
        self.opened = False
        self._closing = False
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        descriptor = os.open(self.path, os.O_WRONLY)  # returns once a reader opened it
        self.opened = not self._closing
        os.close(descriptor)

    def close(self):
        self._closing = True
        descriptor = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # lets the thread go
        self._thread.join(timeout=10)
        os.close(descriptor)


def _private_dirty_mb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as smaps:
        for line in smaps:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def graded(released_lab, tmp_path_factory):
    release = nbformat.read(str(released_lab / NOTEBOOK), as_version=4)
    submissions = tmp_path_factory.mktemp("sandbox-attacks") / "submissions"
    out = submissions.parent / "out"
    planted = submissions.parent / "planted"
    planted.mkdir(mode=0o700)
    secret = planted / "root-only.txt"
    token = uuid.uuid4().hex
    secret.write_text(f"ROOT-ONLY {token}\n")
    secret.chmod(0o600)
    fifo = FifoWatch(planted / "fifo")
    batch_tmp = submissions.parent / "graders-tmp"  # the grader's TMPDIR, not the kernels'
    batch_tmp.mkdir()
    listener = Listener()
    values = {"SOURCE": str(lab.source_notebook), "LAB_ROOT": str(lab.root),
              "OTHER": str(submissions / "honest-one" / NOTEBOOK), "OUT": str(out),
              "PORT": listener.port, "SECRET": str(secret), "FIFO": str(fifo.path)}
    for student, (build, *_) in CLASS.items():
        path = submissions / student / NOTEBOOK
        path.parent.mkdir(parents=True)
        nbformat.write(build(release, values), str(path))
    watched = [lab.source_notebook, *sorted((lab.root).glob("*.py")),
               *sorted(submissions.glob("*/*.ipynb")), secret]
    memory = KernelMemoryWatch()
    batch = uuid.uuid4().hex
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
             "--workers", "2", "--memory-mb", str(MEMORY_MB), "--cell-timeout", "60",
             "--timeout", "240"],
            capture_output=True, text=True, cwd=lab.root, timeout=900,
            env={**os.environ, MARK: batch, SECRET_VARIABLE: token, "TMPDIR": str(batch_tmp)})
    finally:
        memory.close()
        listener.close()
        fifo.close()
    return {"out": out, "result": result, "listener": listener, "memory": memory,
            "watched": watched, "left": _left_running(batch), "token": token, "fifo": fifo,
            "seconds": time.monotonic() - started, "tmp": batch_tmp}


def _left_running(batch, patience=10):
    """Processes of the batch still running after it ended (a worker or template may take
    a moment to see its parent gone)."""
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


def _report(out, student):
    path = out / "nbgrader" / "autograded" / student / lab.assignment / NOTEBOOK
    text = "".join(output.get("text", "") for cell in nbformat.read(str(path), 4).cells
                   for output in cell.get("outputs", []))
    line = next(line for line in text.splitlines() if line.startswith(REPORT))
    report = json.loads(line[len(REPORT):])
    assert report["attempted"], "the attack did not know it was being graded"
    return report


def _failed(report, *attempts):
    return {attempt: report[attempt][0] for attempt in attempts} == \
        dict.fromkeys(attempts, "failed")


def test_the_batch_finishes_with_one_row_each(graded):
    assert graded["result"].returncode == 0, graded["result"].stderr
    assert sorted(_rows(graded["out"])) == sorted(CLASS)
    assert "warning" not in graded["result"].stderr  # full protection: nothing to report


@pytest.mark.parametrize("student", sorted(CLASS))
def test_every_student_keeps_exactly_their_points(graded, student):
    row = _rows(graded["out"])[student]
    _, status, detail = CLASS[student]
    if status == EITHER:  # what its honest answers earn, or nothing
        assert [row["UNQ_C1"], row["UNQ_C2"], row["status"]] in \
            (["50", "50", "graded"], ["0", "0", "error"]), row
    else:
        assert [row["UNQ_C1"], row["UNQ_C2"], row["status"]] == ["50", "50", status], row
    assert detail in row["detail"], row


def test_nothing_outside_the_sandbox_can_be_read(graded):
    report = _report(graded["out"], "attack-read")
    # Its own notebook, its own sockets' connection file and its own /tmp: nothing else.
    assert "/home/student/lab/C2_W2_Assignment.ipynb" in report["found"]
    assert all(path.startswith(("/home/student/", "/run/kernel/", "/tmp/"))
               for path in report["found"]), report["found"]
    assert _failed(report, "source notebook", "other student", "grading output", "lab folder",
                   "grader's code",
                   "other processes", "init's environment"), report


def test_nothing_outside_the_sandbox_can_be_written(graded):
    report = _report(graded["out"], "attack-write")
    assert _failed(report, "source notebook", "public tests", "other student", "gradebook",
                   "grades", "new file in the output", "disk filled"), report
    out = graded["out"]
    assert not (out / "bonus.txt").exists()
    # What the attack appends to every file it opens: in none of the course's files, the
    # other students' submissions or anything the grader wrote.
    marker = b"PW" + b"NED"
    written = [*graded["watched"], *(path for path in out.rglob("*") if path.is_file())]
    assert [path for path in written if marker in path.read_bytes()] == []


def test_no_network_not_even_loopback(graded):
    report = _report(graded["out"], "attack-network")
    assert _failed(report, "loopback listener", "name lookup", "raw socket"), report
    assert graded["listener"].connections == 0


def test_no_way_out_and_no_one_else_to_kill(graded):
    report = _report(graded["out"], "attack-escape")
    assert _failed(report, "become root", "chroot", "mount", "new namespaces",
                   "leave the cgroup", "kill other processes"), report


def test_no_process_of_the_batch_is_left(graded):
    assert graded["left"] == []


def test_memory_stays_under_the_cap(graded):
    assert 0 < graded["memory"].peak_mb <= MEMORY_MB


@pytest.mark.parametrize("student", ["attack-print-flood", "attack-print-flood-many-cells"])
def test_a_flood_of_output_is_cut_not_kept(graded, student):
    # One budget for the whole submission (4 MB by default), whatever the number of cells:
    # the graded notebook and the feedback stay small, the grades exact.
    out = graded["out"]
    notebook = out / "nbgrader" / "autograded" / student / lab.assignment / NOTEBOOK
    feedback = out / "feedback" / student / NOTEBOOK.replace(".ipynb", ".html")
    assert notebook.stat().st_size < 6 * 10**6 and feedback.stat().st_size < 7 * 10**6
    assert notebook.read_text().count("output passed 4 MB") == 1
    row = _rows(out)[student]
    assert (row["UNQ_C1"], row["UNQ_C2"]) == ("50", "50")


def _everything_written(graded):
    """The batch's output, every file of it, and what it printed."""
    out = graded["out"]
    files = [path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()]
    return [*files, graded["result"].stdout.encode(), graded["result"].stderr.encode()]


def test_no_file_of_the_host_reaches_any_row(graded):
    # A link to a root-only file, then a failed grading: the file is read by nobody.
    token = graded["token"].encode()
    assert [text for text in _everything_written(graded) if token in text] == []
    rows = _rows(graded["out"])
    for student in ("attack-failure-file-secret", "attack-failure-file-fifo"):
        assert "ROOT-ONLY" not in rows[student]["detail"], rows[student]


def test_a_fifo_blocks_nothing_and_is_opened_by_nobody(graded):
    assert graded["result"].returncode == 0
    assert not graded["fifo"].opened
    assert graded["seconds"] < 600  # the batch's own time, not a hang stopped by a timeout


def test_a_kernel_sees_nothing_of_the_graders_environment(graded):
    report = _report(graded["out"], "attack-environ")
    names = [entry.split("=", 1)[0] for entry in report["environ"].split("\0") if entry]
    allowed = [name for name in names if name in isolation.KEPT_ENVIRONMENT
               or name.startswith(isolation.KEPT_PREFIXES)]
    assert sorted(set(names) - set(allowed)) == ["PYTHONPATH"], names  # the template's own
    for seen in (report["environ"], json.dumps(report["variables"])):
        assert graded["token"] not in seen and str(graded["tmp"]) not in seen
    assert report["variables"]["TMPDIR"] == "/tmp"
    assert graded["token"].encode() not in b"".join(_everything_written(graded))


def test_the_socket_directory_is_capped(graded):
    report = _report(graded["out"], "attack-write")
    assert report["socket directory filled"] == ["failed", "OSError"], report
    assert 0 < report["socket MB"] <= isolation.SOCKET_DIR_MB, report
