"""The lab's release files on a worker: written once per worker process, beside every
submission it grades.

A worker may run on a machine that does not share the coordinator's disk: the files travel
as data (grader.release_files.ReleaseFiles) and are written into a directory of the
worker's own the first time it sees them, then reused for every later submission. They
reach the workers as the result of a task of their own (SupportFilesResult), once per batch.
"""

import contextlib
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import dask

from grader.release_files import ReleaseFiles, write_release_files
from grader.settings import FORGET_SECONDS

SUPPORT_FILES_KEY = "grader-support-files-{digest}-{sent}"

# One directory per set of files in each worker process, removed when the process ends.
_written = {}  # digest -> tempfile.TemporaryDirectory
_writing = threading.Lock()  # a worker may run tasks in several threads


def support_dir(support, parent=None):
    """A directory holding `support`'s files on this machine, written once per process,
    under `parent` (a Dask worker's own folder, which Dask removes when the worker closes
    and clears after it was killed, where a temporary folder of a killed process would
    stay) or the system's temporary folder."""
    with _writing:
        if support.digest not in _written:
            # Errors ignored at exit: the worker's folder may be gone with everything in it.
            directory = tempfile.TemporaryDirectory(prefix="grader-support-", dir=parent,
                                                    ignore_cleanup_errors=True)
            write_release_files(support, directory.name)
            _written[support.digest] = directory
        return Path(_written[support.digest].name)


class SupportFilesResult:
    """The support files as the result of a task, so that Dask can compute them again on
    another worker if every worker holding them dies (scattered data would be lost). Sent
    once per batch, and again only if a worker died while computing them."""

    def __init__(self, client: Any, support_files: ReleaseFiles) -> None:
        self.client, self.support_files = client, support_files
        self.sent = 0
        self._future = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        """Release the support files and wait until the scheduler forgets them: a LocalCluster
        stops its workers next, and a result still wanted when its worker leaves makes the
        scheduler warn that the cluster lost it (seen after about half the batches)."""
        if self._future is None:
            return
        key = self._future.key
        self._future.release()
        self._future = None
        deadline = time.monotonic() + FORGET_SECONDS
        with contextlib.suppress(Exception):  # a lost scheduler holds nothing any more
            while (self.client.run_on_scheduler(_holds, key)
                   and time.monotonic() < deadline):
                time.sleep(0.05)

    def future(self) -> Any:
        if self._future is None or self._future.status in ("error", "cancelled"):
            self.sent += 1
            # Large on purpose, and once per batch: Dask's warning does not apply.
            with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GiB"}):
                self._future = self.client.submit(
                    as_result, self.support_files, pure=False,
                    key=SUPPORT_FILES_KEY.format(digest=self.support_files.digest,
                                                 sent=self.sent))
        return self._future


def as_result(value: object) -> object:
    return value


def _holds(key, dask_scheduler=None):
    return key in dask_scheduler.tasks
