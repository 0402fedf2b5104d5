"""Kernels forked from the warm template: each one fresh, private and killable."""

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import nbformat
import psutil
import pytest
from jupyter_client.connect import write_connection_file
from nbformat.v4 import new_code_cell, new_notebook

from grader.labs.c2_w2 import LAB
from grader.records import RunEnd
from grader.run import import_turns, isolation, warm_kernels
from grader.run.execution import execute
from grader.run.pipes import readable
from grader.run.warm_kernels import (
    SETUP_SECONDS,
    STARTUP_SECONDS,
    KernelSetup,
    KernelTemplate,
    template_environment,
)

REPORT = """
import gc, json, os, random, sys
import numpy
cycle = []; cycle.append(cycle); del cycle
print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(),
                  "pythonpath": os.environ.get("PYTHONPATH"),
                  "tensorflow_warm": "tensorflow" in sys.modules,
                  "seen": globals().get("left_by_another_student"),
                  "collector_on": gc.isenabled(), "collected": gc.collect(),
                  "frozen": gc.get_freeze_count(),
                  "draws": [random.random(), float(numpy.random.random())]}))
"""


@pytest.fixture(scope="module")
def template():
    template = KernelTemplate(LAB.preload_modules)
    yield template
    template.close()


def _run(template, workdir, *sources, cell_timeout=10, timeout=60):
    notebook = new_notebook(cells=[new_code_cell(source) for source in sources])
    outcome = execute(nbformat.from_dict(notebook), workdir=workdir,
                      cell_timeout=cell_timeout, timeout=timeout, kernel_template=template)
    return outcome


def _printed(cell):
    return "".join(o.get("text", "") for o in cell["outputs"] if o["output_type"] == "stream")


def test_each_kernel_is_a_fresh_copy_in_its_own_directory(template, tmp_path):
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    first = _run(template, first_dir, "left_by_another_student = 'answers'", REPORT)
    second = _run(template, second_dir, REPORT)
    one, two = (json.loads(_printed(o.notebook["cells"][-1])) for o in (first, second))
    assert one["pid"] != two["pid"]
    assert (one["cwd"], two["cwd"]) == (str(first_dir), str(second_dir))
    assert one["seen"] == "answers" and two["seen"] is None
    assert one["tensorflow_warm"] and two["tensorflow_warm"]
    assert one["pythonpath"] is None
    # The template imported with the collector off; each kernel has it on, collecting
    # the student's garbage, and never walks the template's frozen objects.
    assert one["collector_on"] and two["collector_on"]
    assert one["collected"] >= 1 and two["collected"] >= 1
    assert one["frozen"] > 100_000
    # Neither random generator was seeded in the template: each kernel draws its own.
    assert all(a != b for a, b in zip(one["draws"], two["draws"], strict=True))


WIDGET_FIGURE = """
%matplotlib widget
import sys, comm, matplotlib.pyplot as plt
print(sorted(name for name in comm.get_comm_manager().targets if "widget" in name))
plt.plot([1, 2, 3])
"""
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.mark.parametrize("warm", [True, False], ids=["forked", "launched"])
def test_a_widget_figure_shows_in_a_kernel_forked_as_in_a_new_one(template, tmp_path, warm):
    # The template imports ipywidgets where no IPython runs, so the comm targets it
    # registers as it is imported into a kernel are registered by each forked kernel.
    outcome = _run(template if warm else None, tmp_path, WIDGET_FIGURE, cell_timeout=30)
    (cell,) = outcome.notebook["cells"]
    assert _printed(cell) == "['jupyter.widget', 'jupyter.widget.control']\n"
    shown = [output for output in cell["outputs"] if output["output_type"] == "display_data"]
    assert len(shown) == 1 and WIDGET_VIEW in shown[0]["data"]


