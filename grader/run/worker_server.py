"""The server the workers of this machine's cluster are forked from (multiprocessing's
forkserver): a new interpreter that imports Dask and the grading code once, for every
worker to start with them imported, instead of each worker importing them itself (1.4 CPU
s a worker, on the cores that also import the kernel template's TensorFlow as a batch
starts; bench/README.md). Started once per coordinating process: no state of the
coordinator, its threads or its open files reaches a worker.

This module imports nothing heavy: the command line starts the server (start_soon) before
it imports the grading pipeline, so that the server's imports and the coordinator's go on
side by side, and the batch's workers are forked as soon as its cluster starts.
"""

import logging
import multiprocessing
from multiprocessing import forkserver

METHOD = "forkserver"
# server_end, first, makes the server's own end quick; page_render is the page server's
# (grader.publish.page_server), forked from this one too.
WORKER_MODULES = ("grader.run.server_end", "distributed", "grader.run.worker",
                  "grader.run.sandbox", "grader.run.execution", "grader.run.rebuild",
                  "grader.publish.on_worker", "grader.publish.page_render")

log = logging.getLogger(__name__)


def preload_workers_code() -> None:
    """Have the server import WORKER_MODULES as it starts (Dask's own choice, set as its
    context is first asked for, is its packages only). No change once the server runs: it
    imported them when it started."""
    multiprocessing.get_context(METHOD).set_forkserver_preload(list(WORKER_MODULES))


def start_soon() -> None:
    """Start the server now, its imports in its own process: this one goes on at once. A
    server that cannot start (a machine out of processes) is logged: the cluster's start
    tries again, and says why the batch cannot grade if it still cannot."""
    preload_workers_code()
    try:
        forkserver.ensure_running()
    except OSError:
        log.info("the worker server did not start ahead; the cluster's start starts it",
                 exc_info=True)
