"""The page server (grader.publish.page_server): each local worker's feedback page renderer
forked warm from one process per machine, held by a pidfd, and refused to anyone else."""

import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from grader.publish import page_process, page_server
from grader.publish.feedback import page_resources
from grader.publish.page_process import ForkedChild, PageProcess, PageTimeout
from grader.run import server_end, worker_server

REPO_ROOT = Path(__file__).resolve().parents[3]
NAMES = (*page_process.name_of(page_server.RENDER_PAGE),
         *page_process.name_of(page_server.WARM_UP))


@pytest.fixture(scope="module")
def server():
    worker_server.preload_workers_code()
    served = page_server.PageServer()
    yield served
    served.close()
    assert not Path(served.folder).exists()


@pytest.fixture
def named(server, monkeypatch):
    """The server, named in this process's environment as in a local worker's."""
    monkeypatch.setenv(page_server.ADDRESS_VARIABLE, server.address)
    return server


def _page_of(pages):
    return pages.render(nbformat.v4.new_notebook(), page_resources("student-1", 3, 4))


def _gone(pid, seconds=10.0):
    """Whether process `pid` ends (or is a zombie) within `seconds`."""
    deadline = time.monotonic() + seconds
    while not _ended(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _ended(pid)


def _ended(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_workers_renderer_is_forked_warm_and_renders_the_same_page(named, monkeypatch):
    served = PageProcess(page_server.RENDER_PAGE, page_server.WARM_UP)
    try:
        page = _page_of(served)
        child = served._child
        assert isinstance(child, ForkedChild)
        assert psutil.Process(child.pid).parent().pid == named.process.pid
        wall, cpu = served.take_startup()
        assert cpu < 0.1  # nothing to import or build: a new interpreter spends 0.5 s
    finally:
        served.close()
    assert _gone(child.pid)
    monkeypatch.delenv(page_server.ADDRESS_VARIABLE)
    here = PageProcess(page_server.RENDER_PAGE, page_server.WARM_UP)
    try:
        assert _page_of(here) == page  # the same page from a renderer started here
        assert isinstance(here._child, subprocess.Popen)
    finally:
        here.close()


def test_a_page_over_its_time_kills_its_renderer_and_the_next_gets_a_new_one(named):
    pages = PageProcess(page_server.RENDER_PAGE, page_server.WARM_UP, seconds=0.001)
    try:
        pages._started()  # a renderer ready: its page alone is timed
        first = pages._child.pid
        with pytest.raises(PageTimeout):
            _page_of(pages)
        assert pages._child is None and _gone(first, 0.5)  # killed through its pidfd
        pages.seconds = 60
        assert "student-1" in _page_of(pages)
        assert isinstance(pages._child, ForkedChild) and pages._child.pid != first
    finally:
        pages.close()


def test_a_renderer_ends_when_its_worker_closes_the_pair(named):
    child, connection = page_process._served(NAMES)
    assert connection.recv() == ("ready", None)
    connection.close()
    assert _gone(child.pid)
    assert child.poll() == 0
    child.wait()


def test_a_dead_renderer_is_replaced_before_the_next_page(named):
    pages = PageProcess(page_server.RENDER_PAGE, page_server.WARM_UP)
    try:
        _page_of(pages)
        first = pages._child.pid
        os.kill(first, 9)  # killed between two pages (out of memory, by someone)
        assert _gone(first)
        assert "student-1" in _page_of(pages)
        assert pages._child.pid != first
    finally:
        pages.close()


def test_a_renderer_the_server_does_not_serve_is_started_here(named, caplog):
    with caplog.at_level(logging.INFO, logger="grader.publish.page_process"):
        assert page_process._served(("builtins", "str", "builtins", "dict")) is None
    assert "the page server gave no renderer" in caplog.text
    pages = PageProcess(str, dict)
    try:
        pages._started()
        assert isinstance(pages._child, subprocess.Popen)
    finally:
        pages.close()


def test_a_server_that_is_gone_leaves_each_worker_to_start_its_own(tmp_path, monkeypatch,
                                                                   caplog):
    monkeypatch.setenv(page_server.ADDRESS_VARIABLE, str(tmp_path / "none.sock"))
    with caplog.at_level(logging.INFO, logger="grader.publish.page_process"):
        pages = PageProcess(page_server.RENDER_PAGE, page_server.WARM_UP)
        try:
            assert "student-1" in _page_of(pages)
            assert isinstance(pages._child, subprocess.Popen)
        finally:
            pages.close()
    assert "the page server gave no renderer" in caplog.text


# --- Who reaches it -------------------------------------------------------------------------

NOBODY = 65534
_AS_NOBODY = textwrap.dedent("""
    import os, socket, sys
    os.setgroups([]); os.setgid({uid}); os.setuid({uid})
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(10)
    try:
        client.connect({address!r})
    except PermissionError:
        print("no access"); sys.exit()
    ours, theirs = socket.socketpair()
    socket.send_fds(client, [{request!r}], [theirs.fileno()])
    message, fds, _, _ = socket.recv_fds(client, 64, 1)
    print("renderers given:", len(fds))
""")


def _as_nobody(address):
    code = _AS_NOBODY.format(uid=NOBODY, address=address, request=page_server.request(NAMES))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to be another user")
def test_another_user_cannot_reach_the_server(server):
    # A kernel runs as a user of its own: the server's folder is closed to it, and a peer
    # of another uid is refused even where the folder were open.
    assert _as_nobody(server.address) == "no access"
    folder, socket_file = Path(server.folder), Path(server.address)
    modes = folder.stat().st_mode, socket_file.stat().st_mode
    try:
        folder.chmod(0o711)
        socket_file.chmod(0o777)
        assert _as_nobody(server.address) == "renderers given: 0"
    finally:
        folder.chmod(modes[0] & 0o7777)
        socket_file.chmod(modes[1] & 0o7777)


def test_the_server_keeps_at_most_its_number_of_renderers(tmp_path):
    # Refused before any fork: the full server forks nothing, here in the test process.
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "s.sock"))
    listener.listen()
    answers = []

    def ask():
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(tmp_path / "s.sock"))
            ours, theirs = socket.socketpair()
            socket.send_fds(client, [page_server.request(NAMES)], [theirs.fileno()])
            answers.append(socket.recv_fds(client, 64, 1))
            ours.close()
            theirs.close()

    asking = threading.Thread(target=ask)
    asking.start()
    children = set(range(10**7, 10**7 + page_server.MAX_RENDERERS))
    page_server._answer(listener, page_server.request(NAMES), str, children)
    asking.join(10)
    listener.close()
    assert answers and answers[0][1] == [] and len(children) == page_server.MAX_RENDERERS