LISTENING = """
import json, os
from ipykernel.connect import get_connection_file
with open(get_connection_file()) as file:
    info = json.load(file)
print(json.dumps({"transport": info["transport"], "ip": info["ip"],
                  "folder_mode": os.stat(os.path.dirname(info["ip"])).st_mode & 0o777,
                  "sockets": sorted(os.listdir(os.path.dirname(info["ip"])))}))
"""


@pytest.mark.parametrize("warm", [True, False], ids=["forked", "launched"])
def test_an_unconfined_kernel_listens_on_no_port_anyone_could_take(template, tmp_path, warm):
    # A TCP port chosen by jupyter_client is free when chosen, not when the kernel binds it:
    # a kernel refused its port dies before the first cell (an error row for a right
    # notebook). Its five channels are socket files in a private folder, removed with the
    # run. (ipykernel's own pipe for subprocesses' output binds a random port atomically.)
    outcome = _run(template if warm else None, tmp_path, LISTENING)
    facts = json.loads(_printed(outcome.notebook["cells"][0]))
    assert (facts["transport"], facts["folder_mode"]) == ("ipc", 0o700)
    assert facts["sockets"] == [f"kernel-{channel}" for channel in range(1, 6)]
    assert not os.path.exists(os.path.dirname(facts["ip"]))


REMOVES_ITS_SOCKETS = """
import json, os, shutil
from ipykernel.connect import get_connection_file
with open(get_connection_file()) as file:
    shutil.rmtree(os.path.dirname(json.load(file)["ip"]))
"""


@pytest.mark.parametrize("warm", [True, False], ids=["forked", "launched"])
def test_a_kernel_that_removes_its_socket_folder_costs_only_its_own_run(template, tmp_path,
                                                                         warm):
    # Unconfined, the kernel runs as the grader and can reach the folder: its bound sockets
    # still work, the folder's removal at the end finds nothing, and the next run is whole.
    odd = _run(template if warm else None, tmp_path, REMOVES_ITS_SOCKETS, "print('next')")
    assert odd.end is RunEnd.FINISHED and _printed(odd.notebook["cells"][1]) == "next\n"
    after = _run(template if warm else None, tmp_path, LISTENING)
    assert json.loads(_printed(after.notebook["cells"][0]))["transport"] == "ipc"


# What other servers and other kernels' port probes do, faster: listen on port 0 again and
# again, holding the last 3000 sockets. Before unconfined kernels listened on ipc, the first
# kernel started beside it died before its first reply (2 runs of 2; 22 kernels of 30 in a
# longer run).
PORT_TAKER = """
import collections, resource, socket
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
held = collections.deque(socket.create_server(("127.0.0.1", 0)) for _ in range(3000))
print("taking", flush=True)
while True:
    held.popleft().close()
    held.append(socket.create_server(("127.0.0.1", 0)))
"""


