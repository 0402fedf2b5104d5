"""grader.run.import_turns: the kernel templates of one machine import their modules in
turns, as many at a time as it has cores less one."""

import fcntl
import gc
import os
import subprocess
import sys
import threading
import time

import pytest

from grader.run import import_turns
from grader.run.import_turns import import_turn, turns_here


def test_the_turns_are_in_the_users_cache_one_fewer_than_the_cores(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path / "cache"))
    folder, count = turns_here(cores=8)
    assert (folder, count) == (str(tmp_path / "cache" / import_turns.FOLDER), 7)
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert turns_here(cores=2)[1] == turns_here(cores=1)[1] == 1


def test_no_turns_without_a_cache_or_in_a_folder_not_the_users_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_CACHE_DIR", "off")
    assert turns_here() is None
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    shared = tmp_path / import_turns.FOLDER
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # another user could hold every turn
    assert turns_here() is None
    shared.rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    shared.symlink_to(tmp_path / "elsewhere")
    assert turns_here() is None
    monkeypatch.delenv("GRADER_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr("pathlib.Path.home", _no_home)
    assert turns_here() is None  # a worker's user without a home folder


def _no_home():
    raise RuntimeError("Could not determine home directory.")


def test_a_template_waits_for_the_turn_another_holds(tmp_path):
    turns, order = (str(tmp_path), 1), []
    first_holds = threading.Event()

    def first():
        with import_turn(turns) as held:
            order.append(("first", held))
            first_holds.set()
            time.sleep(0.3)
            order.append(("first done", held))

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait(10)
    with import_turn(turns) as held:  # an flock of another open file: it waits
        order.append(("second", held))
    thread.join()
    assert order == [("first", True), ("first done", True), ("second", True)]


def test_with_two_turns_two_import_at_once(tmp_path):
    turns = (str(tmp_path), 2)
    with import_turn(turns) as first, import_turn(turns, wait=0) as second:
        assert first and second


def test_a_turn_never_given_back_is_waited_for_only_so_long(tmp_path):
    turns = (str(tmp_path), 1)
    with import_turn(turns):
        started = time.monotonic()
        with import_turn(turns, wait=0.2) as held:
            assert not held  # imports without one
        assert 0.2 <= time.monotonic() - started < 5


def test_a_template_killed_in_its_turn_gives_it_back(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; "
         f"fd = os.open({str(tmp_path / 'turn-0')!r}, os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with import_turn((str(tmp_path), 1), wait=0) as held:
            assert not held
        holder.kill()
        holder.wait()
        with import_turn((str(tmp_path), 1), wait=5) as held:
            assert held
    finally:
        holder.kill()
        holder.stdout.close()


def test_a_folder_that_is_gone_means_no_turn(tmp_path):
    with import_turn((str(tmp_path / "missing"), 1)) as held:
        assert not held


@pytest.mark.parametrize("count", [1, 3])
def test_every_file_opened_for_a_turn_is_closed_but_the_one_held(tmp_path, count):
    before = len(os.listdir("/proc/self/fd"))
    with import_turn((str(tmp_path), count)) as held:
        assert held and len(os.listdir("/proc/self/fd")) == before + 1
        descriptor = os.open(tmp_path / "turn-0", os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(descriptor)
    assert len(os.listdir("/proc/self/fd")) == before


def test_modules_are_imported_without_the_collector_then_frozen(tmp_path, monkeypatch):
    (tmp_path / "records_the_collector.py").write_text(
        "import gc\nCOLLECTOR_ON = gc.isenabled()\nKEPT = [object() for _ in range(1000)]\n")
    (tmp_path / "fails_to_import.py").write_text("raise ImportError('broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    frozen_before = gc.get_freeze_count()
    try:
        import_turns.import_preloaded(["json", "records_the_collector"])
        assert gc.isenabled()
        assert sys.modules["records_the_collector"].COLLECTOR_ON is False
        assert gc.get_freeze_count() >= frozen_before + 1000
        with pytest.raises(ImportError, match="broken"):
            import_turns.import_preloaded(["fails_to_import"])
        assert gc.isenabled()  # a template that fails to import ends as it would have
    finally:
        gc.unfreeze()
        gc.enable()
        sys.modules.pop("records_the_collector", None)
