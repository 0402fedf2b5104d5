"""Run one prepared notebook in a kernel and capture what its hidden tests print.

This never judges: the hidden tests only print the student's answers as data (a
`__GRADER_ANSWER__` line), taken out of the cell's output as soon as the cell has run,
and the coordinating process turns them into points. Answers captured before a later
hang or crash are kept.
"""

import contextlib
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field

import nbformat
import psutil
from nbclient.exceptions import DeadKernelError
from nbclient.util import run_sync
from nbgrader.preprocessors import Execute, LimitOutput
from traitlets import Bool, Dict, Int

from grader.intake.prepare import grade_id, skipped
from grader.run import cgroups, isolation
from grader.run.warm_kernels import KernelSetup, warm_kernel_manager

MARKER = "__GRADER_ANSWER__"
TIMEOUT_ERROR = "CellTimeoutError"


class CaptureExecute(Execute):
    """nbgrader's Execute (per-cell timeout with interrupt) that skips the cells marked
    to skip and takes the answers out of the hidden test cells as soon as each ran."""

    capture_cells = Dict(help="test cell grade_id -> exercise id").tag(config=True)
    # A cell that ignores the interrupt must not end the run with nbclient's exception
    # (answers captured so far lost): the next cells time out until the watchdog fires.
    raise_on_iopub_timeout = Bool(False).tag(config=True)
    max_output_bytes = Int(2 * 10**6, help="output kept per cell").tag(config=True)

    def __init__(self, *args, on_capture=None, kernel_env=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel_env = kernel_env or {}
        self.on_capture = on_capture or (lambda exercise, answer, error: None)
        self.on_kernel_started = lambda: None
        self._output_bytes = {}  # cell index -> bytes of output seen

    def on_notebook_start(self, **kwargs):
        self.on_kernel_started()

    async def async_start_new_kernel(self, **kwargs):
        # The kernel's own log (e.g. "running over TCP without encryption") is not the
        # grader's output; a student's prints reach the notebook through the kernel.
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        # Only the allow-listed variables, confined or not, and a TMPDIR and HOME of its own
        # (the submission's directory: the grader's may not exist where the kernel runs).
        cwd = kwargs.get("cwd") or self.resources.get("metadata", {}).get("path") or os.getcwd()
        kwargs["env"] = isolation.kernel_environment(
            {**os.environ, **kwargs.get("env", {}), **self.kernel_env}, scratch=cwd)
        await super().async_start_new_kernel(**kwargs)

    start_new_kernel = run_sync(async_start_new_kernel)

    def preprocess_cell(self, cell, resources, index):
        if skipped(cell):
            return cell, resources
        return super().preprocess_cell(cell, resources, index)

    def output(self, outs, msg, display_id, cell_index):
        """Keep at most `max_output_bytes` of what one cell shows, as it arrives: a cell
        printing hundreds of megabytes must not hold them in the grader's memory."""
        size = _message_size(msg)
        shown = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = shown + size
        if shown + size <= self.max_output_bytes or _carries_answer(msg):
            return super().output(outs, msg, display_id, cell_index)
        if shown <= self.max_output_bytes:  # the first message over the cap: say so, once
            outs.append(nbformat.v4.new_output(
                "stream", name="stderr",
                text=f"\n[grader: this cell's output passed {self.max_output_bytes // 10**6} MB;"
                     " the rest was not kept]\n"))
        return None

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        cell = kwargs["cell"]
        exercise = self.capture_cells.get(grade_id(cell))
        if exercise:
            answer, problem = take_answer(cell, exercise)
            error = problem or (cell_error(cell) if answer is None else None)
            self.on_capture(exercise, answer, error)


def _message_size(msg):
    content = msg.get("content", {})
    if "text" in content:
        return len(content["text"])
    return sum(len(str(value)) for value in content.get("data", {}).values())


def _carries_answer(msg):
    return MARKER in msg.get("content", {}).get("text", "")


IMITATED = "ImitatedAnswer"


def take_answer(cell, exercise):
    """Remove the exercise's answer lines from the cell's stdout; return (answer, problem).

    The hidden test prints exactly one line. More than one means something else in the
    kernel printed an imitation (student code called by the test, or a hook run after the
    cell): then nothing is believed, and `problem` says so.
    """
    prefix = f"{MARKER} {exercise} "
    answers = []
    for output in cell.get("outputs", []):
        if output.get("output_type") != "stream" or output.get("name") != "stdout":
            continue
        kept = []
        for line in output.text.splitlines(keepends=True):
            if line.startswith(prefix):
                answers.append(_parse(line[len(prefix):]))
            elif MARKER not in line:
                kept.append(line)
        output.text = "".join(kept)
    cell.outputs = [o for o in cell.outputs if o.get("output_type") != "stream" or o.text]
    if len(answers) > 1:
        return None, f"{IMITATED}: the test cell printed {len(answers)} answer lines"
    return (answers[0] if answers else None), None


def _parse(text):
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def cell_error(cell):
    """The first error a cell raised, as 'Name: message', or None."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}".strip()
    return None


@dataclass
class ExecutionOutcome:
    """What came back from running one notebook; plain data."""

    answers: dict = field(default_factory=dict)  # exercise -> captured answer or None
    cell_errors: dict = field(default_factory=dict)  # exercise -> "Name: message" or None
    notebook: dict | None = None
    kernel_died: bool = False
    timed_out: bool = False
    memory_exceeded: bool = False
    error: str | None = None


def execute(notebook, *, workdir, capture_cells, cell_timeout, timeout, kernel_template=None,
            memory_mb=None, max_processes=None, confinement=None, kernel_env=None,
            rlimits=None):
    """Run `notebook` (a NotebookNode, changed in place) with `workdir` as the kernel's
    working directory; stop it after `timeout` seconds, killing everything it started.
    With a `kernel_template` (grader.run.warm_kernels), the kernel is forked from it, and with
    a `confinement` too, it runs in a private root of its own (grader.run.isolation); with
    `memory_mb` and `max_processes`, it runs in a cgroup of its own (grader.run.cgroups).
    `kernel_env` adds variables to the kernel's environment; a warm kernel applies
    `rlimits` (grader.run.warm_kernels.RLimits) to itself."""
    outcome = ExecutionOutcome()

    def capture(exercise, answer, error):
        outcome.answers[exercise] = answer
        outcome.cell_errors[exercise] = error

    executor = CaptureExecute(timeout=cell_timeout, capture_cells=capture_cells,
                              kernel_name="python3", on_capture=capture, kernel_env=kernel_env)
    cgroup = _cgroup(memory_mb, max_processes)
    watchdog = KernelWatchdog(executor, timeout, cgroup)
    executor.on_kernel_started = watchdog.start
    try:
        setup = KernelSetup(confinement=confinement, rlimits=rlimits,
                            cgroup_procs=cgroup.procs_files() if cgroup else ())
        manager = warm_kernel_manager(kernel_template, setup) if kernel_template else None
        executor.preprocess(notebook, {"metadata": {"path": str(workdir)}}, km=manager)
    except DeadKernelError as error:
        outcome.kernel_died = not watchdog.fired
        outcome.error = None if watchdog.fired else f"the kernel stopped: {error}".strip()
    except Exception as error:
        reason = isolation.failure(error)
        if not reason:
            raise
        outcome.error = f"the sandbox could not be set up for this submission ({reason})"
    finally:
        watchdog.stop()
    outcome.timed_out = watchdog.fired
    outcome.memory_exceeded = watchdog.memory_exceeded
    outcome.notebook, _ = LimitOutput().preprocess(notebook, {})
    return outcome


def _cgroup(memory_mb, max_processes):
    if memory_mb is None or cgroups.unavailable_reason():
        return None
    return cgroups.KernelCgroup(memory_mb=memory_mb, max_processes=max_processes)


class KernelWatchdog:
    """Kills the kernel and everything it started once time is up, and at the end.

    The kernel runs in a session of its own, and processes a student starts from it may
    outlive it, so its process tree is watched while it runs and all of it is killed; with
    a cgroup, everything in the group is killed too, double-forked daemons included.
    """

    POLL_SECONDS = 0.2

    def __init__(self, executor, timeout, cgroup=None):
        self.executor = executor
        self.deadline = time.monotonic() + timeout
        self.cgroup = cgroup
        self.fired = False
        self.memory_exceeded = False
        self.processes = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self):
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
            self._look()
            if time.monotonic() > self.deadline:
                self.fired = True
                self.kill_all()
                return

    def _look(self):
        for root in list(self.processes.values()):
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in root.children(recursive=True):
                    self._remember(child)

    def _remember(self, process):
        # Keyed by pid and start time, so a reused pid is never mistaken for ours.
        with contextlib.suppress(psutil.NoSuchProcess):
            self.processes[(process.pid, process.create_time())] = process

    def kill_all(self):
        self._look()
        alive = []
        for process in list(self.processes.values()):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
                alive.append(process)
        psutil.wait_procs(alive, timeout=5)
