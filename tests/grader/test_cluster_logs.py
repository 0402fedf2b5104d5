"""The one Dask log record a batch that went well must not print: the last heartbeat of a
worker that is closing (CI saw its traceback after a clean batch)."""

import inspect
import logging
from types import SimpleNamespace

import distributed.worker
import pytest
from distributed.core import Status

from grader.run import cluster, local_cluster


@pytest.fixture
def worker_log():
    logger = logging.getLogger("distributed.worker")
    before = list(logger.filters)
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    yield logger, records
    logger.removeHandler(handler)
    logger.filters[:] = before


def _heartbeat_fails(logger):
    try:
        raise OSError("Stream is closed")
    except OSError:
        logger.exception(cluster.LAST_HEARTBEAT)


@pytest.mark.parametrize("status", [Status.closing, Status.closing_gracefully, Status.closed])
def test_a_leaving_workers_last_heartbeat_is_not_logged(worker_log, status):
    logger, records = worker_log
    cluster._quiet_the_last_heartbeat(SimpleNamespace(status=status))
    _heartbeat_fails(logger)
    assert records == []


def test_a_running_worker_that_loses_its_scheduler_still_says_so(worker_log):
    logger, records = worker_log
    worker = SimpleNamespace(status=Status.running)
    cluster._quiet_the_last_heartbeat(worker)
    _heartbeat_fails(logger)
    logger.warning("Scheduler was unaware of this worker; shutting down.")
    worker.status = Status.closing
    logger.warning("another record")
    assert [r.getMessage() for r in records] == [
        cluster.LAST_HEARTBEAT, "Scheduler was unaware of this worker; shutting down.",
        "another record"]
    assert records[0].exc_info


def test_a_replacement_worker_in_the_same_process_has_one_filter(worker_log):
    logger, _ = worker_log
    for _ in range(3):
        cluster._quiet_the_last_heartbeat(SimpleNamespace(status=Status.running))
    assert sum(isinstance(f, cluster._LastHeartbeatOfALeavingWorker)
               for f in logger.filters) == 1


def test_dask_still_logs_that_message_from_its_heartbeat():
    # If Dask rewords it, the filter would silently stop matching.
    source = inspect.getsource(distributed.worker.Worker.heartbeat)
    assert f'logger.exception("{cluster.LAST_HEARTBEAT}")' in source
    assert distributed.worker.logger.name == "distributed.worker"


def test_local_workers_that_do_not_start_are_one_clear_error(monkeypatch, caplog):
    # A machine out of processes or memory: Dask raises "Nanny failed to start." from deep
    # in its start-up; the instructor gets one sentence, Dask's traceback goes to the log.
    def failing(**options):
        raise RuntimeError("Nanny failed to start.")

    monkeypatch.setattr(local_cluster, "LocalCluster", failing)
    with caplog.at_level(logging.INFO, logger="grader.run.cluster"), \
            pytest.raises(cluster.ClusterError) as raised, cluster.connect(workers=2):
        raise AssertionError("not reached")
    assert str(raised.value).startswith("the grader's local Dask workers did not start "
                                        "(RuntimeError: Nanny failed to start.)")
    assert any(record.exc_info for record in caplog.records)
