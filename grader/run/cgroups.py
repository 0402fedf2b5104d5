"""A Linux control group per kernel: a memory cap, a process cap, and killing everything.

Every process a kernel starts stays in its group, even one that double-forks into a
session of its own, so at the end the whole group is killed and nothing a student started
outlives grading. The kernel is put in its group before any student code runs (the client
sends code only once the kernel is ready, after it was added).

Where the groups go (`find`, probed once per process):

    cgroup v1   /sys/fs/cgroup/memory/grader/kernel-*  and  /sys/fs/cgroup/pids/grader/kernel-*
    cgroup v2   started in a delegated cgroup D (systemd: `Delegate=yes`): the grader's own
                processes move to the leaf D/supervisor, the kernels' groups are D/kernel-*
                otherwise, as root: /sys/fs/cgroup/grader/kernel-*

cgroup v2 only lets a group's children have a controller that the group enabled in its
`cgroup.subtree_control`, and a group other than the root that enabled one may not hold
processes itself (the no-internal-processes rule): hence D/supervisor, and `+memory +pids`
in D's (or grader's) `cgroup.subtree_control` before any kernel's group is made.

A group is named after the process that made it (`kernel-<pid namespace>-<pid>-<start
time>-<random>`), so that a later run can tell a group whose maker is gone (a worker or a
whole batch killed) and remove it, killing what is left in it; a group of a grader still
running on the machine is only removed once it has been empty for long (its kernel is in
it from start to end). The probe does that first, then makes,
fills, kills and removes one trial group: a machine where any of that fails gets no
cgroups, and `unavailable_reason()` says why, once per run (the kernels then cap their
memory with rlimits, grader.run.sandbox.fallback_rlimits). A kernel's group that cannot be
made later is said once too, and that worker's kernels go on without cgroups.

All file system access goes through `Files`, so that tests can give a fake cgroup file
system that enforces cgroup v2's rules (tests/grader/fake_cgroupfs.py).
"""

import contextlib
import errno
import logging
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "grader"  # holds the kernels' groups where the grader has no delegated cgroup
SUPERVISOR = "supervisor"  # in a delegated cgroup: the leaf the grader's own processes move to
CONTROLLERS = ("memory", "pids")
DELEGATE_XATTRS = ("trusted.delegate", "user.delegate")  # systemd marks delegated cgroups so
# A group whose maker may still run (or cannot be told: named by an older grader, or in
# another pid namespace) is only removed once it is empty and this old.
STALE_EMPTY_SECONDS = 600
_NAME = re.compile(r"kernel-(\d+)-(\d+)-(\d+)-[0-9a-f]+")

logger = logging.getLogger(__name__)


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

def find(root=ROOT, *, files=FILES, parent=PARENT, controllers=CONTROLLERS, self_cgroup=None,
         euid=None):
    """The hierarchy this process makes kernels' groups in: set up, rid of stale groups,
    and checked with a trial group. Raises CgroupError saying why there is none.

    `self_cgroup` is this process's /proc/self/cgroup, read when not given; `root`,
    `files`, `parent`, `controllers` and `euid` are there for tests."""
    root = Path(root)
    euid = os.geteuid() if euid is None else euid
    try:
        if (files.exists(root / "memory" / "memory.limit_in_bytes")
                and files.exists(root / "pids" / "cgroup.procs")):
            hierarchy = _v1(root, files, parent)
        elif files.exists(root / "cgroup.controllers"):
            if self_cgroup is None:
                self_cgroup = Path("/proc/self/cgroup").read_text()
            hierarchy = _v2(root, files, parent, tuple(controllers), self_cgroup, euid)
        else:
            raise CgroupError(f"no cgroup file system at {root} (neither v1 memory and pids "
                              "hierarchies nor v2)")
        hierarchy.remove_stale()
        hierarchy.trial()
    except OSError as error:
        raise CgroupError(_explain(error, euid)) from None
    return hierarchy


def _v1(root, files, parent):
    parents = tuple(root / controller / parent for controller in ("memory", "pids"))
    for directory in parents:
        _mkdir(files, directory)
    return Hierarchy(1, parents, ("memory", "pids"), files)


