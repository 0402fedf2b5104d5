"""A private view of the machine for one kernel, made with Linux namespaces.

The warm kernels are forked from a template, not exec'd, so no wrapper such as bubblewrap
can stand between the two: the forked process confines itself, with the same system calls
bubblewrap makes, before it becomes a kernel and before any student code exists in it.

    unshare(mount, network, IPC, UTS,   its own mount table, no network at all, and
            cgroup)                     its cgroup as the root of /proc/self/cgroup
    a new root on a tmpfs, holding only
        /usr /bin /lib* /sbin /etc      read-only (the system's programs and libraries)
        the Python prefixes             read-only (the virtualenv, not the lab beside it),
                                        the grader's package and install files in them
                                        covered (grader.run.grader_files): empty
        /home/student/lab               a size-capped tmpfs with copies of the lab's files
                                        and this one submission
        /tmp                            a size-capped tmpfs of its own
        /dev                            null, zero, full, random, urandom, shm
        /proc                           only its own processes (hidepid)
        /run/kernel                     its sockets (ZMQ over ipc: it has no loopback), on
                                        a small size-capped tmpfs the worker reaches through
                                        /proc/<kernel pid>/root (see socket_path)
    pivot_root into it, the old root detached
    a user id of its own (grader.run.kernel_uids), no groups, no capabilities, no new
    privileges; then the system call policy (grader.run.syscalls), set by the caller

So a kernel cannot see the source notebook, the gradebook, the grader's output or any
other submission (they are not in its file system), cannot reach anything over a network,
cannot signal, trace or read another student's kernel (another user id, which /proc
hides), and cannot undo any of it (no capabilities; setuid programs do not raise them).
The tmpfs pages it writes count against its cgroup's memory cap.
"""

import ctypes
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass

from grader.run import kernel_uids

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOSYMFOLLOW = 256  # Linux 5.10; older kernels ignore it
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")
HOME = "/home/student"
LAB_DIR = f"{HOME}/lab"  # the kernel's working directory, the same for every student
SOCKET_DIR = "/run/kernel"
# The socket directory holds ZMQ's ipc sockets and the connection file: a few kB. Its own
# tmpfs, so that what a kernel writes there is capped (and counted against its cgroup, like
# every tmpfs page it writes) instead of landing on the grader's disk; nosymfollow, so that a
# link a kernel puts there in place of a socket leads nobody anywhere.
SOCKET_DIR_MB = 4
FIRST_UID = kernel_uids.FIRST_UID  # kernel user ids are at least this (kernel_uids.base())
# A cover for a folder of the grader's among the mirrored ones: empty, read-only.
COVER_OPTIONS = "size=4k,mode=555"
NAMESPACES = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
# The one allow-list: the variables of the grader's environment that a kernel, and the
# template it is forked from, may see; the rest (credentials, paths of the grader's files,
# its TMPDIR and HOME) stays outside. Every kernel gets it, confined or not.
KEPT_ENVIRONMENT = ("PATH", "LANG", "LANGUAGE", "TZ", "PYTHONHASHSEED", "TF_CPP_MIN_LOG_LEVEL",
                    "OMP_NUM_THREADS", "MPLBACKEND")
KEPT_PREFIXES = ("JPY_", "LC_", "NBGRADER_")


@dataclass(frozen=True)
class Confinement:
    """Where one kernel's private root is made and what goes into it."""

    mount_point: str  # an empty directory the new root is mounted on (outside: stays empty)
    lab_source: str  # the submission's directory: notebook and the lab's files, copied in
    disk_mb: int = 512  # size of the private lab directory and of /tmp, each


class KernelSetupError(RuntimeError):
    """A kernel could not be given its place (its sandbox, its cgroup, a template that
    answers); the message says why, in words for the student's row. It is made by the
    grader's own code (the template, from what the forked child reported over a pipe only
    they hold, before any student code existed), never read from a file a kernel could
    have touched."""


