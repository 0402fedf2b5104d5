"""Feedback pages rendered in a child process with a time limit per page.

The publisher saves every student in one thread; a page that takes too long to render
(whatever a notebook holds that nbconvert's template is slow on) must not stall the class.
The child renders one page at a time; when a page overruns its time, the child is killed,
that student gets no page (PageTimeout), and a new child renders the next student's.
Building nbconvert's exporter takes seconds: it is timed apart from the pages, once per
child. A local worker's child is forked from the machine's page server, which built it once
(grader.publish.page_server); any other is a new interpreter that builds it.
"""

import contextlib
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import psutil

from grader.course.course import python_path_with_grader
from grader.run.pipes import readable

STARTUP_SECONDS = 120  # to import nbconvert and build the exporter, on a busy machine
PAGE_SECONDS = 20  # to render one page, nothing near the seconds an honest page takes

log = logging.getLogger(__name__)


class PageTimeout(Exception):
    """A page took longer than its time to render: the child rendering it was killed."""


class PageProcess:
    """Renders pages with `render_page(notebook, resources) -> str`, each within `seconds`,
    after `warm_up()` has built what rendering needs. Both are module-level functions, or
    their "module:name" (the child, a new interpreter, imports them by name)."""

    def __init__(self, render_page: Callable[[dict, dict], str] | str,
                 warm_up: Callable[[], object] | str, seconds: float = PAGE_SECONDS) -> None:
        self.render_page, self.warm_up, self.seconds = render_page, warm_up, seconds
        self._child: Any = None  # a multiprocessing process, while one runs
        self._connection: Any = None
        self._lock = threading.Lock()
        self._startup: tuple[float, float] | None = None  # for the profile, until taken

    def render(self, notebook: dict, resources: dict) -> str:
        """The page for `notebook` (a dict) and nbconvert `resources`, or PageTimeout; an
        error while rendering is raised here as a RuntimeError with its text."""
        with self._lock:
            connection = self._started()
            connection.send((notebook, resources))
            if not connection.poll(self.seconds):
                self._stop()
                raise PageTimeout(f"rendering the page took more than {self.seconds:g} s")
            kind, value = self._received()
        if kind == "error":
            raise RuntimeError(value)
        return value

    def start_soon(self) -> None:
        """Start the renderer in a thread of its own, not waiting for it: the first page
        finds it ready, or waits for it; a start that fails is tried again by `render`,
        which says why."""
        threading.Thread(target=self._start_quietly, name="grader-page-renderer-start",
                         daemon=True).start()

    def _start_quietly(self) -> None:
        with self._lock:
            try:
                self._started()
            except Exception:
                log.info("the page renderer did not start ahead; the first page starts it",
                         exc_info=True)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def cpu_seconds(self) -> float:
        """The running child's CPU seconds so far (0 when none runs): for the profile."""
        child = self._child
        try:
            times = psutil.Process(child.pid).cpu_times() if child is not None else None
        except (psutil.Error, ValueError):
            return 0.0
        return times.user + times.system if times is not None else 0.0

    def take_startup(self) -> tuple[float, float] | None:
        """(wall, CPU) seconds the last child took to start, once; else None."""
        startup, self._startup = self._startup, None
        return startup

    def _started(self):
        if self._child is not None and self._child.poll() is None:
            return self._connection
        self._stop()
        started = time.monotonic()
        names = (*name_of(self.render_page), *name_of(self.warm_up))
        self._child, self._connection = _served(names) or _started_here(names)
        if not self._connection.poll(STARTUP_SECONDS):
            self._stop()
            raise PageTimeout(f"the page renderer did not start in {STARTUP_SECONDS} s")
        self._received()  # "ready"
        self._startup = (time.monotonic() - started, self.cpu_seconds())
        return self._connection

    def _received(self):
        try:
            return self._connection.recv()
        except (EOFError, OSError) as error:  # the child died (killed, out of memory)
            self._stop()
            raise RuntimeError("the page renderer died") from error

    def _stop(self):
        if self._connection is not None:
            self._connection.close()
        if self._child is not None:
            self._child.kill()
            self._child.wait()
        self._child = self._connection = None


