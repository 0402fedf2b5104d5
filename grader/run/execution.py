"""Run one prepared notebook in a kernel, and capture each exercise's answer as data.

This never judges. After each exercise's test cell (its public part: the hidden tests are
not in the notebook) the lab's capture code is sent to the kernel (grader.run.captures);
what it prints is taken apart here and never joins the notebook. Each exercise gets its
share of the time (grader.run.budget), the whole submission one output budget in bytes,
and answers captured before a later hang or crash are kept.
"""

import contextlib
import dataclasses
import os
import subprocess
import threading
import time

import nbformat
import psutil
from nbclient.exceptions import CellExecutionComplete, DeadKernelError
from nbclient.util import run_sync
from nbgrader.preprocessors import Execute, LimitOutput
from traitlets import Bool

from grader import cells
from grader.records import ExerciseRun, Failure, FailureKind, RunEnd, RunOutcome, unreached
from grader.run import captures, cgroups, isolation
from grader.run.budget import TimeBudget
from grader.run.forked_kernels import warm_kernel_manager
from grader.run.warm_kernels import KernelSetup, RLimits

TIMEOUT_ERROR = "CellTimeoutError"
# Kernel messages whose content is kept in the notebook, and so counted against the budget.
COUNTED_MESSAGES = ("stream", "display_data", "execute_result", "error",
                    "update_display_data", "comm_open", "comm_msg")
NOT_RUN_NOTE = "[grader: this cell was not run: the time for this exercise was used up]\n"
RESPONSIVE_SECONDS = 5  # after an interrupt, for the kernel to show it is listening again
KILL_GRACE_SECONDS = 10  # past the time limit, for a cell that ignores its interrupts


@dataclasses.dataclass(frozen=True)
class GracePeriods:
    """How long a kernel is waited for before it is given up (tests shorten them)."""

    responsive: float = RESPONSIVE_SECONDS
    kill: float = KILL_GRACE_SECONDS


class KernelUnresponsive(Exception):
    """The kernel ignored a cell's interrupt: it is stopped, as at the time limit."""