_STARTS_A_SERVER = textwrap.dedent("""
    import os, sys, time
    from grader.publish import page_server
    page_server.started()
    print(page_server._server[0].process.pid, page_server._server[0].folder, flush=True)
    time.sleep(60)
""")


def test_the_server_ends_with_the_process_that_started_it():
    starter = subprocess.Popen([sys.executable, "-c", _STARTS_A_SERVER], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, text=True)
    try:
        pid, folder = starter.stdout.readline().split()
        assert psutil.Process(int(pid)).is_running() and Path(folder).is_dir()
        starter.kill()  # no exit of its own: killed
        starter.wait()
        assert _gone(int(pid))
        assert not Path(folder).exists()  # removed by the server as it ended
    finally:
        starter.kill()
        starter.stdout.close()


def test_a_process_that_ends_removes_its_servers_folder():
    code = ("from grader.publish import page_server\n"
            "print(page_server.started()[page_server.ADDRESS_VARIABLE])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    address = Path(result.stdout.strip())
    assert address.name == "pages.sock" and not address.parent.exists()


def test_only_the_worker_server_skips_its_teardown():
    # Imported here (not in multiprocessing's forkserver): this process ends as it would.
    assert server_end.registered is False
    assert worker_server.WORKER_MODULES[0] == "grader.run.server_end"  # registered first


def test_a_batch_counts_the_servers_cpu_once(monkeypatch):
    # Its warm-up is the batch's renderers' start: in the profile once, not again.
    from grader.stage_clock import StageClock

    # A server of this test's own: this process's may have been counted by a batch before.
    monkeypatch.setattr(page_server, "_server", [])
    monkeypatch.setattr(page_server, "_counted", [0.0])
    try:
        monkeypatch.setenv(page_server.ADDRESS_VARIABLE,
                           page_server.started()[page_server.ADDRESS_VARIABLE])
        child, connection = page_process._served(NAMES)  # answered once it has warmed up
        connection.close()
        child.wait()
        first, second = StageClock(), StageClock()
        page_server.count_cpu(first)
        page_server.count_cpu(second)
    finally:
        page_server._server[0].close()
    assert first.totals()["page server"]["cpu"] > 0.05  # the exporter built (0.12 s)
    assert second.totals()["page server"]["cpu"] < 0.05


def test_a_server_that_cannot_start_leaves_nothing_and_fails_no_cluster(tmp_path,
                                                                        monkeypatch, caplog):
    # A temporary folder too deep for a socket's path (108 bytes): nothing is named for
    # the workers, the folder made for it is removed, and nothing is raised.
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    monkeypatch.setattr(page_server.tempfile, "tempdir", str(deep))
    monkeypatch.setattr(page_server, "_server", [])
    with caplog.at_level(logging.INFO, logger="grader.publish.page_server"):
        assert page_server.started() == {}
    assert "the page server did not start" in caplog.text
    assert list(deep.iterdir()) == []
