"""Scratch folders of the grader's processes, and the ones a killed process left behind.

A coordinator or a worker killed with SIGKILL cannot remove its temporary folders, and
they hold students' notebooks. Each folder's name carries the id of the process that made
it; the next grader process to make one on the machine removes those whose process is
gone. A pid reused by another process only delays the removal, never removes a live one.
"""

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
PREFIX = "grader-"


@contextlib.contextmanager
def scratch_folder(kind):
    """A private temporary folder for `kind` of work, removed at the end."""
    remove_stale(kind)
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{kind}-{os.getpid()}-") as folder:
        yield Path(folder)


def remove_stale(kind, parent=None):
    """Remove the `kind` folders of this user whose process no longer exists."""
    parent = Path(parent or tempfile.gettempdir())
    pattern = re.compile(rf"{re.escape(PREFIX)}{re.escape(kind)}-(\d+)-[^/]+")
    with contextlib.suppress(OSError):
        for path in parent.iterdir():
            match = pattern.fullmatch(path.name)
            if match and _is_stale(path, int(match.group(1))):
                log.info("removing %s, left by a grader process that was killed", path)
                shutil.rmtree(path, ignore_errors=True)


def _is_stale(path, pid):
    try:
        if path.is_symlink() or not path.is_dir() or path.stat().st_uid != os.getuid():
            return False
    except OSError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
