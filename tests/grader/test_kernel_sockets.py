"""grader.run.kernel_sockets: an unconfined kernel's channels are socket files in a private
folder that lives as long as the run, never TCP ports another process could take first
(tests/grader/test_warm_kernels.py starts kernels beside a process taking free ports)."""

import os
import stat
import tempfile

from grader.run.kernel_sockets import CHANNEL_SUFFIX, kernel_manager, private_sockets
from grader.run.pipes import MAX_SOCKET_PATH


def test_the_sockets_folder_is_private_and_removed_with_what_it_holds():
    with private_sockets() as ip:
        folder = os.path.dirname(ip)
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert os.stat(folder).st_uid == os.getuid()
        with open(ip + "-1", "w"):  # a channel's socket file, left by a killed kernel
            pass
    assert not os.path.exists(folder)


def test_each_run_gets_a_folder_of_its_own():
    with private_sockets() as first, private_sockets() as second:
        assert os.path.dirname(first) != os.path.dirname(second)


def test_a_temporary_folder_too_long_for_a_socket_falls_back_to_tcp(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * (MAX_SOCKET_PATH - len(str(tmp_path))))
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with private_sockets() as ip:
        assert ip is None
    assert kernel_manager(ip).transport == "tcp"


def test_a_path_that_fits_is_used_up_to_the_last_channel():
    with private_sockets() as ip:
        assert len(os.fsencode(ip + CHANNEL_SUFFIX)) <= MAX_SOCKET_PATH
        manager = kernel_manager(ip)
    assert (manager.transport, manager.ip, manager.kernel_name) == ("ipc", ip, "python3")
