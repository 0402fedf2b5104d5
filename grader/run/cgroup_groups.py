"""One kernel's control group, and the hierarchy it is made in (grader.run.cgroups finds
where): limits written, processes joined, OOM kills read, everything killed, the group
removed; groups left by a grader that died found and removed.

All file system access goes through `Files`, so that tests can give a fake cgroup file
system that enforces cgroup v2's rules (tests/grader/fake_cgroupfs.py).
"""

import contextlib
import logging
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CONTROLLERS = ("memory", "pids")
DELEGATE_XATTRS = ("trusted.delegate", "user.delegate")  # systemd marks delegated cgroups so
# A group whose maker may still run (or cannot be told: named by an older grader, or in
# another pid namespace) is only removed once it is empty and this old.
STALE_EMPTY_SECONDS = 600
_NAME = re.compile(r"kernel-(\d+)-(\d+)-(\d+)-[0-9a-f]+")

logger = logging.getLogger("grader.run.cgroups")


class CgroupError(Exception):
    """A cgroup cannot be found, made or set up; the message says why, for a warning."""


class Files:
    """The few file operations done on a cgroup file system (the real one here)."""

    def read(self, path):
        with open(path) as file:
            return file.read()

    def write(self, path, text):
        with open(path, "w") as file:  # one write: cgroupfs takes one value per write(2)
            file.write(text)

    def exists(self, path):
        return os.path.exists(path)

    def mkdir(self, path):
        os.mkdir(path)

    def rmdir(self, path):
        os.rmdir(path)

    def subgroups(self, path):
        with os.scandir(path) as entries:
            return [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]

    def age(self, path):
        """Seconds since the group was made."""
        return time.time() - os.stat(path).st_mtime

    def delegated(self, path):
        """Whether systemd marked the group as delegated (its `Delegate=yes`)."""
        for name in DELEGATE_XATTRS:
            with contextlib.suppress(OSError):
                if os.getxattr(path, name) == b"1":
                    return True
        return False

    def writable(self, path):
        return os.access(path, os.W_OK)


FILES = Files()


@dataclass(frozen=True)
class Hierarchy:
    """Where kernels' groups are made: one parent per v1 hierarchy (memory, pids), or the
    one v2 parent, whose `controllers` are enabled for its children."""

    version: int
    parents: tuple[Path, ...]
    controllers: tuple[str, ...] = CONTROLLERS
    files: Files = FILES

    def kernel_cgroup(self, *, memory_mb, max_processes):
        return KernelCgroup(self, memory_mb=memory_mb, max_processes=max_processes)

    def remove_stale(self):
        """Remove the kernels' groups whose maker is gone, killing what is left in them;
        return their names."""
        names = set()
        for parent in self.parents:
            if self.files.exists(parent):
                names.update(name for name in self.files.subgroups(parent)
                             if name.startswith("kernel-"))
        removed = []
        for name in sorted(names):
            group = KernelCgroup.existing(self, name)
            if group.stale():
                group.close()
                removed.append(name)
        return removed

    def trial(self):
        """Make a group, move a process into it, read its counters, kill it and remove
        the group, as every kernel's group will be; raise CgroupError if anything fails."""
        group = self.kernel_cgroup(memory_mb=256, max_processes=16)
        process = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            group._add(process.pid)
            if process.pid not in group.pids():
                raise CgroupError(f"a process moved into {group.dirs[-1]} is not in it")
            group.memory_events()
            if not group.kill_all(seconds=5):
                raise CgroupError(f"the processes in {group.dirs[-1]} could not be killed")
        finally:
            process.kill()
            process.wait()
            group.close()
        if any(self.files.exists(directory) for directory in group.dirs):
            raise CgroupError(f"{group.dirs[-1]} could not be removed")


