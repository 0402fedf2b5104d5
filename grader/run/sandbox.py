"""Run one submission's notebook in a place of its own, with limits.

Each submission gets a fresh directory holding only the lab's support files and its own
notebook. Where Linux allows (root, namespaces, cgroups), its kernel then runs confined:

    file system  a private root with the system read-only and a copy of that directory
                 (grader.run.isolation): no source notebook, gradebook, output or other student
    network      none, loopback included
    users        a user id of its own, no capabilities; /proc shows only its processes
    system calls no new namespaces, mounts, tracing, keyring, eBPF, perf, io_uring, modules
                 or clock (grader.run.syscalls' seccomp filter)
    resources    a cgroup with a memory cap and a process cap (grader.run.cgroups); a cell time
                 limit, a submission time limit, an output cap per cell
    afterwards   every process it started is killed (grader.run.watchdog.KernelWatchdog)

Where it cannot (not root, macOS, a container that forbids namespaces, no libseccomp),
grading goes on with what is left and `protection().missing` says, once per run, what is
not enforced.
"""

import dataclasses
import functools
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import nbformat

from grader.records import KernelProtection
from grader.run import cgroups, isolation, syscalls
from grader.run.warm_kernels import RLimits
from grader.scratch import scratch_folder
from grader.settings import Limits
from grader.stage_clock import StageClock


@dataclass(frozen=True)
class Protection:
    """What this machine lets the sandbox enforce."""

    namespaces: bool
    cgroups: bool
    missing: tuple[str, ...] = field(default=())
    syscalls: bool = False  # the seccomp filter (not in `level`: a missing one is in `missing`)

    @property
    def kernel(self):
        """What a kernel run here is confined by, as a RunOutcome carries it."""
        return KernelProtection(namespaces=self.namespaces, cgroups=self.cgroups,
                                syscall_policy=self.syscalls)

    @property
    def level(self):
        """A few words for the grades' run facts: what confines a kernel."""
        return self.kernel.level


OFF = Protection(namespaces=False, cgroups=False, missing=(
    "the sandbox is off (--no-sandbox): kernels run as the grader, with its view of the files "
    "and the network, without memory or process caps; only time limits, output caps, a "
    "fresh directory and per-process rlimits apply",))


def protection(*, enabled=True):
    """What confines a kernel on this machine (OFF when not `enabled`). Each is tried once
    per process; cgroups are off from the first kernel whose group could not be made."""
    if not enabled:
        return OFF
    return _available_protection(_namespaces_missing(), cgroups.unavailable_reason(),
                                 _syscalls_missing())


@functools.cache
def _namespaces_missing():
    return isolation.unavailable_reason()


@functools.cache
def _syscalls_missing():
    return syscalls.unavailable_reason()


@functools.cache
def _available_protection(no_namespaces, no_cgroups, no_syscalls=None):
    """What the machine allows, given why namespaces, cgroups and the system call policy
    are missing (None: not)."""
    missing = []
    if no_namespaces:
        missing.append(f"{no_namespaces}: kernels are not confined; a submission can read "
                       "every file the grader can (other submissions, the source notebook), "
                       "write where the grader can and open network connections")
    if no_cgroups:
        missing.append(f"{no_cgroups}: kernels run without a process cap, their memory is "
                       "capped per process only (rlimits), and a process a student detaches "
                       "from the kernel may outlive grading")
    if no_syscalls:
        missing.append(f"{no_syscalls}: kernels run without the system call policy; they "
                       "may create namespaces, mount, trace their own processes and reach "
                       "the kernel's keyring, eBPF, perf and io_uring")
    return Protection(namespaces=no_namespaces is None, cgroups=no_cgroups is None,
                      missing=tuple(missing), syscalls=no_syscalls is None)


def without_cgroups(protections, here):
    """One warning when kernels ran without the cgroups `here` has, from the
    KernelProtection each kernel's worker reported: a worker that could not make one
    logged why, once."""
    if not here.cgroups:
        return []  # `here.missing` says so already
    count = sum(1 for kernel in protections if kernel is not None and not kernel.cgroups)
    if not count:
        return []
    return [f"{count} submission{'' if count == 1 else 's'} ran without a cgroup (their "
            "worker could not make one: its log says why), so those kernels had no process "
            "cap and their memory was capped per process (rlimits), not as a whole"]


def run_notebook(notebook, *, support_dir, notebook_name, limits=None, plan=None,
                 kernel_template=None, clock=None):
    """Execute `notebook` (a dict) as `notebook_name` beside copies of `support_dir`'s
    files, capturing what `plan` (grader.run.captures.CapturePlan) says; a RunOutcome
    saying what confined the kernel, and its stages as `clock`
    (grader.stage_clock.StageClock) timed them."""
    from grader.run.execution import execute  # nbclient's and nbgrader's: a second

    limits = limits or Limits()
    clock = clock or StageClock()
    here = protection(enabled=limits.confine)
    removal = clock.stage("submission folder removal")
    with scratch_folder("submission") as scratch:
        with clock.stage("submission folder"):
            workdir = scratch / "lab"
            # Copies, not links: a link would let one student's code change another's.
            shutil.copytree(support_dir, workdir)
            node = nbformat.from_dict(notebook)
            nbformat.write(node, str(workdir / notebook_name))
            confinement = None
            if kernel_template is not None and here.namespaces:
                confinement = _confinement(scratch, workdir, limits)
        outcome = execute(node, workdir=workdir, plan=plan, cell_timeout=limits.cell_timeout,
                          timeout=limits.timeout, output_bytes=limits.output_bytes,
                          kernel_template=kernel_template,
                          memory_mb=limits.memory_mb if here.cgroups else None,
                          max_processes=limits.max_processes, confinement=confinement,
                          kernel_env=grading_environment(),
                          rlimits=fallback_rlimits(here, limits), syscall_policy=here.syscalls,
                          clock=clock)
        removal.__enter__()  # the folder's removal, as the block ends
    removal.__exit__()
    return dataclasses.replace(outcome, protection=here.kernel, unprotected=here.missing,
                               memory_mb=limits.memory_mb, stages=clock.totals())


def fallback_rlimits(here, limits):
    """The per-process limits a kernel sets on itself for what `here` cannot enforce."""
    return RLimits(memory_mb=None if here.cgroups else limits.memory_mb,
                   file_mb=None if here.namespaces else limits.disk_mb)


def grading_environment():
    """What a grading kernel finds in its environment, besides the usual."""
    # NBGRADER_EXECUTION as nbgrader's autograder sets it: notebooks written for nbgrader
    # may test it (e.g. to skip slow cells). The hidden inputs' seed is not here: the
    # kernel only meets it inside the capture, after the student's cells.
    return {"NBGRADER_EXECUTION": "autograde"}


def _confinement(scratch, workdir, limits):
    (scratch / "root").mkdir()
    return isolation.Confinement(mount_point=str(scratch / "root"), lab_source=str(workdir),
                                 disk_mb=limits.disk_mb)


def kernels_sandbox(levels: Iterable[str]) -> str:
    """What confined the kernels, as the machines that ran them said (with --scheduler,
    other machines than this one): one level, or each level with its count."""
    counts = Counter(level for level in levels if level)
    if len(counts) <= 1:
        return next(iter(counts), "")
    return ", ".join(f"{level} ({count} submission{'' if count == 1 else 's'})"
                     for level, count in sorted(counts.items()))
