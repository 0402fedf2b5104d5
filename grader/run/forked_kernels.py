"""The worker's side of a forked kernel: jupyter_client's kernel manager, whose kernel
process comes from a warm template (grader.run.warm_kernels) instead of being launched."""

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid

import psutil
from jupyter_client.provisioning import LocalProvisioner

from grader.run import isolation
from grader.run.kernel_sockets import kernel_manager, private_sockets
from grader.run.warm_kernels import KernelSetup


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
        if self.setup.confinement is not None:
            # Its sockets are in its own mount namespace: reached through its root
            # (jupyter_client takes this as the truth and rewrites the connection file).
            name = os.path.basename(self.connection_info["ip"])
            self.connection_info = {**self.connection_info,
                                    "ip": isolation.socket_path(pid, name)}
        return self.connection_info


def warm_kernel_manager(template, setup=None, ip=None):
    """An AsyncKernelManager whose kernel will come from `template`, set up as `setup`
    (KernelSetup) says. It is talked to over ipc sockets: a confined kernel's in its socket
    directory (it has no network, loopback included), named afresh for each kernel (a
    reconnect through a pid since reused by another kernel finds no socket of that name);
    an unconfined one's at `ip` (grader.run.kernel_sockets.private_sockets; TCP if None)."""
    setup = setup or KernelSetup()
    if setup.confinement is None:
        manager = kernel_manager(ip)
    else:
        manager = kernel_manager(f"{isolation.SOCKET_DIR}/kernel-{uuid.uuid4().hex[:12]}")
    provisioner = ForkedKernelProvisioner(kernel_id=manager.kernel_id or "",
                                          kernel_spec=manager.kernel_spec, parent=manager)
    provisioner.template = template
    provisioner.setup = setup
    manager.provisioner = provisioner
    return manager


@contextlib.contextmanager
def run_kernel_manager(template, setup):
    """The manager of a run's kernel: forked from `template` and set up as `setup`
    (KernelSetup) says or, without a template, launched by jupyter_client. An unconfined
    kernel's sockets are in a private folder (grader.run.kernel_sockets), removed as the
    block ends."""
    if setup.confinement is not None:
        yield warm_kernel_manager(template, setup)
        return
    with private_sockets() as ip:
        yield warm_kernel_manager(template, setup, ip) if template else kernel_manager(ip)
