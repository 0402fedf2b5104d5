"""Writing OUT's files so that a reader (or a crash) never sees half of one."""

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Replace `path` in one step: a reader sees the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.",
                                     encoding="utf-8", errors="replace", newline="",
                                     delete=False) as temp:
        temp.write(text)
        temp.flush()
        os.fsync(temp.fileno())
    # A temporary file is private (0600); the result gets the mode any new file would get
    # (the umask decides), so that a shared OUT stays readable by those who share it.
    os.chmod(temp.name, 0o666 & ~_umask())
    os.replace(temp.name, path)


def _umask():
    """The process's umask, read without setting it: os.umask would change it for every
    thread meanwhile."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022  # no /proc (macOS): the usual default


def is_safe_student_id(student_id: str) -> bool:
    """Whether the id can name a folder under OUT: one path component, nothing more."""
    return (bool(student_id) and student_id not in (".", "..")
            and not {"/", "\\", "\0"} & set(student_id))
