"""Where an unconfined kernel listens: ZMQ ipc sockets in a private folder of the worker's,
never TCP ports on loopback.

jupyter_client chooses a TCP port by binding port 0 and closing the socket; the kernel binds
the port it was given later (for a forked kernel: after the fork and its set-up). Any process
on the machine may take the port in between: another batch's kernel, a browser's or a
database client's connection. The kernel, refused its port, dies before the notebook's first
cell, and a right notebook became an error row (seen once in CI: `--no-sandbox`, one
student of two). A socket file in a folder only this user can enter cannot be taken. A
confined kernel has its own folder in its private root (grader.run.isolation.SOCKET_DIR).
"""

import contextlib
from collections.abc import Iterator

from jupyter_client.manager import AsyncKernelManager

from grader.run.pipes import fits_socket
from grader.scratch import scratch_folder

# jupyter_client names a channel's socket `ip-N`, N from 1 up, past files that exist.
CHANNEL_SUFFIX = "-99"


@contextlib.contextmanager
def private_sockets() -> Iterator[str | None]:
    """The `ip` of an ipc kernel (a path prefix in a new 0700 folder, removed with everything
    in it at the end); None when the temporary folder's path is too long for a socket,
    and the kernel listens on TCP as jupyter_client's default."""
    with scratch_folder("sockets") as folder:
        ip = str(folder / "kernel")
        yield ip if fits_socket(ip + CHANNEL_SUFFIX) else None


def kernel_manager(ip: str | None) -> AsyncKernelManager:
    """A python3 kernel's manager listening at `ip` (private_sockets), or on TCP if None."""
    if ip is None:
        return AsyncKernelManager(kernel_name="python3")
    return AsyncKernelManager(kernel_name="python3", transport="ipc", ip=ip)
