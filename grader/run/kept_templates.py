"""A check's kernel template, kept for the student's next check (`grader validate`), and a
batch's: one for every worker of a local cluster (BatchTemplate), started by the
coordinator as the batch begins and ended with it, or kept for the next batch when asked
(`autograde --keep-templates`).

The first check starts a template that outlives it (grader.run.template_keeper) and
connects to it; a check within KEEP_SECONDS of the last one connects to the same template,
whose TensorFlow is imported already. A template is kept per user and per everything its
kernels are made of: the Python, the grader's code, the modules it preloads, its
environment and the installed packages (a folder's time changes when a package is added
or removed). Anything else, or a socket that cannot be used (no cache, a folder others may
enter, a path too long for a Unix socket), and the check starts a template of its own, as
every check did before.

`KeptTemplate` is a `KernelTemplate` whose process is a connection: requests are written
to it and replies read from it as from a template's pipes. At the end of a check it hangs
up (the template kills that check's kernels and stays); a template that fails (no answer in
time, a reply that is not one) is killed, so that the next check starts a new one.
"""

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

import grader
from grader.run import import_turns, isolation, template_keeper
from grader.run.pipes import fits_socket, read_line
from grader.run.warm_kernels import GRADER_ROOT, KernelTemplate, template_environment

FOLDER = "kept-templates"
# A running batch's own template (not kept): apart, so that ending the kept ones (removing
# their folder) never takes a running batch's socket.
BATCH_FOLDER = "batch-templates"
KEEP_SECONDS = 600.0  # after a check: a student at work checks again within minutes
CONNECT_SECONDS = 10.0  # for a template just started to listen (it does before importing)
POLL_SECONDS = 0.02
# A batch's own template, once no worker is connected: its workers are gone (the batch ended
# and removed its socket, or its coordinator died), or one is late to connect.
BATCH_IDLE_SECONDS = 30.0
KEPT_BATCH_SLOT = "batch"  # the template `--keep-templates` keeps for the next batch


def template_for_checks(preload, keep_seconds=KEEP_SECONDS, slot=""):
    """The template a check (or a batch's worker in `slot`) forks its kernels from: a kept
    one where the user's cache allows and `keep_seconds` > 0; otherwise one of its own,
    ended with the check."""
    path = socket_path(preload, slot=slot) if keep_seconds > 0 else None
    if path is None:
        return KernelTemplate(preload)
    return KeptTemplate(preload, path, keep_seconds)


def end_all(cache, seconds=0.0):
    """End every template kept in the grader cache `cache` (a Path): their folder removed,
    each ends within a second (grader.run.template_keeper); wait up to `seconds` for
    them and their kernels to be gone."""
    folder = str(cache / FOLDER)
    kept = [process for process in psutil.process_iter(["cmdline"])
            if folder in " ".join(process.info["cmdline"] or [])]
    shutil.rmtree(folder, ignore_errors=True)
    if seconds > 0:
        psutil.wait_procs(kept, timeout=seconds)


def socket_path(preload, environment=None, slot="", folder_name=FOLDER):
    """Where the template kept for `preload` (and a batch's worker `slot`) listens, in the
    user's private folder of kept templates (or `folder_name`); None when there is none,
    or the path is too long for a socket."""
    folder = import_turns.private_cache_folder(folder_name)
    if folder is None:
        return None
    path = str(folder / f"{template_key(preload, environment, slot)}.sock")
    return path if fits_socket(path) else None


