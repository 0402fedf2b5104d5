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
"""

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

import grader
from grader.run import isolation

PR_SET_PDEATHSIG = 1
# Where the grader package lives: the template imports it from there; kernels must not.
GRADER_ROOT = str(Path(grader.__file__).resolve().parents[1])
KERNEL_MODULES = ("ipykernel.kernelapp",)  # what every kernel needs, preloaded for all labs


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


class KernelTemplate:
    """The worker's side: a template process started once and asked for kernels. It
    imports `preload` (a lab's heavy modules) before it forks the first."""

    def __init__(self, preload=()):
        self.preload = tuple(preload)
        self.process = None

    def fork_kernel(self, connection_file, cwd, env, setup=None):
        """A new kernel's pid; it serves `connection_file` from `cwd` with `env`, set up
        as `setup` (KernelSetup) says."""
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        request = {"connection_file": connection_file, "cwd": str(cwd), "env": env,
                   "setup": dataclasses.asdict(setup or KernelSetup())}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        if not reply:
            raise RuntimeError("the kernel template stopped")
        return json.loads(reply)["pid"]

    def _start(self):
        # Started from "/" with the grader on PYTHONPATH only, so that the kernels it forks
        # (which drop both) cannot import the grader. Its own output (TensorFlow's start-up
        # notes) is nobody's business.
        # A fixed hash seed: every kernel is a copy of this process, so set and dict
        # orders of strings are then the same in every run, as the grades must be.
        env = {**os.environ, "PYTHONPATH": GRADER_ROOT, "PYTHONHASHSEED": "0"}
        return subprocess.Popen(
            [sys.executable, "-m", "grader.run.warm_kernels", *self.preload], cwd="/", env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1)

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=10)
            self.process = None


class ForkedProcess:
    """The Popen methods jupyter_client uses, for a kernel that is not our child (it is
    the template's, which reaps it)."""

    def __init__(self, pid):
        self.pid = pid
        self.stdin = self.stdout = self.stderr = None
        self._process = psutil.Process(pid)

    def poll(self):
        try:
            alive = self._process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        return None if alive else 0

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.05)
        return 0

    def send_signal(self, signum):
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


class ForkedKernelProvisioner(LocalProvisioner):
    """LocalProvisioner whose kernel process is forked by the template, not launched."""

    template = None  # set by warm_kernel_manager
    setup = None

    async def launch_kernel(self, cmd, **kwargs):
        connection_file = cmd[cmd.index("-f") + 1]
        pid = await asyncio.to_thread(self.template.fork_kernel, connection_file,
                                      kwargs.get("cwd") or os.getcwd(),
                                      dict(kwargs.get("env") or os.environ), self.setup)
        self.process = ForkedProcess(pid)
        self.pid = self.pgid = pid  # the kernel leads a session of its own
        self.cwd = kwargs.get("cwd")
        return self.connection_info


def warm_kernel_manager(template, setup=None):
    """An AsyncKernelManager whose kernel will come from `template`, set up as `setup`
    (KernelSetup) says; a confined kernel is talked to over ipc sockets in its socket
    directory (it has no network, loopback included)."""
    setup = setup or KernelSetup()
    if setup.confinement is None:
        manager = AsyncKernelManager(kernel_name="python3")
    else:
        manager = AsyncKernelManager(kernel_name="python3", transport="ipc",
                                     ip=os.path.join(setup.confinement.socket_dir, "kernel"))
    provisioner = ForkedKernelProvisioner(kernel_id=manager.kernel_id or "",
                                          kernel_spec=manager.kernel_spec, parent=manager)
    provisioner.template = template
    provisioner.setup = setup
    manager.provisioner = provisioner
    return manager


# ---------------------------------------------------------------- the template process

def serve(preload):
    """Import the modules to preload, then fork a kernel for every request on stdin."""
    for module in (*preload, *KERNEL_MODULES):
        __import__(module)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped without waiting
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become_kernel(request)
        sys.stdout.write(json.dumps({"pid": pid}) + "\n")
        sys.stdout.flush()
    # The worker is gone (closed, or killed with a kernel running): so are its kernels.
    # Its live children are exactly those; a list of pids forked would also name pids
    # reused since by other processes.
    for kernel in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            kernel.kill()


def _become_kernel(request):
    """In the forked child: detach from the template and run an IPython kernel."""
    template = os.getppid()
    setup = request["setup"]
    try:
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
        sys.path[:] = [path for path in sys.path if path not in ("", "/", GRADER_ROOT)]
        environment = dict(request["env"])
        environment.pop("PYTHONPATH", None)
        connection_file = request["connection_file"]
        if setup["confinement"]:
            confinement = isolation.Confinement(**setup["confinement"])
            connection_file = _confined_connection_file(connection_file, confinement)
            isolation.confine_or_explain(confinement, _python_paths())
            environment = isolation.kernel_environment(environment)
        else:
            os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(environment)
        grader.unskip_imports()
        for name in [name for name in sys.modules if name.split(".")[0] == "grader"]:
            del sys.modules[name]  # the template runs as grader.run.warm_kernels
        _die_with(template)
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(["-f", connection_file, "--HistoryManager.hist_file=:memory:"])
        app.start()
    finally:
        os._exit(0)


def _die_with(parent):
    """Be killed when the template dies (killed with its worker): set after the change of
    user id, which clears the setting."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the setting took
        os._exit(0)


def _confined_connection_file(connection_file, confinement):
    """The connection file as the confined kernel sees it: in its socket directory, the
    sockets named by their path inside (the worker reaches the same ones outside)."""
    with open(connection_file) as stream:
        info = json.load(stream)
    info["ip"] = os.path.join(isolation.SOCKET_DIR, os.path.basename(info["ip"]))
    with open(os.path.join(confinement.socket_dir, "connection.json"), "w") as stream:
        json.dump(info, stream)
    return os.path.join(isolation.SOCKET_DIR, "connection.json")


def _python_paths():
    """Where this Python's files are: the confined kernel sees these read-only."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    paths |= {os.path.realpath(path) for path in paths}
    return sorted(path for path in paths if os.path.isdir(path))


if __name__ == "__main__":
    serve(sys.argv[1:])