def test_kernels_start_while_another_process_takes_free_ports(template, tmp_path):
    taker = subprocess.Popen([sys.executable, "-c", PORT_TAKER], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert taker.stdout.readline() == "taking\n"
        ends = []
        for run in range(6):
            (tmp_path / str(run)).mkdir()
            ends.append(_run(template if run % 2 else None, tmp_path / str(run), "1").end)
    finally:
        taker.kill()
        taker.wait()
    assert ends == [RunEnd.FINISHED] * 6


def test_a_kernel_cannot_import_the_grader(template, tmp_path):
    outcome = _run(template, tmp_path, "import grader")
    (error,) = [o for o in outcome.notebook["cells"][0]["outputs"] if o["output_type"] == "error"]
    assert error["ename"] == "ModuleNotFoundError"


def test_a_kernel_imports_what_the_grader_skips(template, tmp_path):
    # The template is a grader process, which marks rfc3987_syntax missing (grader/__init__).
    outcome = _run(template, tmp_path, "import jsonschema, rfc3987_syntax\n"
                   "print('iri' in jsonschema.FormatChecker.checkers)")
    assert _printed(outcome.notebook["cells"][0]) == "True\n"


def test_an_endless_cell_is_interrupted_and_the_next_one_runs(template, tmp_path):
    outcome = _run(template, tmp_path, "while True:\n    pass", "print('next')",
                   cell_timeout=2)
    assert "next" in _printed(outcome.notebook["cells"][1])
    assert outcome.end is RunEnd.FINISHED


def test_kernel_and_its_children_are_gone_afterwards(template, tmp_path):
    outcome = _run(template, tmp_path, "import os, subprocess\n"
                   "child = subprocess.Popen(['sleep', '300'])\nprint(os.getpid(), child.pid)")
    pids = [int(pid) for pid in _printed(outcome.notebook["cells"][0]).split()]
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_grading_leaves_no_thread_or_socket_behind(template, tmp_path):
    """A worker grades hundreds of submissions: each one's kernel client (heartbeat thread,
    ZMQ context and its threads, sockets) must be gone with it."""
    _run(template, tmp_path, "1 + 1")  # the first run may start threads kept for good
    process = psutil.Process()
    before = _steady_counts(process)  # not while the first run's threads still end
    for _ in range(5):
        _run(template, tmp_path, "print('hello')")
    assert _counts_once_settled(process, before) == before


def _steady_counts(process, quiet=0.5, patience=5.0):
    # A thread of the first run, joined, may still be ending in the OS: counted in `before`
    # it made the end look one thread short (seen once in a full run: 13 for 14).
    deadline = time.monotonic() + patience
    counts, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = threading.active_count(), process.num_threads(), process.num_fds()
        if now != counts:
            counts, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.05)
    return counts


def _counts_once_settled(process, expected, patience=5.0):
    # A joined Python thread has left threading's table but may still be ending in the OS
    # for a moment (seen once in a full run: 14 threads for 13); a leaked one stays.
    deadline = time.monotonic() + patience
    while True:
        counts = threading.active_count(), process.num_threads(), process.num_fds()
        if counts == expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def test_a_kernel_that_exits_is_reported_and_the_template_lives_on(template, tmp_path):
    outcome = _run(template, tmp_path, "import os\nos._exit(3)", "print('never')")
    assert outcome.end is RunEnd.KERNEL_DIED
    assert template.process.poll() is None
    assert _run(template, tmp_path, "print(40 + 2)").notebook["cells"][0]["outputs"]


def _serving_kernel(template, tmp_path):
    """A kernel forked from `template`, serving a connection file nobody uses."""
    connection_file, _ = write_connection_file(fname=str(tmp_path / "kernel.json"))
    pid = template.fork_kernel(connection_file, tmp_path, {"PATH": "/usr/bin:/bin"})
    kernel = psutil.Process(pid)
    assert kernel.is_running()
    return kernel


def _ends(process, seconds=10):
    try:
        process.wait(timeout=seconds)
    except psutil.TimeoutExpired:
        return process.status() == psutil.STATUS_ZOMBIE
    return True


def test_a_kernel_dies_with_its_template(tmp_path):
    # A Dask worker killed mid-submission takes its template with it: the kernel must go too.
    template = KernelTemplate(LAB.preload_modules)
    kernel = _serving_kernel(template, tmp_path)
    template.process.kill()
    assert _ends(kernel)


def test_a_template_started_early_is_ready_for_its_first_kernel_and_killed_at_once(tmp_path):
    # `grader validate` starts it first, so that it imports while the notebook is prepared.
    template = KernelTemplate(LAB.preload_modules)
    template.start()
    process = template.process
    assert process.poll() is None and not template.ready
    template.start()  # running already: the same process
    assert template.process is process
    template.wait_until_ready()
    assert template.ready and template.process is process
    kernel = _serving_kernel(template, tmp_path)
    assert template.process is process  # no second start for the fork
    template.kill()
    assert process.wait(timeout=10) == -9  # killed, not asked to end as `close` does
    assert template.process is None and not template.ready
    assert _ends(kernel)


