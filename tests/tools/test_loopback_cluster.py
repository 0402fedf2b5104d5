"""The test cluster's start: it reads the scheduler's address only once it is written."""

import json
import threading

import pytest

from tools import loopback_cluster


class RunningScheduler:
    """What _scheduler_address asks of the scheduler's process: still running."""

    def poll(self):
        return None


def test_the_address_is_read_once_the_file_is_written_whole(tmp_path):
    # The scheduler creates its file, then writes it: read between the two, it was empty
    # and the cluster's start failed with a JSONDecodeError.
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text("")
    writer = threading.Timer(0.3, scheduler_file.write_text,
                             [json.dumps({"address": "tls://127.0.0.1:4242"})])
    writer.start()
    try:
        assert loopback_cluster._scheduler_address(tmp_path, RunningScheduler(), 10) == \
            "tls://127.0.0.1:4242"
    finally:
        writer.join()


@pytest.mark.parametrize("text", ["", "{", "[]", '{"id": 1}'])
def test_a_file_not_yet_whole_is_no_address(tmp_path, text):
    (tmp_path / "scheduler.json").write_text(text)
    assert loopback_cluster._written_address(tmp_path / "scheduler.json") is None


def test_a_scheduler_whose_file_never_comes_is_a_start_error(tmp_path):
    with pytest.raises(loopback_cluster.ClusterStartError, match="did not start"):
        loopback_cluster._scheduler_address(tmp_path, RunningScheduler(), 0.3)