def template_key(preload, environment=None, slot=""):
    """What a kept template is made of, in 16 hex digits (a socket's path is short): two
    checks share a template only when they would have started the same one. A batch's
    template is kept apart from the student's checks (`slot`)."""
    made_of = {"python": sys.executable, "grader": GRADER_ROOT, "preload": list(preload),
               "environment": template_environment(environment), "code": _code_stamp(),
               "slot": slot}
    text = json.dumps(made_of, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _code_stamp():
    """The grader's source files (their times and sizes) and the times of the installed
    packages' folders: an edit of the grader or a package installed since makes a new key.
    Only the import path's folders inside the Python's prefixes count: not the working
    folder, whose time changes whenever a notebook in it is saved."""
    package = Path(grader.__file__).parent
    stamp = []
    for path in sorted(package.rglob("*.py")):
        with contextlib.suppress(OSError):
            status = path.stat()
            stamp.append([str(path.relative_to(package)), status.st_mtime_ns, status.st_size])
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    for folder in sys.path:
        if folder and any(folder.startswith(prefix + os.sep) for prefix in prefixes):
            with contextlib.suppress(OSError):
                stamp.append([folder, os.stat(folder).st_mtime_ns])
    return stamp


class KeptTemplate(KernelTemplate):
    """A KernelTemplate served by a kept template at the socket `path` (started, kept for
    `keep_seconds`, when none listens there)."""

    def __init__(self, preload, path, keep_seconds=KEEP_SECONDS):
        super().__init__(preload)
        self.path, self.keep_seconds = path, keep_seconds

    def wait_until_ready(self):
        """As KernelTemplate's. A kept template that fails (killed as this check came, hung)
        is killed and replaced by a new kept one; if that fails too, the check starts one
        of its own, as without a kept one."""
        for _attempt in range(2):
            if self.path is None:
                break
            try:
                return super().wait_until_ready()
            except isolation.KernelSetupError:
                pass  # stopped: killed and hung up
        self.path = None
        super().wait_until_ready()

    def _start(self):
        if self.path is None:
            return super()._start()
        connection = connect(self.path)
        if connection is None and self._start_kept() is not None:  # else its folder is gone
            connection = connect(self.path, CONNECT_SECONDS)
            if connection is not None:
                connection.started_here = True  # its import is this check's to wait for
        # A template that would not listen (a crowded machine?): one of the check's own.
        return connection if connection is not None else super()._start()

    def _start_kept(self, *first):
        """Start a template that listens at the path (its options `first`): its Popen,
        None when it cannot."""
        with contextlib.suppress(OSError), _log_file(self.path + ".log") as log:
            # A session of its own: neither the check's end nor a Ctrl-C in its terminal
            # reaches it. What it prints (TensorFlow's notes, a traceback if it fails) goes
            # to a log beside its socket, the last template's only.
            return subprocess.Popen(
                self._command(*first, "--keep", self.path, f"{self.keep_seconds:g}"), cwd="/",
                env=template_environment(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True)
        return None

    def kill(self):
        """The check is over: hang up. The template kills this check's kernels and stays."""
        super()._stop()

    close = kill

    def _found_started(self):
        """Whether this check (or worker) connected to a template another had started: its
        import was not this one's."""
        return isinstance(self.process, Connection) and not self.process.started_here

    def _ready_wall(self, seconds, waited):
        if self._found_started():
            return 0.0  # ready before this check connected: no import of its own
        return super()._ready_wall(seconds, waited)

    def cpu_seconds(self):
        """The template's CPU seconds since this check connected (for the profile: a
        template kept from before imported nothing for it)."""
        seconds = super().cpu_seconds()
        if isinstance(self.process, Connection):
            seconds -= self.process.cpu_at_start
        return max(0.0, seconds)

    def _stop(self):
        """The template failed this check: not kept (killed, its kernels with it)."""
        if isinstance(self.process, Connection):
            self.process.end_template()
        super()._stop()


class SharedTemplate(KeptTemplate):
    """A worker's side of its batch's template (BatchTemplate): the coordinator counts its
    import once for the batch, so a worker that finds it started counts none."""

    connected_once = False  # a later start is after the batch's template died

    def _start(self):
        if self.path is None or self.connected_once:
            return super()._start()  # it died: a new one, kept at its path while needed
        self.connected_once = True
        # Started by the batch with its cluster: listening within a moment, if not yet
        # (unless its folder was removed).
        seconds = CONNECT_SECONDS if os.path.isdir(os.path.dirname(self.path)) else 0.0
        connection = connect(self.path, seconds)
        return connection if connection is not None else super()._start()

    def _stop(self):
        """Hang up, never kill: the batch's other workers' kernels are its children, and
        its slowness may be another worker's request. A dead one is started again; one
        that keeps failing leaves this worker to a template of its own."""
        KernelTemplate._stop(self)

    def take_startup(self):
        startup = super().take_startup()
        if startup is None or not self._found_started():
            return startup  # one it started itself: its import is this worker's
        return (0.0, 0.0)  # its wait for the import is still not the kernel's


class BatchTemplate:
    """The one template every worker of a batch's local cluster forks its kernels from,
    started as the batch begins, beside its cluster: one TensorFlow import per batch, not
    one per worker (which, on two cores, took turns: the second worker's first kernel came
    seconds after the first's). Its socket is private to the batch (ended by `end`) or,
    with `keep_seconds`, the kept one the next batch connects to. `path` is None where no
    template can be kept (no private cache): each worker then starts its own."""

    def __init__(self, preload, keep_seconds=0.0):
        self.kept = keep_seconds > 0
        slot = KEPT_BATCH_SLOT if self.kept else f"batch-{os.getpid()}-{secrets.token_hex(4)}"
        self.keep_seconds = keep_seconds if self.kept else BATCH_IDLE_SECONDS
        self.path = socket_path(preload, slot=slot,
                                folder_name=FOLDER if self.kept else BATCH_FOLDER)
        self.started = time.monotonic()
        self.process, self.popen = None, None  # the template (psutil), the Popen if ours
        self.cpu_before = 0.0  # its CPU seconds as the batch found it: not this batch's
        self.ended = False
        if self.path is not None:
            self._start(preload)

    def _start(self, preload):
        connection = connect(self.path)  # a kept one already listening?
        if connection is not None:
            self.cpu_before = connection.cpu_at_start
            self.process = connection.template
            connection.kill()
            return
        # A batch's own ends with its coordinator (a killed one's workers die too); a
        # template kept for the next batch outlives it.
        self.popen = KeptTemplate(preload, self.path, self.keep_seconds)._start_kept(
            *([] if self.kept else ["--with-parent", str(os.getpid())]))
        with contextlib.suppress(psutil.Error, AttributeError):
            self.process = psutil.Process(self.popen.pid)

    def for_workers(self):
        """(socket path, keep seconds) for the workers' SharedTemplate; None without one."""
        return (self.path, self.keep_seconds) if self.path is not None else None

    def end(self, clock=None):
        """The batch is over: the template's import (and forks) counted in `clock` (the
        workers'), and the template ended, unless kept for the next batch. Once: a later
        call does nothing."""
        if self.path is None or self.ended:
            return
        self.ended = True
        with contextlib.suppress(psutil.Error, AttributeError):
            times = self.process.cpu_times()
            if clock is not None:
                clock.add_stage("template import", wall=self._ready_seconds(),
                                cpu=max(0.0, times.user + times.system - self.cpu_before))
        if self.kept:
            return
        if self.popen is not None:  # ours, its workers gone: no kernel of it is grading
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait(timeout=10)
        for suffix in ("", ".lock", ".log"):  # a template a worker started in its place
            with contextlib.suppress(OSError):  # ends once its socket is gone
                os.unlink(self.path + suffix)

    def _ready_seconds(self):
        """How long its import took after it was started, as it says: 0 when it was kept
        from before; the time since it was started when it has not said."""
        if self.popen is None:
            return 0.0
        connection = connect(self.path)
        try:
            ready = json.loads(read_line(connection.stdout.fileno(), 0.5))
            return float(ready["seconds"])
        except (AttributeError, OSError, EOFError, TimeoutError, ValueError, KeyError,
                TypeError):
            return time.monotonic() - self.started
        finally:
            if connection is not None:
                connection.kill()


@contextlib.contextmanager
def _log_file(path):
    """A descriptor of the file at `path`, emptied (never followed if it is a link)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def connect(path, seconds=0.0):
    """A Connection to the template listening at `path`, tried for `seconds`; None when
    none answers or its process is not this user's."""
    deadline = time.monotonic() + seconds
    while True:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            client.connect(path)
        except OSError:  # no socket yet, or a dead template's
            client.close()
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_SECONDS)
            continue
        pid, uid, _gid = template_keeper.peer_credentials(client)
        if uid != os.geteuid():
            client.close()
            return None
        return Connection(client, pid)


class Connection:
    """A kept template as KernelTemplate drives its own: requests written to `stdin`,
    replies read from `stdout` (both the socket); `kill` hangs up."""

    def __init__(self, client, pid):
        self.pid, self.stdout, self.stdin = pid, client, _Sender(client)
        self.started_here = False  # whether the check connecting started the template
        self.cpu_at_start = 0.0  # the template's CPU seconds when connected
        try:
            self.template = psutil.Process(pid)  # kept: it knows the pid's start time
            times = self.template.cpu_times()
            self.cpu_at_start = times.user + times.system
        except psutil.Error:
            self.template = None

    def poll(self):
        """None while connected to a template that runs (as Popen's while running): a
        template that died is started again before the next kernel is asked of it."""
        if self.stdout.fileno() < 0:
            return 0
        if self.template is None:  # not known: as long as connected
            return None
        try:
            return None if self.template.status() != psutil.STATUS_ZOMBIE else 0
        except psutil.Error:
            return 0

    def kill(self):
        self.stdout.close()

    def wait(self, timeout=None):
        return 0

    def end_template(self):
        """Kill the template itself (not another process that took its pid since)."""
        with contextlib.suppress(psutil.Error, AttributeError):
            self.template.kill()
            self.template.wait(timeout=10)  # its listener gone: the next connect is not to it


class _Sender:
    def __init__(self, client):
        self.client = client

    def write(self, data):
        self.client.sendall(data)

    def close(self):
        self.client.close()
