"""Kernels forked from a warm template, so that no submission pays for importing TensorFlow.

Starting a Python kernel and importing TensorFlow costs about 2.5 s of CPU, more than
everything else grading one submission does. A template process imports the heavy,
side-effect-free libraries once (NumPy, TensorFlow, Keras, matplotlib, ipykernel), runs no
other code (nobody's notebook, not one TensorFlow op), and then forks one child per
submission; the child becomes an IPython kernel on the connection file it is given. Each
kernel therefore starts as an identical copy of the template, sharing nothing writable
with any other kernel, exactly as if it had imported those libraries itself.

Libraries that hook into a running IPython when imported (ipywidgets, ipympl) are left to
the kernel: imported in the template, their hooks would never be installed.

    worker process --(JSON line: connection file, cwd, env)--> template --fork--> kernel
                   <--(JSON line: pid, or why it failed)----    <--(pipe: "ok" or why)--

The forked child sets itself up (cgroup, sandbox, then the system call policy) as root and
wipes the request it was given (read into a bytearray it zero-fills: a kernel walking its
stack frames up into the template's finds no host path), then reports the result to the
template over a pipe only the two of them hold, before any student code exists; the
template forwards it to the worker in its reply. So the reason a sandbox could not be made
never travels through a file a kernel could touch, and every wait here has a time limit: a
template or a child that hangs becomes that submission's error (the template is restarted).
The template's environment is the allow-list (grader.run.isolation.KEPT_ENVIRONMENT) and
little else, because a forked kernel's /proc/self/environ is the template's, whatever it
sets later.
"""

import contextlib
import ctypes
import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

import grader
from grader.run import grader_files, import_turns, isolation, kernel_uids, syscalls
from grader.run import template_keeper as keeper
from grader.run.pipes import read_line, readable
from grader.settings import (  # the timings of templates and kernels
    REPLY_MARGIN_SECONDS,
    SETUP_SECONDS,
    STARTUP_SECONDS,
    STARTUP_WALL_SECONDS,
)
from grader.stage_clock import seconds_since_started

PR_SET_PDEATHSIG = 1
# Where the grader package lives: the template imports it from there; kernels must not.
GRADER_ROOT = str(Path(grader.__file__).resolve().parents[1])
# What every kernel needs, preloaded for all labs: the kernel's app, and what its
# initialize() imports besides (measured with ipykernel 7 and IPython 9: its debugger's
# debugpy and pydevd, 160 modules, the shell's magics and history): 0.14 -> 0.07 CPU s of
# each kernel's start. None of them starts a thread or changes anything as it is imported.
KERNEL_MODULES = ("ipykernel.kernelapp", "ipykernel.debugger", "IPython.core.debugger",
                  "IPython.core.completerlib", "IPython.core.oinspect",
                  "IPython.extensions.storemagic", "sqlite3", "tornado.platform.asyncio")
MAX_REPORT = 4096  # bytes of a child's report to the template
REQUEST_CHUNK = 64 * 1024  # bytes read at a time from the worker
READY = "ok"


@dataclasses.dataclass(frozen=True)
class RLimits:
    """The limits a kernel sets on itself where cgroups or a private root are missing:
    weaker (per process, not for what it starts), but something."""

    # Address space on top of what the template already maps. Not memory: glibc reserves
    # 64 MB of it per thread's arena, so a cap much below 1 GB stops a kernel starting.
    memory_mb: int | None = None
    file_mb: int | None = None  # the largest file it may write

    def apply(self):
        if self.memory_mb:
            mapped = psutil.Process().memory_info().vms
            limit = mapped + self.memory_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if self.file_mb:
            limit = self.file_mb * 2**20
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@dataclasses.dataclass(frozen=True)
class KernelSetup:
    """How a forked kernel sets itself up before it runs anything."""

    confinement: isolation.Confinement | None = None  # its own private root, or none
    rlimits: RLimits | None = None  # for what neither the root nor the cgroup enforces
    # The cgroup.procs files of its cgroup, joined first thing: memory it allocates before
    # joining would be charged to the template's group and escape the cap.
    cgroup_procs: tuple[str, ...] = ()
    syscall_policy: bool = False  # grader.run.syscalls' filter, installed last