def test_a_template_whose_worker_is_gone_kills_its_kernels(tmp_path):
    template = KernelTemplate(LAB.preload_modules)
    kernel = _serving_kernel(template, tmp_path)
    template.process.stdin.close()  # what the worker's death does to the pipe
    assert _ends(kernel)
    template.process.wait(timeout=10)


# ---------------------------------------------------------------- environment and time limits

ENVIRONMENT = """
import ctypes, json, os, tempfile
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: its own /proc/self/environ, readable
with open("/proc/self/environ", "rb") as file:
    block = file.read().decode(errors="replace")
print(json.dumps({"environ": dict(os.environ), "block": block, "tmp": tempfile.gettempdir(),
                  "home": os.path.expanduser("~")}))
"""
SECRET = "GRADER_TEST_SECRET_TOKEN"


def _allowed(name):
    return name in isolation.KEPT_ENVIRONMENT or name.startswith(isolation.KEPT_PREFIXES)


@pytest.mark.parametrize("warm", [True, False], ids=["forked", "launched"])
def test_an_unconfined_kernel_sees_only_the_allow_list(monkeypatch, tmp_path, warm):
    # The grader's environment holds a secret and a TMPDIR of its own (common under
    # systemd); the kernel, graded without the sandbox, sees neither, not even in the
    # environment block it was started with, and has a temporary folder that exists.
    token = uuid.uuid4().hex
    grader_tmp, grader_home = tmp_path / "graders-tmp", tmp_path / "graders-home"
    grader_tmp.mkdir()
    grader_home.mkdir()
    monkeypatch.setenv(SECRET, token)
    monkeypatch.setenv("TMPDIR", str(grader_tmp))
    monkeypatch.setenv("HOME", str(grader_home))
    monkeypatch.delenv("TERM", raising=False)  # the kernel sets its own (IPython does)
    template = KernelTemplate() if warm else None
    workdir = tmp_path / "lab"
    workdir.mkdir()
    try:
        outcome = execute(nbformat.from_dict(new_notebook(cells=[new_code_cell(ENVIRONMENT)])),
                          workdir=workdir, cell_timeout=30, timeout=120,
                          kernel_template=template)
    finally:
        if template:
            template.close()
    printed = _printed(outcome.notebook["cells"][0])
    assert token not in printed and str(grader_tmp) not in printed
    facts = json.loads(printed)
    # (The kernel sets a few of its own as it starts: TERM, PAGER, FORCE_COLOR...)
    graders = {name for name in os.environ if not _allowed(name)}
    assert graders & set(facts["environ"]) == {"HOME", "TMPDIR"}
    assert facts["environ"]["HOME"] == facts["environ"]["TMPDIR"] == str(workdir)
    block = [entry.split("=", 1)[0] for entry in facts["block"].split("\0") if entry]
    # A forked kernel shows its template's block: the allow-list and the template's own two.
    assert [name for name in block if not _allowed(name)] == \
        (["PYTHONPATH"] if warm else ["HOME", "TMPDIR", "MPLCONFIGDIR"])
    assert (facts["tmp"], facts["home"]) == (str(workdir), str(workdir))


def test_the_template_starts_with_the_allow_list_only():
    environment = template_environment({"PATH": "/usr/bin", "PGPASSWORD": "secret",
                                        "TMPDIR": "/var/tmp/grader", "HOME": "/root",
                                        "LC_ALL": "C", "NBGRADER_X": "1"})
    assert environment == {"PATH": "/usr/bin", "LC_ALL": "C", "NBGRADER_X": "1",
                           "PYTHONPATH": warm_kernels.GRADER_ROOT, "PYTHONHASHSEED": "0"}


def test_a_set_up_that_fails_is_that_kernels_error(template, tmp_path):
    # Reported by the forked child to the template over a pipe, then to the worker.
    with pytest.raises(isolation.KernelSetupError, match="FileNotFoundError"):
        template.fork_kernel(str(tmp_path / "kernel.json"), tmp_path / "missing",
                             {"PATH": "/usr/bin:/bin"})
    assert template.process.poll() is None


