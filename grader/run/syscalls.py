"""The system calls a kernel may not make: a seccomp filter, through libseccomp.

The forked child installs it on itself last thing before it becomes a kernel: confined,
its privileges dropped, no new privileges possible, single-threaded (a fork keeps only the
forking thread), and before any student code exists. A filter cannot be removed and is
inherited by every thread and process the kernel starts.

Everything not listed here is allowed: a lab kernel runs NumPy, TensorFlow, threads,
subprocesses and multiprocessing, and a list of what it needs would break with every
release of those. What is listed is what a lab kernel has no use for and what opens the
kernel's attack surface to it: new namespaces (in a user namespace it would hold every
capability, mount over its own root, and reach code paths unprivileged users never see),
the mount API, tracing and reading other processes' memory, the kernel keyring, eBPF,
perf, io_uring, kernel modules, the clock, the machine's state. A denied call fails with
EPERM, so the student's code gets an error it can report; clone3 fails with ENOSYS (its
flags sit in memory a filter cannot read), which makes glibc fall back to clone, whose
flags it can. Calls of another architecture (32-bit int 0x80, the x32 ABI) fail with
EPERM as a whole: the filter only knows this machine's numbers.

If libseccomp is missing, or this kernel has no seccomp, `unavailable_reason` says so and
the sandbox lists it as missing protection; a filter that fails to build or load fails
that submission's set-up (grader.run.isolation.KernelSetupError), never silently.
"""

import ctypes
import errno
import os
import subprocess
import sys
from pathlib import Path

# Denied with EPERM whatever their arguments.
DENIED = (
    # Namespaces and what they give: a root of its own to mount on, and escape from.
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    # Other processes: tracing, their memory, their file descriptors.
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "process_madvise",
    # Kernel subsystems a lab never uses, each with a record of privilege escalations.
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init",
    # Files by handle: a way around the mount namespace.
    "open_by_handle_at", "name_to_handle_at",
    # The machine: its kernel, modules, swap, accounting, log, clock, hostname, ports.
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "syslog", "quotactl", "quotactl_fd",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname", "vhangup", "iopl", "ioperm", "lookup_dcookie", "uselib", "ustat",
    "sysfs", "_sysctl", "nfsservctl",
    # Execution domains (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE): neither Python nor
    # TensorFlow calls it, so not even the query Docker allows.
    "personality",
)
NOT_IMPLEMENTED = ("clone3",)  # ENOSYS: glibc then uses clone, whose flags are checked
# The flags of clone that make a new namespace; clone with any of them gets EPERM.
# (CLONE_NEWTIME's bit is part of the exit signal in clone; only unshare and clone3 take it.)
NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

# Calls added since Linux 5.1 have one number on every architecture (alpha aside): the
# number of one that an older libseccomp (Debian 11's 2.5.1, say) cannot name.
UNIFIED_NUMBERS = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "clone3": 435, "pidfd_getfd": 438, "process_madvise": 440, "mount_setattr": 442,
    "quotactl_fd": 443,
}

# libseccomp's constants (seccomp.h)
ACT_ALLOW = 0x7FFF0000
ATTR_ACT_BADARCH = 2
ATTR_API_SYSRAWRC = 9  # libseccomp 2.5: the system's own errno, not ECANCELED
CMP_MASKED_EQ = 7
NR_SCMP_ERROR = -1
PR_SET_NO_NEW_PRIVS = 38


def act_errno(code):
    return 0x00050000 | (code & 0xFFFF)


class ArgumentComparison(ctypes.Structure):
    """struct scmp_arg_cmp: argument `argument`, compared by `op` with a (and b)."""

    _fields_ = [("argument", ctypes.c_uint), ("op", ctypes.c_int),
                ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


class PolicyError(RuntimeError):
    """The filter could not be built or loaded; the message says why."""


_LIBSECCOMP = None


def libseccomp():
    """libseccomp.so.2, its functions typed; PolicyError when it is not installed."""
    global _LIBSECCOMP
    if _LIBSECCOMP is None:
        try:  # by its soname: find_library would run ldconfig, in a confined child too
            library = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as error:
            raise PolicyError(f"libseccomp is not installed ({error})") from None
        library.seccomp_init.restype = ctypes.c_void_p
        library.seccomp_init.argtypes = [ctypes.c_uint32]
        library.seccomp_release.argtypes = [ctypes.c_void_p]
        library.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        library.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        library.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
            ctypes.POINTER(ArgumentComparison)]
        library.seccomp_load.argtypes = [ctypes.c_void_p]
        library.seccomp_export_pfc.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _LIBSECCOMP = library
    return _LIBSECCOMP