def name_of(function: Callable | str) -> tuple[str, str]:
    """(module, name) of a module-level function, or of "module:name" (named so that the
    parent need not import the renderer's module)."""
    if isinstance(function, str):
        module, _, name = function.partition(":")
        return module, name
    return function.__module__, function.__qualname__


def function_named(module: str, name: str) -> Callable:
    return getattr(importlib.import_module(module), name)


def _started_here(names):
    """(child, connection) of a renderer started as a new interpreter, not a fork (the
    grader has threads a fork would copy in whatever state they are) nor multiprocessing's
    spawn (a Dask worker is a daemonic process, which multiprocessing lets have no
    children): it imports the two functions by name."""
    ours, theirs = socket.socketpair()
    with theirs:
        child = subprocess.Popen(
            [sys.executable, "-m", __spec__.name, str(theirs.fileno()), *names],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=_environment(),
            cwd="/")
    return child, Connection(ours.detach())


def _environment():
    """The child's environment: this one's, with the grader importable from anywhere."""
    return {**os.environ, "PYTHONPATH": python_path_with_grader()}


def _served(names):
    """(child, connection) of a renderer forked by this machine's page server
    (grader.publish.page_server), when the environment names one that serves `names`;
    else None (said in the log when a server was named)."""
    from grader.publish import page_server  # its own imports are few; only asked for here

    address = os.environ.get(page_server.ADDRESS_VARIABLE)
    if not address:
        return None
    ours, theirs = socket.socketpair()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server, theirs:
            server.settimeout(page_server.REQUEST_SECONDS)
            server.connect(address)
            socket.send_fds(server, [page_server.request(names)], [theirs.fileno()])
            pid, fds, _, _ = socket.recv_fds(server, 64, 1)
    except OSError as error:
        reason = str(error)
    else:
        if len(fds) == 1 and pid.isdigit():
            return ForkedChild(int(pid), fds[0]), Connection(ours.detach())
        reason = "the request was refused"
        for fd in fds:
            os.close(fd)
    ours.close()
    log.info("the page server gave no renderer (%s); this worker starts its own", reason)
    return None


class ForkedChild:
    """A renderer the page server forked, held by a pidfd: Popen's poll, kill and wait for
    a process that is not this one's child."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid, self._pidfd = pid, pidfd

    def poll(self) -> int | None:
        """0 once the process has ended (its exit status is its parent's), else None."""
        return 0 if self._pidfd < 0 or readable(self._pidfd, 0) else None

    def kill(self) -> None:
        if self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def wait(self) -> int:
        if self._pidfd >= 0:
            readable(self._pidfd, None)
            os.close(self._pidfd)
            self._pidfd = -1
        return 0



def child_main() -> None:
    """The renderer process (`python -m grader.publish.page_process FD MODULE NAME MODULE
    NAME`): serve the socket FD with the two functions named."""
    descriptor, *names = sys.argv[1:]
    render_page, warm_up = (function_named(module, name)
                            for module, name in zip(names[::2], names[1::2], strict=True))
    serve(Connection(int(descriptor)), render_page, warm_up)


def serve(connection: Connection, render_page: Callable[[dict, dict], str],
          warm_up: Callable[[], object]) -> None:
    """The child: render each (notebook, resources) sent until the pipe closes."""
    # Ctrl-C reaches every process of the terminal's group: the coordinator stops this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm_up()  # before the first page's clock starts
    answer: tuple[str, str | None] = ("ready", None)
    while True:
        try:  # the worker that started it gone (killed, or its batch over): it ends quietly
            connection.send(answer)
            notebook, resources = connection.recv()
        except (EOFError, OSError):
            return
        try:
            answer = ("page", render_page(notebook, resources))
        except Exception as error:
            answer = ("error", f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    child_main()