class KernelCgroup:
    """One kernel's group; `add` its pid, read `hit_memory_limit`, then `close`."""

    def __init__(self, hierarchy, *, memory_mb, max_processes, name=None):
        self.hierarchy = hierarchy
        self.files = hierarchy.files
        self.name = name or _new_name()
        self.dirs = [parent / self.name for parent in hierarchy.parents]
        if name is not None:  # an existing group (see `existing`)
            return
        try:
            for directory in self.dirs:
                self.files.mkdir(directory)
            self._limit(memory_mb * 2**20, max_processes)
        except BaseException:
            self.close()  # nothing half-made is left behind
            raise

    @classmethod
    def existing(cls, hierarchy, name):
        return cls(hierarchy, memory_mb=None, max_processes=None, name=name)

    def _limit(self, memory_bytes, max_processes):
        files = self.files
        if self.hierarchy.version == 1:  # one directory per controller
            memory, pids = self.dirs
            files.write(memory / "memory.limit_in_bytes", str(memory_bytes))
            # Without swap accounting the cap would be on RAM only: also cap RAM + swap.
            with contextlib.suppress(OSError):
                files.write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
            files.write(pids / "pids.max", str(max_processes))
            return
        group = self.dirs[0]
        for controller, knob, value in (("memory", "memory.max", memory_bytes),
                                        ("pids", "pids.max", max_processes)):
            if controller not in self.hierarchy.controllers:
                continue
            if not files.exists(group / knob):
                raise CgroupError(f"{group} has no {knob}: the {controller} controller is not "
                                  f"enabled in {group.parent}/cgroup.subtree_control")
            files.write(group / knob, str(value))
        # No swap at all; the file is missing where the kernel does no swap accounting, and
        # then the cap is on RAM only.
        if "memory" in self.hierarchy.controllers and files.exists(group / "memory.swap.max"):
            files.write(group / "memory.swap.max", "0")

    def procs_files(self):
        """The files a process writes its pid to, to join the group (it must be root)."""
        return tuple(str(directory / "cgroup.procs") for directory in self.dirs)

    def add(self, pid):
        """Move process `pid` into the group; False when it cannot be (said once: `failed`),
        and the kernel then runs without the group's caps."""
        try:
            self._add(pid)
        except OSError as error:
            failed(error)
            return False
        return True

    def _add(self, pid):
        for directory in self.dirs:
            self.files.write(directory / "cgroup.procs", str(pid))

    def memory_events(self):
        """The memory controller's event counters ({} without one)."""
        if "memory" not in self.hierarchy.controllers:
            return {}
        counters = self.dirs[0] / ("memory.oom_control" if self.hierarchy.version == 1
                                   else "memory.events")
        words = self.files.read(counters).split()
        return {key: int(value) for key, value in zip(words[::2], words[1::2], strict=True)}

    def hit_memory_limit(self):
        """Whether the kernel's memory cap made the OOM killer kill a process."""
        try:
            return self.memory_events().get("oom_kill", 0) > 0
        except (OSError, ValueError):
            return False

    def pids(self):
        """The processes in the group (in any of its directories, for v1)."""
        pids = set()
        for directory in self.dirs:
            with contextlib.suppress(FileNotFoundError):
                pids.update(int(pid) for pid in self.files.read(directory / "cgroup.procs").split())
        return sorted(pids)

    def kill_all(self, seconds=10):
        """SIGKILL every process in the group until it is empty (a process may fork
        between reading the list and the kill: the loop catches its children too)."""
        deadline = time.monotonic() + seconds
        kill = self.dirs[-1] / "cgroup.kill"  # v2, Linux 5.14+: the whole group at once
        while True:
            pids = self.pids()
            if not pids:
                return True
            try:
                if self.hierarchy.version != 2 or not self.files.exists(kill):
                    raise FileNotFoundError(kill)
                self.files.write(kill, "1")
            except OSError:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def close(self, seconds=10):
        """Kill everything in the group and remove it. Never raises: a group that cannot be
        removed now is removed by a later run (`Hierarchy.remove_stale`)."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(OSError):
            self.kill_all(seconds=seconds)
        for directory in self.dirs:
            while True:  # a killed process leaves its group a moment later
                try:
                    self.files.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    if time.monotonic() > deadline:
                        logger.warning("could not remove %s (%s); a later run will",
                                       directory, error)
                        break
                    with contextlib.suppress(OSError):
                        self.kill_all(seconds=0)
                    time.sleep(0.02)

    def stale(self):
        """Whether the group is left over: its maker is gone, or it is empty and was made
        long ago (a kernel is in its group from its first second to its last; this also
        covers groups whose maker cannot be told, named by an older grader or made in
        another pid namespace)."""
        owner = _NAME.fullmatch(self.name)
        if (owner and int(owner[1]) == _identity()[0]
                and not _alive(int(owner[2]), int(owner[3]))):
            return True
        try:
            present = [d for d in self.dirs if self.files.exists(d)]
            return (not self.pids()
                    and min(self.files.age(d) for d in present) > STALE_EMPTY_SECONDS)
        except (OSError, ValueError):
            return False


def _new_name():
    namespace, pid, start = _identity()
    return f"kernel-{namespace}-{pid}-{start}-{secrets.token_hex(4)}"


def _identity():
    """(pid namespace, pid, start time): this process, as no other process ever was."""
    namespace = os.stat("/proc/self/ns/pid").st_ino
    pid = os.getpid()
    return namespace, pid, _start_time(pid)


def _start_time(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # dead, not yet reaped
        raise ProcessLookupError(pid)
    return int(fields[19])  # field 22 of proc(5), counted after the command's name


def _alive(pid, start):
    try:
        return _start_time(pid) == start
    except (FileNotFoundError, ProcessLookupError):
        return False
    except (OSError, ValueError, IndexError):
        return True  # cannot tell: keep the group


# ------------------------------------------------------------------------- the probe


_kernel_failure = None  # why a kernel's group failed in this process, once it did


def failed(error):
    """Note that a kernel's group failed (`error`); said once per process."""
    global _kernel_failure
    if _kernel_failure is None:
        _kernel_failure = f"a kernel's cgroup could not be made or joined ({error})"
        logger.warning("%s; kernels go on without cgroups, their memory capped per process",
                       _kernel_failure)


def kernel_failure():
    return _kernel_failure
