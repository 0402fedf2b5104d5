"""One warm page renderer per machine, which forks each local worker's renderer.

A worker's page renderer (grader.publish.page_process) started as a new interpreter imports
nbconvert and builds its exporter and the pages' policy: 0.57 CPU s a worker, on the cores
that also import the kernel template's TensorFlow as a batch starts. The page server is
forked from the worker server (grader.run.worker_server), which imported the renderer's
modules already; it builds the exporter once, then forks a renderer for each worker that
asks, a copy of itself that has nothing left to import or build.

    coordinator  --forkserver-->  page server: warm-up once
    worker       --unix socket: the renderer's names, one end of a socketpair-->  page server
                 <--the renderer's pid and a pidfd of it----------------------   --fork--> renderer
    worker  <== the socketpair ==>  renderer: pages, as with a renderer the worker started

The worker holds a pidfd of its renderer: it kills that very process when a page overruns,
never another that took its number. A renderer ends when its worker closes the pair (the
batch over, the worker killed); the server ends with the process that started it. Only a
process of the same user reaches the server (its socket in a folder only that user opens,
and the peer's uid checked), and it keeps at most MAX_RENDERERS alive. A worker that gets no
renderer from it (a remote worker, the server gone or refusing) starts its own, as before.
"""

import atexit
import contextlib
import json
import logging
import multiprocessing
import os
import selectors
import shutil
import signal
import socket
import struct
import tempfile
import threading
from multiprocessing.connection import Connection
from typing import Any

import psutil

from grader.publish import page_process
from grader.run import local_cluster, worker_server
from grader.stage_clock import StageClock

ADDRESS_VARIABLE = "GRADER_PAGE_SERVER"  # the server's socket, in a local worker's environment
RENDER_PAGE = "grader.publish.page_render:render_page"
WARM_UP = "grader.publish.page_render:warm_up"
MAX_RENDERERS = 64  # alive at once: far above a machine's workers
REQUEST_SECONDS = 10  # for a request to arrive, and for the worker, the server's answer
REAP_SECONDS = 1.0  # how often the server collects its ended renderers

log = logging.getLogger(__name__)