class KernelTemplate:
    """The worker's side: a template process started once and asked for kernels."""

    def __init__(self, preload=(), *, startup_seconds=STARTUP_SECONDS,
                 setup_seconds=SETUP_SECONDS):
        self.preload = tuple(preload)
        self.process = None
        self.ready = False  # whether self.process said it imported its modules
        self.startup_seconds = startup_seconds
        self.setup_seconds = setup_seconds
        self._started_at = 0.0  # when the process was started (time.monotonic)
        self._startup = None  # (wall, CPU) seconds its imports took, until taken
        self.ready_at = 0.0  # when it said it had imported them (time.monotonic)
        self._starting = threading.Lock()  # a worker's set-up and its task may both start it

    def cpu_seconds(self):
        """The template process's CPU seconds so far (0 when none runs): for the profile."""
        if self.process is None:
            return 0.0
        try:
            times = psutil.Process(self.process.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return times.user + times.system

    def take_startup(self):
        """(wall, CPU) seconds the template took to import its modules, once after it
        became ready; else None. For the profile."""
        startup, self._startup = self._startup, None
        return startup

    def start(self):
        """Start the template unless it runs, not waiting for its imports: a caller with
        work to do meanwhile (`grader validate`) then finds it ready sooner."""
        with self._starting:
            if self.process is None or self.process.poll() is not None:
                self._stop()  # not ready
                self._started_at = time.monotonic()
                self.process = self._start()

    def wait_until_ready(self):
        """Start the template if need be and wait for its imports (KernelSetupError, and
        the template stopped, when it does not start)."""
        self.start()
        if not self.ready:
            reply = self._await_start()
            self.ready = True
            seconds = reply.get("seconds")
            waited = time.monotonic() - self._started_at
            wall = self._ready_wall(seconds, waited)
            self.ready_at = self._started_at + wall
            self._startup = (wall, self.cpu_seconds())

    def _ready_wall(self, seconds, waited):
        """How long after `start` it was ready: what it said (`seconds` since its start)."""
        return seconds if isinstance(seconds, float) and 0 <= seconds <= waited else waited

    def fork_kernel(self, connection_file, cwd, env, setup=None):
        """A new kernel's pid; it serves `connection_file` from `cwd` with `env`, set up
        as `setup` (KernelSetup) says. Raises isolation.KernelSetupError when it could not
        be set up, or the template did not answer in time (the template is then stopped,
        and started again for the next kernel)."""
        self.wait_until_ready()
        request = {"connection_file": connection_file, "cwd": str(cwd), "env": env,
                   "setup": dataclasses.asdict(setup or KernelSetup()),
                   "setup_seconds": self.setup_seconds}
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
        except OSError as error:  # it died since
            self._stop()
            raise isolation.KernelSetupError(f"the kernel template stopped ({error})") from None
        reply = self._expect("the kernel template did not answer",
                             self.setup_seconds + REPLY_MARGIN_SECONDS)
        if reply.get("failure"):
            raise isolation.KernelSetupError(str(reply["failure"]))
        return reply["pid"]

    def _await_start(self):
        """Wait for the template's first reply while it makes progress: importing on a busy
        machine may take minutes of wall time, but a template that has used no CPU for
        `startup_seconds` (hung) or took STARTUP_WALL_SECONDS in all is stopped."""
        fd, started = self.process.stdout.fileno(), time.monotonic()
        progress = (started, 0.0)  # when its CPU time last grew, and to what
        while not readable(fd, 1.0):
            progress = _progress(self.process.pid, progress)
            waited = time.monotonic() - started
            if time.monotonic() - progress[0] > self.startup_seconds or \
                    waited > STARTUP_WALL_SECONDS:
                self._stop()
                limit = min(waited, self.startup_seconds)
                raise isolation.KernelSetupError(f"the kernel template did not start within"
                                                 f" {limit:.0f} s; it was restarted")
        return self._expect("the kernel template did not start", self.startup_seconds)

    def _expect(self, what, seconds):
        """The template's next reply (a JSON object), read within `seconds`; or, when it
        sends none, something else or too much, it is stopped and KernelSetupError says
        `what`."""
        try:
            reply = json.loads(read_line(self.process.stdout.fileno(), seconds))
            if not isinstance(reply, dict):
                raise ValueError("not an object")
            return reply
        except TimeoutError:
            why = f"{what} within {seconds:.0f} s; it was restarted"
        except (EOFError, ConnectionResetError):  # a kept template's socket: it died
            why = f"{what}: it stopped"
        except ValueError as error:
            why = f"{what} as expected ({error}); it was restarted"
        self._stop()
        raise isolation.KernelSetupError(why)

    def _start(self):
        # Started from "/" with the grader on PYTHONPATH only, so that the kernels it forks
        # (which drop both) cannot import the grader. Its own output (TensorFlow's start-up
        # notes) is nobody's business. Binary pipes, unbuffered: replies are read with
        # time limits (read_line), not by a buffered readline that could wait forever.
        return subprocess.Popen(self._command("--with-parent", str(os.getpid())), cwd="/",
                                env=template_environment(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)

    def _command(self, *options):
        """The template's command line, `options` first, its imports in turn with this
        machine's other templates."""
        turns = import_turns.turns_here()
        return [sys.executable, "-m", "grader.run.warm_kernels", *options,
                *(["--turns", turns[0], str(turns[1])] if turns else []), *self.preload]

    def _stop(self):
        """Kill the template (its kernels die with it: PR_SET_PDEATHSIG)."""
        if self.process is not None:
            with contextlib.suppress(OSError):
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            for pipe in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
            self.process = None
        self.ready = False

    def kill(self):
        """Stop it now, its kernels too: `close` waits the second it takes to exit."""
        self._stop()

    def close(self):
        if self.process is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # it kills its kernels and ends
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            self._stop()


def template_environment(environment=None):
    """The template's whole environment: the allowed part of the grader's (`environment`,
    by default os.environ) and what the template itself needs. A forked kernel's
    /proc/self/environ shows this block whatever the kernel's os.environ becomes, so
    nothing else of the grader's may be in it (its TMPDIR and HOME neither: a temporary
    folder the template's imports cache would not exist in the sandbox)."""
    environment = os.environ if environment is None else environment
    # A fixed hash seed: every kernel is a copy of this process, so set and dict orders of
    # strings are then the same in every run, as the grades must be.
    return {**isolation.allowed_environment(environment), "PYTHONPATH": GRADER_ROOT,
            "PYTHONHASHSEED": "0"}


def _progress(pid, last):
    """(when, CPU seconds) of process `pid`: now and its CPU time if that grew since `last`,
    else `last`."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return last
    cpu = times.user + times.system + times.children_user + times.children_system
    return (time.monotonic(), cpu) if cpu > last[1] + 0.01 else last


# ---------------------------------------------------------------- the template process

def serve(arguments):
    """Import the warm modules (`arguments`: [--with-parent PID] [--keep SOCKET SECONDS]
    [--turns FOLDER COUNT] MODULE...), in turn with the machine's other templates, then fork
    a kernel for every request: on stdin, or, kept (grader.run.template_keeper), from each
    check connected. It ends with its parent unless kept (a batch's: with PID, its own)."""
    parent = int(arguments[1]) if arguments[:1] == ["--with-parent"] else None
    keep, turns, preload = keeper.options(arguments[2:] if parent else arguments)
    listener = keeper.claim(keep[0]) if keep else None
    if keep and listener is None:
        return  # another template serves that socket
    if parent or not keep:  # PID given: a parent dead before this line is seen dead
        _end_with_worker(parent or os.getppid())
    with import_turns.import_turn(turns):  # given back before the first kernel is forked
        import_turns.import_preloaded((*preload, *KERNEL_MODULES))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped without waiting
    # Once, here, rather than in each kernel; where it fails, each kernel's set-up says why.
    with contextlib.suppress(kernel_uids.NoFreeRange, OSError):
        kernel_uids.base()
    with contextlib.suppress(syscalls.PolicyError):
        syscalls.libseccomp()
    # How long since it was started (the interpreter's start too): the worker reads this
    # reply when its first kernel is wanted, perhaps long after.
    ready = {"ready": True, "seconds": seconds_since_started()}
    if keep:
        keeper.Keeper(listener, *keep, ready, _fork, _wipe, _request_line).serve()
        return
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    while line := _request_line(sys.stdin.fileno()):
        reply = _fork(line)
        _wipe(line)  # the next kernel is a copy of this process: it holds no old request
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    # The worker is gone (closed, or killed with a kernel running): so are its kernels.
    # Its live children are exactly those; a list of pids forked would also name pids
    # reused since by other processes.
    for kernel in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            kernel.kill()


def _end_with_worker(worker, seconds=0.5):
    """End this template, and its kernels, as soon as its worker is gone, even while it is
    still importing (seconds of TensorFlow), when it reads no request to see stdin close.
    A thread watching the parent's pid rather than PR_SET_PDEATHSIG, which would fire when
    the worker's thread that started the template ends, not the worker."""
    def watch():
        while os.getppid() == worker:
            time.sleep(seconds)
        for kernel in psutil.Process().children():
            with contextlib.suppress(psutil.NoSuchProcess):
                kernel.kill()
        os._exit(0)

    threading.Thread(target=watch, name="grader-worker-watch", daemon=True).start()


def _request_line(fd):
    """The worker's next request, one JSON line read from `fd` straight into a bytearray,
    which a forked kernel can wipe (a str or bytes could not be); empty at the end."""
    line, chunk = bytearray(), bytearray(REQUEST_CHUNK)
    try:
        while not line.endswith(b"\n"):
            count = os.readv(fd, [chunk])
            if not count:
                return bytearray()
            with memoryview(chunk) as view:
                line += view[:count]
    finally:
        _wipe(chunk)
    return line


def _wipe(value):
    """Leave nothing readable of `value`, a request or part of one: dicts and lists
    emptied (all they hold wiped first), a bytearray zero-filled in place. So a kernel
    walking its stack frames up into this template's finds no host path (scratch folder,
    cgroup, mount point) and nothing of its set-up. (The heap's freed memory is not
    scrubbed: strings, once freed, are reachable from no object.)"""
    if isinstance(value, dict):
        for item in value.values():
            _wipe(item)
        value.clear()
    elif isinstance(value, list):
        for item in value:
            _wipe(item)
        value.clear()
    elif isinstance(value, bytearray):
        value[:] = bytes(len(value))


def _fork(line):
    """Fork a kernel for the request `line` (a bytearray); the reply for the worker: its
    pid, and why it could not be set up (None when it was)."""
    request = json.loads(line)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _become_kernel(request, line, write_end)  # never returns
    os.close(write_end)
    try:
        failure = _child_report(read_end, pid, request.get("setup_seconds", SETUP_SECONDS))
    finally:
        os.close(read_end)
        _wipe(request)
    return {"pid": pid, "failure": failure}


def _child_report(fd, pid, seconds):
    """What the child at `pid` says of its set-up: None when it is ready, else why not.
    Read within `seconds` and MAX_REPORT bytes; a child that says nothing in time is
    killed (it runs nobody's code yet: it hangs in our set-up, e.g. on a cgroup file)."""
    deadline = time.monotonic() + seconds
    data = b""
    while len(data) < MAX_REPORT:
        left = deadline - time.monotonic()
        if not readable(fd, left):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return f"setting up the kernel took more than {seconds:.0f} s"
        chunk = os.read(fd, MAX_REPORT - len(data))
        if not chunk:  # the child closed its end: all is said
            break
        data += chunk
    report = data.decode(errors="replace").strip()
    if report == READY:
        return None
    return report or "the kernel's process ended while it was being set up"


def _report(fd, text):
    """The child's one message to the template, then its end of the pipe is closed: the
    kernel it becomes holds nothing of it."""
    with contextlib.suppress(OSError):
        os.write(fd, text.encode(errors="replace")[:MAX_REPORT])
    with contextlib.suppress(OSError):
        os.close(fd)


def _become_kernel(request, line, report):
    """In the forked child: set itself up as `request` (parsed from `line`) says, wipe
    both, say so (or why not) on `report`, then run an IPython kernel."""
    template = os.getppid()
    try:
        try:
            connection_file = _set_up(request)
            _die_with(template)
        except BaseException as error:
            _report(report, f"{type(error).__name__}: {error}")
            return
        finally:
            _wipe(request)
            _wipe(line)
        _report(report, READY)
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(["-f", connection_file, "--HistoryManager.hist_file=:memory:"])
        import_turns.hook_preloaded_into_kernel()
        app.start()
    finally:
        os._exit(0)


def _set_up(request):
    """Everything a forked child does before it is a kernel (as root, running only our
    code); returns the connection file it will serve."""
    setup = request["setup"]
    keeper.close_server_files()  # a kept template's sockets and lock
    for procs in setup["cgroup_procs"]:  # first: all it will ever allocate is charged there
        with open(procs, "w") as file:
            file.write(str(os.getpid()))
    os.setsid()
    for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # never write into the template's pipes
        os.dup2(devnull, fd)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core dumps of a big kernel
    if setup["rlimits"]:
        RLimits(**setup["rlimits"]).apply()
    hidden = grader_files.grader_files(grader_files.search_dirs())  # before sys.path loses it
    grader_files.forget_the_grader(GRADER_ROOT)
    connection_file = request["connection_file"]
    if setup["confinement"]:
        with open(connection_file) as stream:  # the worker's, read before confining
            connection = json.load(stream)
        isolation.confine(isolation.Confinement(**setup["confinement"]),
                          grader_files.python_paths(), hidden)
        connection_file = isolation.confined_connection_file(connection)
        environment = isolation.kernel_environment(request["env"])
    else:
        os.chdir(request["cwd"])
        environment = isolation.kernel_environment(request["env"], scratch=request["cwd"])
    os.environ.clear()
    os.environ.update(environment)
    tempfile.tempdir = None  # the template's imports cached its own: found again from TMPDIR
    grader.unskip_imports()
    for name in [name for name in sys.modules if name.split(".")[0] == "grader"]:
        del sys.modules[name]  # the template runs as grader.run.warm_kernels
    if setup["syscall_policy"]:  # last: the set-up above mounts, the kernel may not
        syscalls.install()
    return connection_file


def _die_with(parent):
    """Be killed when the template dies (killed with its worker): set after the change of
    user id, which clears the setting."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the setting took
        os._exit(0)


if __name__ == "__main__":
    serve(sys.argv[1:])
