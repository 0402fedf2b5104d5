"""A Linux control group per kernel: a memory cap, a process cap, and killing everything.

Every process a kernel starts stays in its group, even one that double-forks into a
session of its own, so at the end the whole group is killed and nothing a student started
outlives grading. The kernel is put in its group before any student code runs (the client
sends code only once the kernel is ready, after it was added).

Uses cgroup v1's memory and pids hierarchies (what these machines mount, writable by root)
or cgroup v2's unified hierarchy. Where neither can be written (not root, macOS), grading
goes on without these caps and `unavailable_reason()` says so, once per run.
"""

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "grader"
V1_CONTROLLERS = ("memory", "pids")


def unavailable_reason():
    """Why per-kernel cgroups cannot be used here, or None when they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not running as root"
    if _v1_available() or _v2_available():
        return None
    return f"no writable memory and pids cgroups under {ROOT}"


def _v1_available():
    return all(os.access(ROOT / controller, os.W_OK) for controller in V1_CONTROLLERS)


def _v2_available():
    controllers = ROOT / "cgroup.controllers"
    return (controllers.exists() and {"memory", "pids"} <= set(controllers.read_text().split())
            and os.access(ROOT, os.W_OK))


class KernelCgroup:
    """One kernel's group; `add` its pid, read `hit_memory_limit`, then `close`."""

    def __init__(self, *, memory_mb, max_processes):
        self.name = f"kernel-{uuid.uuid4().hex[:12]}"
        self.dirs = ([ROOT / c / PARENT / self.name for c in V1_CONTROLLERS]
                     if _v1_available() else [ROOT / PARENT / self.name])
        for directory in self.dirs:
            directory.mkdir(parents=True, exist_ok=True)
        self._limit(memory_mb * 1024 * 1024, max_processes)

    def _limit(self, memory_bytes, max_processes):
        if len(self.dirs) == 2:  # v1: one directory per controller
            memory, pids = self.dirs
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            # Without swap accounting the cap would be on RAM only: also cap RAM + swap.
            with contextlib.suppress(OSError):
                (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            (pids / "pids.max").write_text(str(max_processes))
        else:
            (self.dirs[0] / "memory.max").write_text(str(memory_bytes))
            (self.dirs[0] / "memory.swap.max").write_text("0")
            (self.dirs[0] / "pids.max").write_text(str(max_processes))

    def procs_files(self):
        """The files a process writes its pid to, to join the group (it must be root)."""
        return tuple(str(directory / "cgroup.procs") for directory in self.dirs)

    def add(self, pid):
        for directory in self.dirs:
            (directory / "cgroup.procs").write_text(str(pid))

    def hit_memory_limit(self):
        """Whether the kernel's memory cap made the OOM killer kill a process."""
        memory = self.dirs[0]
        counters = memory / ("memory.oom_control" if len(self.dirs) == 2 else "memory.events")
        words = counters.read_text().split()
        return int(dict(zip(words[::2], words[1::2], strict=True)).get("oom_kill", 0)) > 0

    def pids(self):
        text = (self.dirs[-1] / "cgroup.procs").read_text()
        return [int(pid) for pid in text.split()]

    def kill_all(self, attempts=50):
        """SIGKILL every process in the group until it is empty (a process may fork
        between reading the list and the kill: the loop catches its children too)."""
        for _ in range(attempts):
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        return not self.pids()

    def close(self):
        self.kill_all()
        for directory in self.dirs:
            for _ in range(50):  # a killed process leaves its group a moment later
                try:
                    directory.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)