def failure(error):
    """Why the kernel could not be set up, if `error` (what starting it raised, directly
    or as the cause of another exception) says so; else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KernelSetupError):
            return str(error) or "no reason given"
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def allowed_environment(environment):
    """The variables of `environment` on the allow-list."""
    return {name: value for name, value in environment.items()
            if name in KEPT_ENVIRONMENT or name.startswith(KEPT_PREFIXES)}


def kernel_environment(environment, *, scratch=None):
    """What a kernel runs with: the allowed part of `environment`, and a home and temporary
    folder that exist where it runs (never the grader's): in the sandbox its own home and
    /tmp; without it, `scratch`, the submission's fresh directory."""
    home, tmp = (HOME, "/tmp") if scratch is None else (str(scratch), str(scratch))
    return {**allowed_environment(environment), "HOME": home, "TMPDIR": tmp,
            "MPLCONFIGDIR": os.path.join(tmp, "matplotlib")}


def socket_path(pid, name):
    """Where the worker finds a confined kernel's socket `name` (in its SOCKET_DIR): through
    the kernel's own root, so that the directory can be a tmpfs of the kernel's mount
    namespace (capped, gone with the kernel) and nothing of it is on the grader's disk."""
    return f"/proc/{pid}/root{SOCKET_DIR}/{name}"


def confine(confinement, python_paths, hidden=()):
    """Confine the calling process (root, single-threaded, not yet running student code,
    already in its cgroup); afterwards it is an unprivileged user whose working directory
    is LAB_DIR. The `hidden` files and folders (real paths) are covered where they lie
    under a mirrored directory."""
    _unshare(NAMESPACES)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here leaks out
    uid = kernel_uids.base() + os.getpid()
    root = confinement.mount_point
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    mirrored = [path for path in SYSTEM_DIRS if _mirror(path, root)]
    _scratch_mount(root, "/tmp", confinement.disk_mb, uid, mode=0o1777)
    _make_dev(root)
    _make_proc(root)
    for path in python_paths:
        if not any(_under(path, bound) for bound in SYSTEM_DIRS) and _mirror(path, root):
            mirrored.append(path)
    for path in hidden:
        if any(_under(path, bound) for bound in mirrored):
            _cover(root, path)
    _scratch_mount(root, HOME, confinement.disk_mb, uid, mode=0o700)
    _copy_tree(confinement.lab_source, root + LAB_DIR, uid)
    _scratch_mount(root, SOCKET_DIR, SOCKET_DIR_MB, uid, mode=0o700,
                   flags=MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW)
    _pivot_into(root)
    _close_directory_descriptors()
    _drop_privileges(uid)
    os.chdir(LAB_DIR)
    return uid


def _under(path, directory):
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _mirror(path, root):
    """Make `path` exist in the new root as it is outside: a symbolic link stays one, a
    directory is bound read-only. Whether it was bound."""
    if os.path.islink(path):
        target = root + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(path), target)
    elif os.path.isdir(path):
        _bind(path, root + path, read_only=True)
        return True
    return False


def _cover(root, path):
    """Make the file or folder `path` of a mirrored directory empty in the new root: an
    empty read-only tmpfs over a folder, /dev/null over a file. Not where the new root
    reaches it through a link (that is not the copy the kernel sees at `path`)."""
    target = root + path
    if os.path.realpath(target) != target:
        return
    read_only = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if os.path.isdir(target):
        _mount("tmpfs", target, "tmpfs", read_only, COVER_OPTIONS)
    elif os.path.exists(target):
        _mount(os.devnull, target, None, MS_BIND)
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)


def _bind(source, target, *, read_only):
    os.makedirs(target, exist_ok=True)
    _mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _scratch_mount(root, path, size_mb, uid, *, mode, flags=MS_NOSUID | MS_NODEV):
    target = root + path
    os.makedirs(target, exist_ok=True)
    _mount("tmpfs", target, "tmpfs", flags, f"size={size_mb}m,mode={mode:o}")
    os.chown(target, uid, uid)