class GradingExecute(Execute):
    """nbgrader's Execute (timeouts that interrupt, errors that do not stop the run), with
    each exercise's capture after its test cell, time shared between the exercises, the
    cells the grader marks to skip left out, and one output budget for the submission.

    The only code of the grader that knows nbclient's internals, written against
    nbclient==0.11.0 (requirements.txt). Beside its public hooks (on_notebook_start,
    on_cell_executed, timeout_func, preprocess_cell, process_message, execute_cell,
    async_start_new_kernel), it touches `nb` (a capture's cell appended while it runs),
    `code_cells_executed` (not counting the capture), `kc` (asking the kernel whether it
    listens) and `_cleanup_kernel` (freeing a client nbclient leaves to the kernel's
    owner). tests/grader/test_nbclient_seam.py fails if any of those changes.
    """

    # A cell that ignores the interrupt must not end the run with nbclient's exception
    # (answers captured so far lost): the next cells time out until the watchdog fires.
    raise_on_iopub_timeout = Bool(False).tag(config=True)

    def __init__(self, *args, plan=None, code=None, budget, output_bytes, kernel_env=None,
                 responsive_seconds=RESPONSIVE_SECONDS, **kwargs):
        super().__init__(*args, **kwargs)
        self.responsive_seconds = responsive_seconds
        self.plan, self.code, self.budget = plan, code, budget
        self.output_bytes = output_bytes
        self.kernel_env = kernel_env or {}
        self.on_kernel_started = lambda: None
        self.runs = {}  # exercise -> ExerciseRun
        self.cell_timeouts = self.cells_not_run = 0
        self.output_dropped = False
        self._output_used = 0
        self._next_timeout = None
        self.timeout_func = lambda cell: self._next_timeout
        self._segments = []
        self._capture = None  # the capture in progress
        self._answer_errors = {}  # exercise -> how its answer cell failed

    def on_notebook_start(self, **kwargs):
        self.budget.restart()
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

    def preprocess(self, nb, resources=None, km=None):
        self._segments = exercise_segments(nb.cells, self._test_cells)
        return super().preprocess(nb, resources, km=km)

    @property
    def _test_cells(self):
        return self.plan.test_cells if self.plan else {}

    def preprocess_cell(self, cell, resources, index):
        if cells.skipped(cell):
            return cell, resources
        segment = self._segments[index]
        exercise = self._test_cells.get(cells.grade_id(cell))
        failure = None
        if cell.cell_type == "code" and cell.source.strip():
            failure = self._run_cell(cell, resources, index, segment)
        if cells.grade_id(cell) in self._test_cells.values():  # an exercise's answer cell
            self._answer_errors[cells.grade_id(cell)] = failure  # the last copy counts
        if exercise:
            run = self._capture_exercise(exercise, segment, failure)
            self.runs[exercise] = dataclasses.replace(
                run, answer_cell_error=self._answer_errors.get(exercise))
            if _timed_out(run.failure) and not self.responsive():
                raise KernelUnresponsive
        return cell, resources

    def _run_cell(self, cell, resources, index, segment):
        """Run one cell in the time its segment has left; how it failed, or None."""
        self._next_timeout = self.budget.cell_seconds(segment)
        if self._next_timeout is None:
            self.cells_not_run += 1
            cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=NOT_RUN_NOTE)]
            return Failure(FailureKind.OUT_OF_TIME)
        super().preprocess_cell(cell, resources, index)
        cell.outputs = merged_streams(cell.outputs)
        failure = first_error(cell)
        if _timed_out(failure):
            self.cell_timeouts += 1
            if not self.responsive():  # it ignored the interrupt: nothing more will run
                raise KernelUnresponsive
        return failure

    async def _async_responsive(self):
        """Whether the kernel answers a kernel_info request in time (a kernel still
        running the cell it was interrupted in cannot)."""
        msg_id = self.kc.kernel_info()
        deadline = time.monotonic() + self.responsive_seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.kc.shell_channel.get_msg(timeout=left)
            except Exception:  # Empty: no answer in time
                return False
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return True
        return False

    responsive = run_sync(_async_responsive)

    # ------------------------------------------------------------------ the capture

    def _capture_exercise(self, exercise, segment, test_cell_error):
        source, nonce = captures.request_code(self.code, exercise,
                                              self.plan.inputs.get(exercise))
        capture = _Capture(len(self.nb.cells))
        self.nb.cells.append(nbformat.v4.new_code_cell(source))  # never part of the result
        self._capture, self._next_timeout = capture, self.budget.capture_seconds(segment)
        try:
            self.execute_cell(self.nb.cells[capture.index], capture.index, store_history=False)
        finally:
            self.nb.cells.pop()
            self._capture = None
            self.code_cells_executed -= 1  # not one of the notebook's cells
        answer, failure = captures.read_answer("".join(capture.text), nonce)
        if answer is None and failure is None:
            failure = capture.failure()
        return ExerciseRun(exercise, answer, failure, test_cell_error)

    def release_kernel_client(self):
        """Stop the kernel client's channels and free its ZMQ context. nbclient leaves a
        kernel manager it was handed (a warm kernel's) to its owner: without this, the
        heartbeat thread and the context's two threads of every submission would live as
        long as the worker. The kernel is dead by now (the watchdog), so nothing waits."""
        if self.km is None:
            return
        with contextlib.suppress(Exception):  # a kernel that broke the client: nothing to free
            self._cleanup_kernel()

    def on_cell_executed(self, **kwargs):
        capture = self._capture
        if capture is not None and kwargs.get("cell_index") == capture.index:
            capture.reply = kwargs.get("execute_reply")
            return
        super().on_cell_executed(**kwargs)

    # ------------------------------------------------------------------ what comes back

    def process_message(self, msg, cell, cell_index):
        msg_type = msg.get("msg_type")
        capture = self._capture
        if capture is not None and cell_index == capture.index and msg_type != "status":
            capture.take(msg)
            return None
        if msg_type in COUNTED_MESSAGES and not self._within_budget(msg, cell):
            return None
        try:
            return super().process_message(msg, cell, cell_index)
        except CellExecutionComplete:
            raise
        except Exception:  # a malformed message (a kernel can send anything): drop it
            cell.outputs.append(nbformat.v4.new_output(
                "stream", name="stderr", text="[grader: a malformed output was dropped]\n"))
            return None

    def _within_budget(self, msg, cell):
        """Count the message against the submission's output budget; False when over it."""
        size = message_size(msg)
        if self._output_used + size <= self.output_bytes:
            self._output_used += size
            return True
        if not self.output_dropped:  # say so once, in the cell where it happened
            self.output_dropped = True
            self._output_used = self.output_bytes
            megabytes = self.output_bytes / 10**6
            cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=(
                f"\n[grader: this submission's output passed {megabytes:g} MB;"
                " the rest was not kept]\n")))
        return False


