"""OUT holds the answer key, every student's grades and work, and a submission's secret
while it is graded: a fresh one is its owner's alone, and a batch on one that every user
of the machine can reach says so."""

import os
import stat

import pytest

from grader.publish.files import private_folder


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_out_is_its_owners_alone_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        assert private_folder(tmp_path / "deep" / "out") is None
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "deep" / "out") == 0o700


def test_an_out_others_can_reach_keeps_its_mode_and_is_warned_of(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o755)
    warning = private_folder(out)
    assert f"every user of this machine can reach {out} (mode 755)" in warning
    assert f"chmod o-rwx {out}" in warning and _mode(out) == 0o755
    out.chmod(0o750)  # shared with a group (teaching assistants): their choice
    assert private_folder(out) is None and _mode(out) == 0o750


def test_an_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(FileExistsError):
        private_folder(tmp_path / "out")