def _make_dev(root):
    dev = root + "/dev"
    os.makedirs(dev, exist_ok=True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "size=64k,mode=755")
    for name in DEVICES:
        open(f"{dev}/{name}", "w").close()  # a mount point for the real device
        _mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    os.makedirs(f"{dev}/shm", exist_ok=True)
    _mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")


def _make_proc(root):
    proc = root + "/proc"
    os.makedirs(proc, exist_ok=True)
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    try:
        _mount("proc", proc, "proc", flags, "hidepid=invisible")
    except OSError:  # kernels before 5.8 know only the number
        _mount("proc", proc, "proc", flags, "hidepid=2")


def _copy_tree(source, target, uid):
    shutil.copytree(source, target, dirs_exist_ok=True)
    for directory, subdirectories, files in os.walk(target):
        for name in [*subdirectories, *files]:
            os.lchown(os.path.join(directory, name), uid, uid)
    os.chown(target, uid, uid)


def _pivot_into(root):
    old = root + "/.old-root"
    os.makedirs(old, exist_ok=True)
    _syscall(SYS_PIVOT_ROOT[platform.machine()], root.encode(), old.encode())
    os.chdir("/")
    _umount("/.old-root")
    os.rmdir("/.old-root")
    # The new root's own tmpfs becomes read-only: only the scratch mounts are writable.
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _close_directory_descriptors():
    """An open directory from the old root would be a way back out of the new one."""
    for name in os.listdir("/proc/self/fd"):
        descriptor = int(name)
        try:
            if stat.S_ISDIR(os.fstat(descriptor).st_mode):
                os.close(descriptor)
        except OSError:
            pass  # the listing's own descriptor, already closed


def _drop_privileges(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # all capabilities go with root's user id
    _check(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")


# ------------------------------------------------------------------ libc, checked

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _unshare(flags):
    _check(_libc().unshare(flags), "unshare")


def _mount(source, target, fstype, flags, data=None):
    _check(_libc().mount(_bytes(source), _bytes(target), _bytes(fstype),
                         ctypes.c_ulong(flags), _bytes(data)), f"mount {target}")


def _bytes(text):
    return None if text is None else text.encode()


def _umount(target):
    _check(_libc().umount2(target.encode(), MNT_DETACH), f"umount {target}")


def _syscall(number, *arguments):
    _check(_libc().syscall(number, *arguments), "pivot_root")


def unavailable_reason():
    """Why kernels cannot be confined here, or None when they can (tried in a new process:
    the caller may have threads, which a fork would not carry)."""
    if platform.system() != "Linux":
        return f"{platform.system()} has no Linux namespaces"
    if os.geteuid() != 0:
        return "not running as root"
    if platform.machine() not in SYS_PIVOT_ROOT:
        return f"pivot_root's number on {platform.machine()} is unknown"
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                           timeout=60)
    if probe.returncode != 0:
        return ("this machine refuses new mount and network namespaces (a container?): "
                + (probe.stderr.strip().splitlines() or ["no reason given"])[-1])
    return None


_PROBE = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare({NAMESPACES}) != 0:
    raise OSError(ctypes.get_errno(), "unshare: " + os.strerror(ctypes.get_errno()))
if libc.mount(None, b"/", None, ctypes.c_ulong({MS_REC | MS_PRIVATE}), None) != 0:
    raise OSError(ctypes.get_errno(), "mount: " + os.strerror(ctypes.get_errno()))
"""


def confined_connection_file(info):
    """The connection file as the confined kernel sees it (written once confined, into its
    own socket directory): the sockets named by their path inside."""
    info = {**info, "ip": os.path.join(SOCKET_DIR, os.path.basename(info["ip"]))}
    path = os.path.join(SOCKET_DIR, "connection.json")
    with open(path, "w") as stream:
        json.dump(info, stream)
    return path