@dataclasses.dataclass
class _Capture:
    index: int  # where its temporary cell sits while it runs
    text: list = dataclasses.field(default_factory=list)
    size: int = 0
    error: Failure | None = None
    reply: dict | None = None

    def take(self, msg):
        content = msg.get("content") or {}
        if msg.get("msg_type") == "error" and self.error is None:
            self.error = Failure.raised(content.get("ename", ""), content.get("evalue", ""))
        elif msg.get("msg_type") == "stream" and content.get("name") == "stdout":
            text = content.get("text")
            if isinstance(text, str) and self.size + len(text) <= captures.MAX_CAPTURE_BYTES:
                self.text.append(text)
                self.size += len(text)

    def failure(self):
        """Why the capture gave no answer, from its reply and the errors it showed."""
        content = (self.reply or {}).get("content") or {}
        if content.get("ename") == TIMEOUT_ERROR:
            return Failure(FailureKind.CELL_TIMED_OUT)
        if self.error is not None:
            return self.error
        if content.get("status") == "error":
            return Failure.raised(content.get("ename", ""), content.get("evalue", ""))
        return Failure(FailureKind.NO_ANSWER)


def _timed_out(failure):
    return failure is not None and failure.kind is FailureKind.CELL_TIMED_OUT


def exercise_segments(notebook_cells, test_cells):
    """Each cell's segment: the number of exercises whose test cell comes before it (so
    the cells up to and including the first test cell are segment 0)."""
    segments, segment = [], 0
    for cell in notebook_cells:
        segments.append(segment)
        if cells.grade_id(cell) in test_cells:
            segment += 1
    return segments


