"""The release files a notebook needs beside it, as data that can travel to another machine.

The coordinating process reads them once per batch; a worker, which may run on a machine
that does not share its disk, writes them into a directory of its own the first time it
sees them and reuses that directory for every later submission of the batch.
"""

import hashlib
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from grader.labs.c2_w2 import lab


@dataclass(frozen=True, eq=False)
class SupportFiles:
    digest: str  # sha256 of every path and content: the same files, the same digest
    files: dict  # path relative to the notebook (POSIX) -> content (bytes)


def read_support_files(root=lab.LAB_ROOT):
    """The files of lab.SUPPORT_FILES under `root` (folders walked, caches left out)."""
    root = Path(root)
    files = {}
    for name in lab.SUPPORT_FILES:
        for path in _files_under(root / name):
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return SupportFiles(digest=_digest(files), files=files)


def _files_under(path):
    if not path.is_dir():
        return [path]
    return sorted(found for found in path.rglob("*")
                  if found.is_file() and "__pycache__" not in found.parts)


def _digest(files):
    sha = hashlib.sha256()
    for name in sorted(files):
        for part in (name.encode(), files[name]):
            sha.update(len(part).to_bytes(8, "big"))  # lengths first: no two splits alike
            sha.update(part)
    return sha.hexdigest()


def write_support_files(support, destination):
    """Write `support`'s files under `destination`; return it."""
    destination = Path(destination)
    for name, content in support.files.items():
        path = destination / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return destination


# One directory per set of files in each worker process, removed when the process ends.
_written = {}  # digest -> tempfile.TemporaryDirectory
_writing = threading.Lock()  # a worker may run tasks in several threads
_parent = None  # where they go: the system's temporary folder unless write_under() says


def write_under(directory):
    """Write this process's support files under `directory` from now on: a Dask worker's
    own folder, which Dask removes when the worker closes and clears after it was killed,
    where a temporary folder of a killed process would stay."""
    global _parent
    _parent = directory


def support_dir(support):
    """A directory holding `support`'s files on this machine, written once per process."""
    with _writing:
        if support.digest not in _written:
            # Errors ignored at exit: the worker's folder may be gone with everything in it.
            directory = tempfile.TemporaryDirectory(prefix="grader-support-", dir=_parent,
                                                    ignore_cleanup_errors=True)
            write_support_files(support, directory.name)
            _written[support.digest] = directory
        return Path(_written[support.digest].name)
