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
from pathlib import Path

from grader.run.cgroup_groups import (  # noqa: F401 (the module's interface)
    CONTROLLERS,
    DELEGATE_XATTRS,
    FILES,
    STALE_EMPTY_SECONDS,
    CgroupError,
    Files,
    Hierarchy,
    KernelCgroup,
    _identity,
    failed,
    kernel_failure,
)

ROOT = Path("/sys/fs/cgroup")
PARENT = "grader"  # holds the kernels' groups where the grader has no delegated cgroup
SUPERVISOR = "supervisor"  # in a delegated cgroup: the leaf the grader's own processes move to

logger = logging.getLogger(__name__)


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
    return kernel_failure() or _probed[os.getpid()][1]


def kernel_cgroup(*, memory_mb, max_processes):
    """A new kernel's group, or None: none here, or this one could not be made. A failure is
    said once (logged, and in `unavailable_reason()` from then on) and this process's later
    kernels go without: their memory is then capped per process (rlimits)."""
    found = hierarchy()
    if found is None or kernel_failure():
        return None
    try:
        return found.kernel_cgroup(memory_mb=memory_mb, max_processes=max_processes)
    except (OSError, CgroupError) as error:
        failed(error)
        return None


def remove_stale():
    """Remove the groups left by graders that are gone (e.g. the workers of a cluster that
    just closed); nothing where there are no cgroups or this process never looked for them
    (a batch without the sandbox)."""
    found = _probed.get(os.getpid(), (None, None))[0]
    if found is not None:
        with contextlib.suppress(OSError):
            found.remove_stale()
