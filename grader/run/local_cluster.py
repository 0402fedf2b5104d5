"""What the workers `autograde` starts on this machine run with: a LocalCluster of one-thread
processes, Dask's memory management and debugging logs set for grading (grader.run.cluster
starts it for a batch, under CONFIG)."""

import contextlib
import os
import threading
from collections.abc import Callable

import dask
from distributed import LocalCluster
from distributed.security import Security
from distributed.utils import get_mp_context

from grader.run import worker_server

# Only the nanny's restart past 95% of the limit: a worker paused (80%) or spilling
# (60-70%) would wait, maybe for ever, for memory that Python does not give back.
WORKER_MEMORY_CONFIG = {"distributed.worker.memory.target": False,
                        "distributed.worker.memory.spill": False,
                        "distributed.worker.memory.pause": False,
                        "distributed.worker.memory.terminate": 0.95}
# Dask keeps, for debugging, the last 1000 batches of messages each connection sent, each
# under 1 MB whole: on the scheduler, every submission's task with its notebook. A local
# cluster's scheduler lives in the coordinator, whose memory grew by a notebook per
# student until the 1000th (150 to 200 kB a student, measured by bench_coordinator.py). The
# same length caps the scheduler's transition log and each event topic's history, which
# the batch reads live. A remote scheduler is started with the same setting
# (docs/cluster.md).
SCHEDULER_LOG_LENGTH = 20
# Each process's small HTTP server answers health checks only: Dask's default pages on the
# scheduler's (task keys, which name students; the workers' logs and call stacks) would be
# open, without credentials, to every user of the machine (the TLS of `credentials` covers
# Dask's own connections, not these pages).
HTTP_ROUTES = ["distributed.http.health"]
SCHEDULER_CONFIG = {"distributed.admin.low-level-log-length": SCHEDULER_LOG_LENGTH,
                    "distributed.scheduler.http.routes": HTTP_ROUTES}
# Dask's statistical profiler samples each worker's running task 100 times a second, for
# a dashboard page no batch serves: 0.3 CPU s per worker in a batch of 12 (bench/README.md).
WORKER_CONFIG = {**WORKER_MEMORY_CONFIG, "distributed.worker.http.routes": HTTP_ROUTES,
                 "distributed.worker.profile.enabled": False}
# Each worker process is forked from one server that imported Dask and the grading code
# once (grader.run.worker_server), not started as a new interpreter that imports them.
PROCESS_CONFIG = {"distributed.worker.multiprocessing-method": worker_server.METHOD}
# set while the batch's cluster runs
CONFIG = {**WORKER_CONFIG, **SCHEDULER_CONFIG, **PROCESS_CONFIG}
# What the stages above this one add to the environment of workers forked from the worker
# server, asked in the thread that starts the cluster (they may start processes): the page
# server's address (grader.publish.page_server registers itself as it is imported).
ENVIRONMENT_SOURCES: list[Callable[[], dict[str, str]]] = []


def start(workers: int, memory_limit: int | None) -> LocalCluster:
    """A LocalCluster of `workers` processes of one thread, each limited to `memory_limit`
    bytes (None: Dask's share of the machine's), talking over TLS with credentials of
    its own (credentials); no dashboard (the scheduler's small HTTP server, for health
    and metrics, on a free loopback port: another cluster here may hold 8787). Dask's own
    exception when it does not start. Under CONFIG, its workers are forked from the
    worker server (grader.run.worker_server); each gets this process's environment as it
    is now (the server holds the one it was started with: a variable unset since then,
    in a process that grades batch after batch, stays set), and what ENVIRONMENT_SOURCES
    add."""
    environment = dict(os.environ)
    if get_mp_context().get_start_method() == worker_server.METHOD:  # set by CONFIG
        worker_server.preload_workers_code()
        for source in ENVIRONMENT_SOURCES:
            environment.update(source())
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                        memory_limit=memory_limit or "auto", dashboard_address=None,
                        security=credentials(), env=environment,
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


def worker_count(workers: int | None, submissions: int) -> int:
    """How many workers a batch starts: as asked (by default one a core), at most one a
    submission."""
    return max(1, min(workers or os.cpu_count() or 1, submissions))


def credentials() -> Security:
    """A certificate and key made for one cluster, which its scheduler, nannies, workers
    and the batch's client present to each other (mutual TLS). A Dask scheduler, and each
    nanny and worker, runs any function a connection sends it, as the user grading runs
    as (root, for the sandbox): on plain TCP, anyone with an account on this machine
    could connect to the loopback ports during a batch, run code as that user, read the
    grading's secrets and the gradebook, and change grades. The credentials live in
    memory only (sent to the worker processes as they are spawned, never written to a
    file or an environment): a kernel, confined under a user of its own, cannot read
    them."""
    return Security.temporary()


class StartedSoon:
    """A LocalCluster started in a thread of its own while the batch reads its
    submissions and opens its gradebook (seconds of Python start-up and imports in each
    worker process, their kernel templates after them), for `take` to hand to the batch,
    or `close` to stop when the batch needs none (every submission kept from an earlier
    batch, or the batch stopped before grading)."""

    def __init__(self, workers: int, memory_limit: int | None) -> None:
        self.workers, self.memory_limit = workers, memory_limit
        self._cluster: LocalCluster | None = None
        self._error: BaseException | None = None
        self._taken = False
        self._thread = threading.Thread(target=self._start, name="grader-cluster-start",
                                        daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            with dask.config.set(CONFIG):  # read by each nanny as it starts its worker
                self._cluster = start(self.workers, self.memory_limit)
        except BaseException as error:  # raised by `take`, in the batch's thread
            self._error = error

    def take(self, workers: int, memory_limit: int | None) -> LocalCluster | None:
        """The cluster, scaled to `workers` processes; None when it was started with
        another memory limit (it is stopped). Dask's exception when it did not start."""
        self._thread.join()
        self._taken = True
        if self._error is not None:
            raise self._error
        cluster = self._cluster
        if cluster is None or memory_limit != self.memory_limit:
            self.close(force=True)
            return None
        if workers != self.workers:
            cluster.scale(workers)
        return cluster

    def close(self, *, force: bool = False) -> None:
        """Stop the cluster unless the batch took it (or `force`)."""
        if self._taken and not force:
            return
        self._thread.join()
        if self._cluster is not None:
            with contextlib.suppress(Exception):  # nothing ran on it: nothing to keep
                self._cluster.close()
            self._cluster = None
