"""Scratch folders: removed at the end, and those of a killed grader process by the next."""

import os
import subprocess
import sys

from grader import scratch


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_scratch_folder_is_private_and_removed_at_the_end():
    with scratch.scratch_folder("test") as folder:
        assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700
        assert folder.name.startswith(f"grader-test-{os.getpid()}-")
        (folder / "notebook.ipynb").write_text("{}")
    assert not folder.exists()


def test_folders_of_dead_processes_go_and_the_others_stay(tmp_path):
    dead = tmp_path / f"grader-submission-{_dead_pid()}-abc"
    (dead / "lab").mkdir(parents=True)
    (dead / "lab" / "notebook.ipynb").write_text("a student's answers")
    alive = tmp_path / f"grader-submission-{os.getpid()}-def"
    alive.mkdir()
    other_kind = tmp_path / f"grader-batch-{_dead_pid()}-ghi"
    other_kind.mkdir()
    not_ours = tmp_path / "grader-submission-notapid"
    not_ours.mkdir()
    link = tmp_path / f"grader-submission-{_dead_pid()}-jkl"
    link.symlink_to(alive)
    scratch.remove_stale("submission", parent=tmp_path)
    assert not dead.exists()
    assert alive.is_dir() and other_kind.is_dir() and not_ours.is_dir()
    assert link.is_symlink() and alive.is_dir()  # a link is never followed nor removed


def test_another_users_folder_is_left_alone(tmp_path, monkeypatch):
    stale = tmp_path / f"grader-batch-{_dead_pid()}-abc"
    stale.mkdir()
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    scratch.remove_stale("batch", parent=tmp_path)
    assert stale.is_dir()


def test_making_a_folder_removes_the_stale_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(scratch.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(scratch.tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"grader-batch-{_dead_pid()}-abc"
    stale.mkdir()
    with scratch.scratch_folder("batch") as folder:
        assert folder.parent == tmp_path and not stale.exists()
