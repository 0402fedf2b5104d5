"""Run one submission's notebook in a place of its own, with limits.

Each submission gets a fresh directory holding only the lab's support files and its own
notebook. Where Linux allows (root, namespaces, cgroups), its kernel then runs confined:

    file system  a private root with the system read-only and a copy of that directory
                 (grader.run.isolation): no source notebook, gradebook, output or other student
    network      none, loopback included
    users        a user id of its own, no capabilities; /proc shows only its processes
    resources    a cgroup with a memory cap and a process cap (grader.run.cgroups); a cell time
                 limit, a submission time limit, an output cap per cell
    afterwards   every process it started is killed (grader.run.execution.KernelWatchdog)

Where it cannot (not root, macOS, a container that forbids namespaces), grading goes on
with what is left and `protection().missing` says, once per run, what is not enforced.
"""

import functools
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.labs.c2_w2 import lab
from grader.labs.c2_w2.verdicts import DEFAULT_HIDDEN_SEED, HIDDEN_SEED_VARIABLE
from grader.run import cgroups, isolation
from grader.run.execution import execute
from grader.run.warm_kernels import RLimits


@dataclass(frozen=True)
class Limits:
    cell_timeout: int = 60  # seconds one cell may run before it is interrupted
    timeout: int = 600  # seconds for the whole submission
    memory_mb: int = 4096  # memory of the kernel and all it starts (where cgroups exist)
    max_processes: int = 1024  # processes and threads, likewise
    disk_mb: int = 512  # the kernel's private lab directory and /tmp, each (confined only)
    # A private root, no network, an own user id, a cgroup: as far as the machine running
    # the kernel allows (decided there, not by the coordinator, which may be another one).
    # Off only on request (--no-sandbox), e.g. to debug a submission.
    confine: bool = True


@dataclass(frozen=True)
class Protection:
    """What this machine lets the sandbox enforce."""

    namespaces: bool
    cgroups: bool
    missing: tuple[str, ...] = field(default=())

    @property
    def level(self):
        """A few words for the grades' run facts: what confines a kernel."""
        parts = [name for name, on in (("namespaces", self.namespaces),
                                       ("cgroups", self.cgroups)) if on]
        return "+".join(parts) or "time limits only"


OFF = Protection(namespaces=False, cgroups=False, missing=(
    "the sandbox is off (--no-sandbox): kernels run as the grader, with its view of the files "
    "and the network, without memory or process caps; only time limits, output caps, a "
    "fresh directory and per-process rlimits apply",))


def protection(*, enabled=True):
    """What confines a kernel on this machine (OFF when not `enabled`)."""
    return _available_protection() if enabled else OFF


@functools.cache
def _available_protection():
    """Which protections this machine allows, tried once per process."""
    no_namespaces = isolation.unavailable_reason()
    no_cgroups = cgroups.unavailable_reason()
    missing = []
    if no_namespaces:
        missing.append(f"{no_namespaces}: kernels are not confined; a submission can read "
                       "every file the grader can (other submissions, the source notebook), "
                       "write where the grader can and open network connections")
    if no_cgroups:
        missing.append(f"{no_cgroups}: kernels run without a memory cap or a process cap, "
                       "and a process a student detaches from the kernel may outlive grading")
    return Protection(namespaces=no_namespaces is None, cgroups=no_cgroups is None,
                      missing=tuple(missing))


def run_notebook(notebook, *, support_dir, capture_cells, limits, kernel_template=None,
                 hidden_seed=DEFAULT_HIDDEN_SEED):
    """Execute `notebook` (a dict) beside copies of `support_dir`'s files, its hidden tests
    drawing their inputs from `hidden_seed`; plain outcome."""
    with tempfile.TemporaryDirectory(prefix="grader-submission-") as scratch:
        workdir = Path(scratch) / "lab"
        # Copies, not links: a link would let one student's code change another's files.
        shutil.copytree(support_dir, workdir)
        node = nbformat.from_dict(notebook)
        nbformat.write(node, str(workdir / lab.NOTEBOOK_NAME))
        here = protection(enabled=limits.confine)
        confinement = None
        if kernel_template is not None and here.namespaces:
            confinement = _confinement(Path(scratch), workdir, limits)
        return execute(node, workdir=workdir, capture_cells=capture_cells,
                       cell_timeout=limits.cell_timeout, timeout=limits.timeout,
                       kernel_template=kernel_template,
                       memory_mb=limits.memory_mb if here.cgroups else None,
                       max_processes=limits.max_processes, confinement=confinement,
                       kernel_env=grading_environment(hidden_seed),
                       rlimits=fallback_rlimits(here, limits))


def fallback_rlimits(here, limits):
    """The per-process limits a kernel sets on itself for what `here` cannot enforce."""
    return RLimits(memory_mb=None if here.cgroups else limits.memory_mb,
                   file_mb=None if here.namespaces else limits.disk_mb)


def grading_environment(hidden_seed):
    """What a grading kernel finds in its environment, besides the usual."""
    # NBGRADER_EXECUTION as nbgrader's autograder sets it: notebooks written for nbgrader
    # may test it (e.g. to skip slow cells).
    return {HIDDEN_SEED_VARIABLE: str(hidden_seed), "NBGRADER_EXECUTION": "autograde"}


def _confinement(scratch, workdir, limits):
    (scratch / "root").mkdir()
    return isolation.Confinement(mount_point=str(scratch / "root"), lab_source=str(workdir),
                                 disk_mb=limits.disk_mb)