def test_a_set_up_that_hangs_is_stopped_in_time(template, tmp_path):
    # A child blocked in its set-up (here: joining a "cgroup" that is a FIFO nobody reads)
    # is killed by the template, whose reply says so; the template serves on.
    fifo = tmp_path / "cgroup.procs"
    os.mkfifo(fifo)
    template.setup_seconds = 2
    try:
        started = time.monotonic()
        with pytest.raises(isolation.KernelSetupError, match="took more than 2 s"):
            template.fork_kernel(str(tmp_path / "kernel.json"), tmp_path,
                                 {"PATH": "/usr/bin:/bin"}, KernelSetup(cgroup_procs=(str(fifo),)))
        assert time.monotonic() - started < 10
    finally:
        template.setup_seconds = SETUP_SECONDS
    assert all(_ends(child) for child in psutil.Process(template.process.pid).children())
    assert _run(template, tmp_path, "print(6 * 7)").notebook["cells"][0]["outputs"]


SILENT = "import time\ntime.sleep(600)"  # never says it is ready
MUTE = 'import time\nprint(\'{"ready": true}\', flush=True)\ntime.sleep(600)'  # never answers


class BrokenOnce(KernelTemplate):
    """A template whose first process runs `source` instead; then the real one."""

    def __init__(self, source, **kwargs):
        super().__init__(**kwargs)
        self.source = source
        self.started = []

    def _start(self):
        if self.started:
            process = super()._start()
        else:
            process = subprocess.Popen([sys.executable, "-c", self.source],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       bufsize=0)
        self.started.append(process)
        return process


@pytest.mark.parametrize(("source", "says"), [(SILENT, "did not start within 2 s"),
                                              (MUTE, "did not answer within 3 s")],
                         ids=["silent", "mute"])
def test_a_template_that_hangs_is_that_submissions_error_and_restarted(
        monkeypatch, tmp_path, source, says):
    monkeypatch.setattr(warm_kernels, "REPLY_MARGIN_SECONDS", 1)
    template = BrokenOnce(source, startup_seconds=2, setup_seconds=2)
    try:
        started = time.monotonic()
        outcome = _run(template, tmp_path, "print('never')")
        assert time.monotonic() - started < 30
        assert outcome.end is RunEnd.SANDBOX_FAILED
        assert says in outcome.reason and "restarted" in outcome.reason, outcome.reason
        assert template.started[0].poll() is not None  # the hung one was killed
        template.startup_seconds, template.setup_seconds = STARTUP_SECONDS, SETUP_SECONDS
        assert _printed(_run(template, tmp_path, "print(6 * 7)").notebook["cells"][0]) == "42\n"
    finally:
        template.close()


def test_a_template_imports_in_its_turn_and_gives_it_back_before_serving(tmp_path,
                                                                        monkeypatch):
    import fcntl

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    folder, count = import_turns.turns_here()
    turns = [os.open(os.path.join(folder, f"turn-{number}"), os.O_RDWR | os.O_CREAT)
             for number in range(count)]
    for descriptor in turns:  # every turn taken, as by another batch's templates
        fcntl.flock(descriptor, fcntl.LOCK_EX)
    template = KernelTemplate(("json",))
    try:
        template.start()
        assert "--turns" in template.process.args  # /proc shows nothing until its exec
        # Waiting for a turn: no ready line in a second (json alone takes 0.1 s).
        assert not readable(template.process.stdout.fileno(), 1.0)
        for descriptor in turns:
            os.close(descriptor)  # the turns given back: it imports and is ready
        template.wait_until_ready()
        for number in range(count):  # and gave its own turn back before serving
            descriptor = os.open(os.path.join(folder, f"turn-{number}"), os.O_RDWR)
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(descriptor)
    finally:
        template.close()