def first_error(cell):
    """How a cell failed, from its outputs: timed out (its interrupt shows as an error
    too), else its first error, or None."""
    errors = [output for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    if any(output.get("ename") == TIMEOUT_ERROR for output in errors):
        return Failure(FailureKind.CELL_TIMED_OUT)
    if errors:
        return Failure.raised(errors[0].get("ename", ""), errors[0].get("evalue", ""))
    return None


def message_size(msg):
    content = msg.get("content")
    if not isinstance(content, dict):
        return 0
    size = len(str(content.get("text", "")))
    for key in ("data", "traceback"):
        value = content.get(key)
        if isinstance(value, dict):
            size += sum(len(str(item)) for item in value.values())
        elif value is not None:
            size += len(str(value))
    return size + len(str(content.get("evalue", "")))


def execute(notebook, *, workdir, cell_timeout, timeout, output_bytes=4 * 10**6, plan=None,
            kernel_template=None, memory_mb=None, max_processes=None, confinement=None,
            kernel_env=None, rlimits=None, syscall_policy=False,
            grace=GracePeriods()):
    """Run `notebook` (a NotebookNode, changed in place) with `workdir` as the kernel's
    working directory, capturing what `plan` (captures.CapturePlan) says; stop it after
    `timeout` seconds, killing everything it started. With a `kernel_template`
    (grader.run.warm_kernels), the kernel is forked from it, and with a `confinement` too,
    it runs in a private root of its own (grader.run.isolation); with `memory_mb` and
    `max_processes`, in a cgroup of its own (grader.run.cgroups). `kernel_env` adds
    variables to the kernel's environment; a warm kernel applies `rlimits`
    (grader.run.warm_kernels.RLimits) to itself, and with `syscall_policy`, puts itself
    under grader.run.syscalls' filter. The kernel is killed `grace.kill` seconds past
    `timeout` if it is still running. Returns a RunOutcome."""
    exercises = len(plan.test_cells) if plan else 0
    executor = GradingExecute(
        plan=plan, code=captures.compile_capture(plan.source) if plan else None,
        budget=TimeBudget(timeout=timeout, cell_timeout=cell_timeout, exercises=exercises),
        output_bytes=output_bytes, kernel_name="python3", kernel_env=kernel_env,
        responsive_seconds=grace.responsive, timeout=int(cell_timeout))
    cgroup, rlimits = _cgroup(memory_mb, max_processes, rlimits)
    watchdog = KernelWatchdog(executor, timeout + grace.kill, cgroup)
    executor.on_kernel_started = watchdog.start
    end, reason = RunEnd.FINISHED, ""
    try:
        setup = KernelSetup(confinement=confinement, rlimits=rlimits,
                            cgroup_procs=cgroup.procs_files() if cgroup else (),
                            syscall_policy=syscall_policy)
        manager = warm_kernel_manager(kernel_template, setup) if kernel_template else None
        executor.preprocess(notebook, {"metadata": {"path": str(workdir)}}, km=manager)
    except DeadKernelError:
        end = RunEnd.TIMED_OUT if watchdog.fired else RunEnd.KERNEL_DIED
    except KernelUnresponsive:
        end = RunEnd.TIMED_OUT
    except Exception as error:  # no kernel, a fault of ours, a kernel that broke nbclient
        end, reason = _failed_run(error, watchdog)
    finally:
        watchdog.stop()
        executor.release_kernel_client()
    if watchdog.fired:
        end = RunEnd.TIMED_OUT
    elif end is RunEnd.KERNEL_DIED and watchdog.memory_exceeded:
        end = RunEnd.MEMORY_EXCEEDED
    notebook, _ = LimitOutput().preprocess(notebook, {})
    runs = {exercise: _as_ended(executor.runs.get(exercise), end) or unreached(exercise, end)
            for exercise in (plan.test_cells.values() if plan else ())}
    return RunOutcome(exercises=runs, end=end, reason=reason, notebook=notebook,
                      cell_timeouts=executor.cell_timeouts,
                      cells_not_run=executor.cells_not_run,
                      output_dropped=executor.output_dropped)




def _as_ended(run, end):
    """A capture that timed out in a run stopped at the time limit waited on a kernel stuck
    in an earlier cell (one that ignored its interrupt): the notebook ran out of time."""
    if (run is not None and end is RunEnd.TIMED_OUT and run.failure is not None
            and run.failure.kind is FailureKind.CELL_TIMED_OUT):
        return dataclasses.replace(run, failure=Failure(FailureKind.NOTEBOOK_TIMED_OUT))
    return run


def merged_streams(outputs):
    """`outputs` with each run of stream outputs of one name merged into one, and what a
    carriage return overwrote left out, as a notebook front end shows them. A kernel splits
    printing into messages as its flushes fall: merged, one submission gives the same graded
    notebook and feedback on every run. (Not nbclient's `coalesce_streams`: its regular
    expression takes time quadratic in a line's length, minutes for one long print.) A
    stream whose text is not a string (a kernel can send anything) is left as it is."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (previous is not None and _stream_text(output) is not None
                and _stream_text(previous) is not None
                and previous.get("name") == output.get("name")):
            previous["text"] = previous["text"] + output["text"]
        else:
            merged.append(output)
    for output in merged:
        if "\r" in (_stream_text(output) or ""):
            output["text"] = "\n".join(_overwritten(line)
                                       for line in output["text"].split("\n"))
    return merged


def _stream_text(output):
    """A stream output's text, None for any other output or text that is not a string."""
    if isinstance(output, dict) and output.get("output_type") == "stream":
        text = output.get("text", "")
        return text if isinstance(text, str) else None
    return None


def _overwritten(line):
    """What a terminal shows of `line` after its carriage returns: the text after the
    last one that something follows (in linear time)."""
    body = line.rstrip("\r")
    return body.rpartition("\r")[2] + line[len(body):]


def _failed_run(error, watchdog):
    if watchdog.fired:
        return RunEnd.TIMED_OUT, ""
    reason = isolation.failure(error)
    if reason:
        return RunEnd.SANDBOX_FAILED, f"the sandbox could not be set up ({reason})"
    return RunEnd.GRADING_FAILED, short_error(error)


def short_error(error, limit=300):
    """An exception of ours in a few words, for an instructor."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _cgroup(memory_mb, max_processes, rlimits):
    """The kernel's cgroup and its rlimits. A cgroup that cannot be made is said once per
    process (grader.run.cgroups) and never fails the submission: its memory cap becomes a
    per-process one, as where there are no cgroups (grader.run.sandbox.fallback_rlimits)."""
    if memory_mb is None:
        return None, rlimits
    cgroup = cgroups.kernel_cgroup(memory_mb=memory_mb, max_processes=max_processes)
    if cgroup is None:
        rlimits = dataclasses.replace(rlimits or RLimits(), memory_mb=memory_mb)
    return cgroup, rlimits


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
