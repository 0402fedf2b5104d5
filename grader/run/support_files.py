"""The lab's release files on a worker: written once per worker process, beside every
submission it grades.

A worker may run on a machine that does not share the coordinator's disk: the files travel
as data (grader.release_files.ReleaseFiles) and are written into a directory of the
worker's own the first time it sees them, then reused for every later submission.
"""

import tempfile
import threading
from pathlib import Path

from grader.release_files import write_release_files

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
