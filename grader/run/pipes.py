"""Reading a child process's pipe within a time limit: a line of a line protocol, or
whether anything (or its end) is there to read. A buffered readline could wait for ever on
a child that hangs; these never wait longer than they are told (grader.run.warm_kernels).
And whether a path fits a Unix socket's address, for the grader's sockets."""

import os
import select
import time

MAX_LINE = 64 * 1024  # bytes of one line from a template (a reply is ~100)
MAX_SOCKET_PATH = 107  # bytes of a Unix socket's sun_path, its final NUL aside


def fits_socket(path: str) -> bool:
    """Whether a Unix socket can be bound at `path` (a longer one is refused)."""
    return len(os.fsencode(path)) <= MAX_SOCKET_PATH


def read_line(fd, seconds, limit=MAX_LINE):
    """One line from the pipe `fd`, within `seconds` and `limit` bytes (TimeoutError,
    EOFError, ValueError otherwise). The protocol is one line per request, so nothing
    after the line is ever waiting in the pipe."""
    deadline = time.monotonic() + seconds
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if not readable(fd, left):
            raise TimeoutError
        chunk = os.read(fd, limit - len(data))
        if not chunk:
            raise EOFError
        data += chunk
        if len(data) >= limit and not data.endswith(b"\n"):
            raise ValueError(f"a line of more than {limit} bytes")
    return data.decode()


def readable(fd, seconds):
    """Whether `fd` has something to read (or its end) within `seconds`: None waits for
    ever, 0 looks without waiting, a time already past is False. poll, not select, which
    refuses a descriptor past 1023 (a Dask worker may hold that many)."""
    if seconds is not None and seconds < 0:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if seconds is None else seconds * 1000))
