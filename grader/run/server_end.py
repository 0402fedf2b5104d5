"""The worker server's quick end: imported by the worker server alone, as the first of its
preloaded modules (grader.run.worker_server.WORKER_MODULES).

The server ends when the process that started it ends. Its interpreter's teardown then
collected the heap of every module it imported (Dask, nbclient, nbconvert, nbgrader): 0.26 s
of a core after each batch, during which it still held the command's standard output and
error open, so that `grader autograde ... | tee` (or a CI step, or a benchmark) waited for
it. It holds no file to flush or child to wait for by then: the end skips the teardown.
Its workers and renderers, forked from it, leave through multiprocessing's own exit, which
runs no atexit function: this changes nothing for them.
"""

import atexit
import multiprocessing.forkserver
import os
import sys

registered = False  # whether this process ends without its teardown


def _in_the_server() -> bool:
    """Whether this import runs in multiprocessing's forkserver, as it preloads: its `main`
    is on the stack (any other process importing this module is left as it is)."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code is multiprocessing.forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


def _end() -> None:
    """Flush what the server printed, then end at once: the last atexit function to run,
    registered before any of the server's other imports registered theirs."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(0)


if _in_the_server():
    atexit.register(_end)
    registered = True