class PageServer:
    """The page server, forked from the worker server with `render_page` and `warm_up`
    ("module:name"), listening on a socket in a folder of its own until `close`."""

    def __init__(self, render_page: str = RENDER_PAGE, warm_up: str = WARM_UP) -> None:
        self.folder = tempfile.mkdtemp(prefix="grader-pages-")  # 0700: this user only
        self.address = os.path.join(self.folder, "pages.sock")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
                listener.bind(self.address)  # OSError for a path too long for a socket
                listener.listen(16)
                context: Any = multiprocessing.get_context(worker_server.METHOD)
                # Daemonic: stopped by multiprocessing as this process ends; it also ends
                # when this process dies (its parent's sentinel), whoever killed it.
                self.process = context.Process(target=serve, name="grader-page-server",
                                               args=(listener, render_page, warm_up),
                                               daemon=True)
                self.process.start()
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        # Before multiprocessing's own exit function (registered earlier, so run later)
        # would stop the server and leave its folder behind.
        atexit.register(self.close)
        # This copy of the listener closed: a worker asking a server that died is refused,
        # not left waiting in the backlog of a socket nobody reads.

    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self) -> None:
        """Stop the server and remove its folder (again: nothing more)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        shutil.rmtree(self.folder, ignore_errors=True)


_server: list[PageServer] = []  # this process's, once started
_server_lock = threading.Lock()


def started() -> dict[str, str]:
    """Start this process's page server unless one runs; what a local worker's environment
    needs to reach it (nothing when it cannot start: logged, and each worker then starts
    its renderer itself)."""
    with _server_lock:
        if not (_server and _server[0].alive()):
            _start()
        return {ADDRESS_VARIABLE: _server[0].address} if _server else {}


def _start() -> None:
    with contextlib.suppress(IndexError):
        _server.pop().close()
        _counted[0] = 0.0
    worker_server.preload_workers_code()
    try:
        _server.append(PageServer())
    except Exception:  # never the cluster's failure: its workers render as before
        log.info("the page server did not start; each worker starts its own renderer",
                 exc_info=True)


# Every local cluster's workers reach this process's server (started with the first).
local_cluster.ENVIRONMENT_SOURCES.append(started)


_counted = [0.0]  # the server's CPU seconds already in a batch's profile


def count_cpu(clock: StageClock) -> None:
    """Add to `clock` (grader.stage_clock.StageClock) what this process's page server spent
    since last counted (its warm-up, its forks) as the stage "page server"."""
    with _server_lock:
        pid = _server[0].process.pid if _server else None
    try:
        times = psutil.Process(pid).cpu_times() if pid else None
    except psutil.Error:
        return
    if times is not None:
        spent = times.user + times.system
        clock.add_stage("page server", cpu=max(0.0, spent - _counted[0]))
        _counted[0] = spent


def request(names: tuple[str, str, str, str]) -> bytes:
    """A request for a renderer of the functions `names` (module, name, module, name)."""
    return json.dumps(list(names)).encode()


# ---------------------------------------------------------------- the server's process

def serve(listener: socket.socket, render_page: str, warm_up: str) -> None:
    """The server: warm up, then fork a renderer for each request, until the process that
    started it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: its parent stops it
    names = (*page_process.name_of(render_page), *page_process.name_of(warm_up))
    render = page_process.function_named(*names[:2])
    page_process.function_named(*names[2:])()
    expected = request(names)
    parent = multiprocessing.parent_process()
    children: set[int] = set()
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        if parent is not None:
            selector.register(parent.sentinel, selectors.EVENT_READ)
        while True:
            ready = selector.select(REAP_SECONDS)
            _reap(children)
            for key, _ in ready:
                if key.fileobj is not listener:  # the process that started it died
                    _remove_folder(listener)
                    return
                _answer(listener, expected, render, children)


def _remove_folder(listener):
    """Remove the server's socket and folder, which its dead parent did not."""
    address = listener.getsockname()
    with contextlib.suppress(OSError):
        os.unlink(address)
        os.rmdir(os.path.dirname(address))


def _answer(listener, expected, render, children):
    """Fork a renderer for the request waiting on `listener`, if it is `expected` and from
    this user, and send back its pid and a pidfd of it; otherwise close the connection."""
    connection, _ = listener.accept()
    with connection:
        connection.settimeout(REQUEST_SECONDS)
        try:
            _, uid, _ = struct.unpack("3i", connection.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            message, fds, _, _ = socket.recv_fds(connection, 4096, 1)
        except OSError:
            return
        try:
            if uid == os.getuid() and message == expected and len(fds) == 1 \
                    and len(children) < MAX_RENDERERS:
                _fork_renderer(connection, fds[0], render, children)
        except OSError:
            log.warning("the page server could not fork a renderer", exc_info=True)
        finally:
            for fd in fds:
                os.close(fd)


def _fork_renderer(connection, pair, render, children):
    pid = os.fork()
    if pid == 0:
        _renderer(pair, render)
    children.add(pid)
    pidfd = os.pidfd_open(pid)  # before any reaping: `pid` is still this child's
    try:
        socket.send_fds(connection, [str(pid).encode()], [pidfd])
    finally:
        os.close(pidfd)


def _renderer(pair, render):
    """The forked renderer: serve the worker's end of the pair, then end, never returning
    into the server's loop."""
    try:
        # Only the pair and the standard streams: not the server's listener, nor its
        # sentinels (which would keep a dead parent looking alive).
        os.closerange(3, pair)
        os.closerange(pair + 1, os.sysconf("SC_OPEN_MAX"))
        page_process.serve(Connection(pair), render, lambda: None)
    finally:
        os._exit(0)


def _reap(children):
    for pid in list(children):
        try:
            ended = os.waitpid(pid, os.WNOHANG)[0] == pid
        except ChildProcessError:
            ended = True
        if ended:
            children.discard(pid)
