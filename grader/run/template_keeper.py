"""The server side of a kept kernel template: one that outlives the check that started it
and forks the kernels of the same student's next checks (`grader validate`).

A check's kernel comes from a template that has imported TensorFlow, 3-4 s of the check's
4-6. A student checks again and again as they work; a template kept for a while after a
check (KEEP_SECONDS in grader.run.kept_templates) makes every check but the first start its
kernel at once. A batch on this machine's cluster starts one such template for all its
workers (kept_templates.BatchTemplate), on a socket of its own that it removes as it ends,
or keeps for the next batch when asked (`autograde --keep-templates`): each worker is
served as a check is, and a graded kernel is forked by a template that, as a worker's own,
never runs anyone's code.

The template listens on a Unix socket in a folder of its user's grader cache that only they
may enter, and serves a connection as a worker's template serves its worker's pipes: a
"ready" line, then a reply line for each request line (grader.run.warm_kernels). A
connection's kernels are killed when it closes (its check ended, or died); the template
ends when no check has used it for its keep time, or at once when its socket file is
removed or replaced (so removing the folder ends every kept template). One template per
socket: the first to lock the socket's lock file serves it; another started at the same
time finds it locked and ends; a template that died (SIGKILL) leaves its lock free, and the
next one removes its socket file before listening again.

Every forked kernel closes this server's descriptors first thing: a kernel holding the
listening socket or another check's connection could answer in the template's place.
"""

import contextlib
import fcntl
import json
import os
import selectors
import socket
import struct
import time

import psutil

# The listening socket, its lock and every connection's: what each forked kernel closes.
SERVER_FILES = []
BACKLOG = 16
READ_SECONDS = 5  # for the rest of a request line once it started coming: never a hang
TICK_SECONDS = 1.0  # how often the keep time and the socket file are looked at


def options(arguments):
    """(keep, turns, preload) of the template's `arguments`: [--keep SOCKET SECONDS]
    [--turns FOLDER COUNT] MODULE... (keep: (socket path, seconds); turns: (folder, count);
    each None when not given)."""
    keep = turns = None
    if arguments[:1] == ["--keep"]:
        keep, arguments = (arguments[1], float(arguments[2])), arguments[3:]
    if arguments[:1] == ["--turns"]:
        turns, arguments = (arguments[1], int(arguments[2])), arguments[3:]
    return keep, turns, arguments


def claim(path):
    """Listen on the socket `path` once this process holds its lock (`path`.lock): the
    listening socket; None when another template holds the lock (it serves `path`)."""
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                   0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        return None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a dead template's: its lock was free
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)  # in a folder only its user may enter: its mode does not matter
    listener.listen(BACKLOG)
    SERVER_FILES.extend([lock, listener])
    return listener


def close_server_files():
    """In a forked kernel: close the server's descriptors (its objects are never used again
    and no longer own them, so nothing closes a number ZMQ reuses later)."""
    for item in SERVER_FILES:
        with contextlib.suppress(OSError):
            os.close(item.detach() if isinstance(item, socket.socket) else item)
    SERVER_FILES.clear()


class Keeper:
    """The loop of a kept template: accept checks, fork their kernels with `fork` (a request
    line -> a reply dict), `wipe` each request, until idle for `keep_seconds`."""

    def __init__(self, listener, path, keep_seconds, ready, fork, wipe, read_request):
        self.listener, self.path, self.keep_seconds = listener, path, keep_seconds
        self.ready = (json.dumps(ready) + "\n").encode()
        self.fork, self.wipe, self.read_request = fork, wipe, read_request
        self.listening = os.stat(path).st_ino
        self.kernels = {}  # connection -> the pids forked for it
        self.selector = selectors.PollSelector()  # no descriptor of its own to inherit
        self.selector.register(listener, selectors.EVENT_READ)
        self.idle_since = time.monotonic()

    def serve(self):
        while self.kernels or self.listener is not None:
            for key, _events in self.selector.select(TICK_SECONDS):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._answer(key.fileobj)
            self._look_around()
        for connection in list(self.kernels):
            self._hang_up(connection)

    def _look_around(self):
        """Stop listening when the socket file is gone or another's, or when idle for the
        keep time; the loop ends once no check is connected either."""
        if self.listener is None:
            return
        try:
            ours = os.stat(self.path).st_ino == self.listening
        except OSError:
            ours = False
        idle = not self.kernels and time.monotonic() - self.idle_since > self.keep_seconds
        if ours and not idle:
            return
        if ours:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # a check coming now starts a new template
        # A check that connected before the unlink is served: none is left unanswered.
        self.listener.setblocking(False)
        while self._accept():
            pass
        self.selector.unregister(self.listener)
        SERVER_FILES.remove(self.listener)
        self.listener.close()
        self.listener = None
        for lock in [item for item in SERVER_FILES if isinstance(item, int)]:
            SERVER_FILES.remove(lock)
            os.close(lock)  # another template may serve the path now

    def _accept(self):
        """Take a check waiting to connect: whether there was one."""
        try:
            connection, _address = self.listener.accept()
        except OSError:  # none (a non-blocking listener), or it gave up
            return False
        connection.setblocking(True)
        if peer_credentials(connection)[1] != os.geteuid():  # only its user's checks
            connection.close()
            return True
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                              struct.pack("ll", READ_SECONDS, 0))
        SERVER_FILES.append(connection)
        self.kernels[connection] = []
        self.selector.register(connection, selectors.EVENT_READ)
        self._send(connection, self.ready)
        return True

    def _answer(self, connection):
        """Fork the kernel `connection` asks for; hang up when it closed or misbehaves."""
        try:
            line = self.read_request(connection.fileno())
        except (OSError, ValueError):  # a request line that stopped coming
            line = bytearray()
        if not line:
            self._hang_up(connection)
            return
        try:
            reply = self.fork(line)
        except (ValueError, KeyError, TypeError, AttributeError):  # not a request
            self._hang_up(connection)
            return
        finally:
            self.wipe(line)
        self.kernels[connection].append(reply["pid"])
        self._send(connection, (json.dumps(reply) + "\n").encode())

    def _send(self, connection, data):
        try:
            connection.sendall(data)
        except OSError:
            self._hang_up(connection)

    def _hang_up(self, connection):
        """Close `connection` and kill the kernels it was given."""
        pids = self.kernels.pop(connection, None)
        if pids is None:
            return
        self.selector.unregister(connection)
        SERVER_FILES.remove(connection)
        connection.close()
        children = {child.pid: child for child in psutil.Process().children()}
        for pid in pids:  # only its own children: a pid seen dead may be another's now
            with contextlib.suppress(psutil.Error):
                if pid in children:
                    children[pid].kill()
        self.idle_since = time.monotonic()


def peer_credentials(connection):
    """(pid, uid, gid) of the process at the other end of the Unix socket `connection`: the
    one that connected, or, seen from a client, the one that listened."""
    return struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                     struct.calcsize("3i")))