def syscall_number(name):
    """This architecture's number for `name` (negative, a libseccomp pseudo-number, for a
    call this architecture does not have); PolicyError when neither libseccomp nor
    UNIFIED_NUMBERS knows it."""
    number = libseccomp().seccomp_syscall_resolve_name(name.encode())
    if number == NR_SCMP_ERROR:
        number = UNIFIED_NUMBERS.get(name, NR_SCMP_ERROR)
    if number == NR_SCMP_ERROR:
        raise PolicyError(f"this libseccomp does not know the system call {name}")
    return number


def rules():
    """The policy as (name, errno, argument comparisons): each a reason to refuse."""
    denied = [(name, errno.EPERM, ()) for name in DENIED]
    denied += [(name, errno.ENOSYS, ()) for name in NOT_IMPLEMENTED]
    denied += [("clone", errno.EPERM, ((0, CMP_MASKED_EQ, flag, flag),))
               for flag in NAMESPACE_FLAGS.values()]
    return denied


class Filter:
    """A libseccomp filter context holding the policy; released when closed."""

    def __init__(self):
        self.library = libseccomp()
        self.context = self.library.seccomp_init(ACT_ALLOW)
        if not self.context:
            raise PolicyError("seccomp_init failed")
        try:
            self._check(self.library.seccomp_attr_set(
                self.context, ATTR_ACT_BADARCH, act_errno(errno.EPERM)), "seccomp_attr_set")
            # Older libseccomps lack it: their errors then all read "Operation canceled".
            self.library.seccomp_attr_set(self.context, ATTR_API_SYSRAWRC, 1)
            for name, code, comparisons in rules():
                self._add(name, code, comparisons)
        except BaseException:
            self.close()
            raise

    def _add(self, name, code, comparisons):
        array = (ArgumentComparison * max(1, len(comparisons)))(
            *(ArgumentComparison(*comparison) for comparison in comparisons))
        self._check(self.library.seccomp_rule_add_array(
            self.context, act_errno(code), syscall_number(name), len(comparisons), array),
            f"the rule for {name}")

    @staticmethod
    def _check(result, what):
        if result < 0:
            raise PolicyError(f"the system call policy: {what}: {os.strerror(-result)}")

    def load(self):
        self._check(self.library.seccomp_load(self.context), "seccomp_load")

    def export(self, descriptor):
        """Write the filter, in libseccomp's readable form, to `descriptor`."""
        self._check(self.library.seccomp_export_pfc(self.context, descriptor), "export")

    def close(self):
        if self.context:
            self.library.seccomp_release(self.context)
            self.context = None


def install():
    """Put the calling process (and all it will start) under the policy; PolicyError when
    it could not. Sets no-new-privileges first, which an unprivileged process needs to
    install a filter (a confined kernel has it already)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise PolicyError(f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(code)}")
    policy = Filter()
    try:
        policy.load()
    finally:
        policy.close()


def seccomp_mode(status="/proc/self/status"):
    """The Seccomp: field of `status` (0 none, 1 strict, 2 filter), None if absent."""
    for line in Path(status).read_text().splitlines():
        if line.startswith("Seccomp:"):
            return int(line.split()[1])
    return None


def unavailable_reason():
    """Why kernels cannot be given the policy here, or None when they can (tried in a new
    process, since a filter cannot be taken off)."""
    if sys.platform != "linux":
        return f"{sys.platform} has no seccomp"
    try:
        libseccomp()
    except PolicyError as error:
        return str(error)
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                           timeout=60, env={"PYTHONPATH": _grader_root()})
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"the system call policy could not be installed here ({last})"
    return None


def _grader_root():
    return str(Path(__file__).resolve().parents[2])


_PROBE = """
import ctypes, errno
from grader.run import syscalls
syscalls.install()
assert syscalls.seccomp_mode() == 2, "Seccomp is not 2 in /proc/self/status"
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000) == 0 or ctypes.get_errno() != errno.EPERM:
    raise SystemExit("unshare was not refused")
"""
