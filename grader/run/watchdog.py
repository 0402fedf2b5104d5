"""The watchdog of one kernel: it kills the kernel and everything it started once the
submission's time is up, and at the end."""

import contextlib
import threading
import time

import psutil


class KernelWatchdog:
    """Kills the kernel and everything it started once time is up, and at the end.

    The kernel runs in a session of its own, and processes a student starts from it may
    outlive it, so its process tree is watched while it runs and all of it is killed; with
    a cgroup, everything in the group is killed too, double-forked daemons included.
    """

    POLL_SECONDS = 0.2

    def __init__(self, executor, timeout, cgroup=None):
        self.executor = executor
        self.timeout = timeout
        self.deadline = None  # counted from the kernel's start, not the time it took to start
        self.cgroup = cgroup
        self.fired = False
        self.memory_exceeded = False
        self.processes = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self):
        self.deadline = time.monotonic() + self.timeout
        pid = self.executor.km.provisioner.process.pid
        if self.cgroup is not None:
            self.cgroup.add(pid)  # before any student code: it runs only once we return
        self._remember(psutil.Process(pid))
        self._thread.start()

    def stop(self):
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        self.kill_all()
        if self.cgroup is not None:
            self.memory_exceeded = self.cgroup.hit_memory_limit()
            self.cgroup.close()

    def _watch(self):
        while not self._done.wait(self.POLL_SECONDS):
            self.look()
            if time.monotonic() > self.deadline:
                self.fired = True
                self.kill_all()
                return

    def look(self):
        """Remember every process the kernel and its remembered descendants have started."""
        for root in list(self.processes.values()):
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in root.children(recursive=True):
                    self._remember(child)

    def _remember(self, process):
        # Keyed by pid and start time, so a reused pid is never mistaken for ours.
        with contextlib.suppress(psutil.NoSuchProcess):
            self.processes[(process.pid, process.create_time())] = process

    def kill_all(self):
        self.look()
        alive = []
        for process in list(self.processes.values()):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
                alive.append(process)
        psutil.wait_procs(alive, timeout=5)