def _v2(root, files, parent, controllers, self_cgroup, euid):
    own = _own_group(root, self_cgroup)
    if own.name == SUPERVISOR and _delegated(files, own.parent, euid):
        own = own.parent  # a process started by a grader that already moved there
    if own != root and _delegated(files, own, euid):
        # The grader's own delegated cgroup (systemd: Delegate=yes). Its processes move to
        # a leaf of their own, so that it may enable controllers for its children.
        supervisor = own / SUPERVISOR
        _mkdir(files, supervisor)
        _move_everything(files, own, supervisor)
        base = own
    elif euid != 0:
        raise CgroupError("not running as root, and not started in a delegated cgroup "
                          "(systemd-run --user --scope -p Delegate=yes ...)")
    else:
        _enable(files, root, controllers)  # the root may hold processes; systemd did this
        base = root / parent
        _mkdir(files, base)
    _enable(files, base, controllers)
    return Hierarchy(2, (base,), controllers, files)


def _own_group(root, self_cgroup):
    for line in self_cgroup.splitlines():
        if line.startswith("0::"):
            return root / line[3:].strip().lstrip("/")
    raise CgroupError("this process is in no cgroup v2 group (/proc/self/cgroup)")


def _delegated(files, group, euid):
    """Whether `group` was delegated to this process: systemd says so (an xattr), or, for a
    user other than root, it may write the group's cgroup.procs and cgroup.subtree_control
    (root may write every group: that proves nothing)."""
    if files.delegated(group):
        return True
    return euid != 0 and all(files.writable(group / name)
                             for name in ("cgroup.procs", "cgroup.subtree_control"))


def _mkdir(files, directory):
    with contextlib.suppress(FileExistsError):
        files.mkdir(directory)


def _move_everything(files, group, leaf, attempts=20):
    """Move every process of `group` into `leaf` (one that forks meanwhile: again)."""
    for _ in range(attempts):
        pids = files.read(group / "cgroup.procs").split()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                files.write(leaf / "cgroup.procs", pid)
    raise CgroupError(f"the processes in {group} could not all be moved to {leaf}")


def _enable(files, group, controllers):
    enabled = files.read(group / "cgroup.subtree_control").split()
    missing = [controller for controller in controllers if controller not in enabled]
    if not missing:
        return
    available = files.read(group / "cgroup.controllers").split()
    absent = [controller for controller in missing if controller not in available]
    if absent:
        raise CgroupError(f"the {' and '.join(absent)} controller{'s' if len(absent) > 1 else ''}"
                          f" cannot be enabled in {group} (not in its cgroup.controllers)")
    try:
        files.write(group / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
    except OSError as error:
        if error.errno == errno.EBUSY:
            raise CgroupError(f"{group} holds processes, so it cannot enable controllers for "
                              "its children (cgroup v2's no-internal-processes rule)") from None
        raise


def _explain(error, euid):
    where = f": {error.filename}" if error.filename else ""
    because = (" (not running as root)" if euid != 0
               and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "")
    return f"cannot set up cgroups{because}: {error.strerror or error}{where}"


# ------------------------------------------------------------------- this process's state

_probed = {}  # pid -> (Hierarchy or None, why not)
_kernel_failure = None  # why a kernel's group could not be made, once


def hierarchy():
    """This machine's hierarchy for kernels' groups, or None; probed once per process."""
    pid = os.getpid()
    if pid not in _probed:
        try:
            _probed[pid] = (_find_here(), None)
        except CgroupError as error:
            _probed[pid] = (None, str(error))
    return _probed[pid][0]


def _find_here():
    if not hasattr(os, "geteuid") or not ROOT.is_dir():
        raise CgroupError(f"no cgroup file system at {ROOT}")
    return find()


def unavailable_reason():
    """Why kernels get no cgroup here, or None when they do."""
    hierarchy()
    return _kernel_failure or _probed[os.getpid()][1]


def kernel_cgroup(*, memory_mb, max_processes):
    """A new kernel's group, or None: none here, or this one could not be made. A failure is
    said once (logged, and in `unavailable_reason()` from then on) and this process's later
    kernels go without: their memory is then capped per process (rlimits)."""
    found = hierarchy()
    if found is None or _kernel_failure:
        return None
    try:
        return found.kernel_cgroup(memory_mb=memory_mb, max_processes=max_processes)
    except (OSError, CgroupError) as error:
        failed(error)
        return None


def failed(error):
    """Note that a kernel's group failed (`error`); said once per process."""
    global _kernel_failure
    if _kernel_failure is None:
        _kernel_failure = f"a kernel's cgroup could not be made or joined ({error})"
        logger.warning("%s; kernels go on without cgroups, their memory capped per process",
                       _kernel_failure)


def remove_stale():
    """Remove the groups left by graders that are gone (e.g. the workers of a cluster that
    just closed); nothing where there are no cgroups or this process never looked for them
    (a batch without the sandbox)."""
    found = _probed.get(os.getpid(), (None, None))[0]
    if found is not None:
        with contextlib.suppress(OSError):
            found.remove_stale()
