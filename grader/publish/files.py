"""Writing OUT's files so that a reader (or a crash) never sees half of one."""

import contextlib
import io
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> None:
    """Replace `path` in one step: a reader sees the old file or the new, never half. With
    `durable`, its bytes are on the disk before it replaces the old file (fsync), so that a
    machine's crash leaves one or the other; without, for the files made again from the
    journal after every batch (the course's copies of pages and their small files)."""
    with atomic_file(path, durable=durable) as file:
        file.write(text.encode("utf-8", "replace"))


@contextlib.contextmanager
def atomic_text_file(path: str | os.PathLike[str], *,
                     durable: bool = True) -> Iterator[io.TextIOWrapper]:
    """atomic_file as text (UTF-8, what cannot be encoded replaced, newlines as written):
    a class's file written a row at a time, never held whole in memory."""
    with atomic_file(path, durable=durable) as file:
        text = io.TextIOWrapper(file, encoding="utf-8", errors="replace", newline="")
        try:
            yield text
            text.flush()
        finally:
            text.detach()  # the binary file is atomic_file's to close


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file whose content replaces `path` in one step when the block ends (as
    write_atomically says); when it raises, `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name no other writer uses (this process, thread and call); created with the mode
    # any new file gets (the kernel applies the umask), so that a shared OUT stays
    # readable by those who share it. tempfile's NamedTemporaryFile (random names, 0600,
    # then a chmod and a read of the umask) cost five times as much for a small file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}."
                               f"{next(_numbers)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


_numbers = itertools.count()

OTHERS = 0o007  # the permission bits of every other user of the machine


def private_folder(path: str | os.PathLike[str]) -> str | None:
    """Make the folder `path` (OUT) if it is missing, for its owner alone: it holds the
    answer key, every student's grades and work, and a submission's secret while it is
    graded. One that exists keeps the mode its owner gave it (a group of teaching
    assistants may share it); the warning to give when every user may read it, else None."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
        return None
    path.mkdir(exist_ok=True)  # FileExistsError still, for a file of that name
    mode = path.stat().st_mode
    if mode & OTHERS:
        return (f"every user of this machine can reach {path} (mode {mode & 0o777:o}), which"
                " holds the answer key and every student's grades and work: make it private"
                f" with chmod o-rwx {path}")
    return None


def is_safe_student_id(student_id: str) -> bool:
    """Whether the id can name a folder under OUT: one path component, nothing more."""
    return (bool(student_id) and student_id not in (".", "..")
            and not {"/", "\\", "\0"} & set(student_id))
