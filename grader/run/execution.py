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
import time

import nbformat
from nbclient.exceptions import CellExecutionComplete, DeadKernelError
from nbclient.util import run_sync
from nbgrader.preprocessors import Execute, LimitOutput
from traitlets import Bool
from traitlets.config import Config

from grader import cells
from grader.errors import short_error
from grader.records import ExerciseRun, Failure, FailureKind, RunEnd, RunOutcome, unreached
from grader.run import captures, cgroups, isolation
from grader.run.budget import TimeBudget
from grader.run.forked_kernels import run_kernel_manager
from grader.run.kernel_client import CappedKernelClient, FrameWatch, max_frame_bytes
from grader.run.output_size import message_size
from grader.run.streams import merged_streams
from grader.run.warm_kernels import KernelSetup, RLimits
from grader.run.watchdog import KernelWatchdog
from grader.settings import KILL_GRACE_SECONDS, RECONNECT_SECONDS, RESPONSIVE_SECONDS
from grader.stage_clock import ProcessCPU, StageClock

TIMEOUT_ERROR = "CellTimeoutError"
# Kernel messages counted against the budget: those the notebook keeps, and widgets'.
COUNTED_MESSAGES = ("stream", "display_data", "execute_result", "error",
                    "update_display_data", "comm_open", "comm_msg")
# Comm messages (widgets) are counted, then dropped: a graded notebook keeps no widget
# state, and an Output widget's outputs join its cell's like any other.
DROPPED_MESSAGES = ("comm_open", "comm_msg", "comm_close")
NOT_RUN_NOTE = "[grader: this cell was not run: the time for this exercise was used up]\n"


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
    nbclient==0.11.0 (requirements.txt). Beside its public hooks and settings
    (on_notebook_start, on_cell_executed, timeout_func, raise_on_iopub_timeout,
    store_widget_state, preprocess_cell, process_message, execute_cell,
    async_start_new_kernel, async_start_new_kernel_client), it touches `nb` (a capture's
    cell appended while it runs), `code_cells_executed` (not counting the capture), `km`,
    `kc` and `resources` (the kernel, its client, the notebook's folder) and
    `_cleanup_kernel` (freeing a client nbclient leaves to the kernel's owner).
    tests/grader/test_nbclient_seam.py fails if any of those changes.
    """

    # A cell that ignores the interrupt must not end the run with nbclient's exception
    # (answers captured so far lost): the next cells time out until the watchdog fires.
    raise_on_iopub_timeout = Bool(False).tag(config=True)
    # Widget state (and its binary buffers) would be written into the notebook's metadata,
    # outside the output budget: a graded notebook holds only its cells' outputs.
    store_widget_state = Bool(False).tag(config=True)

    def __init__(self, *args, plan=None, code=None, budget, output_bytes, kernel_env=None,
                 responsive_seconds=RESPONSIVE_SECONDS, clock=None, kernel_template=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        # The profile's: where the seconds go, the kernel's CPU included (read from /proc).
        self.clock = clock or StageClock()
        self.kernel_cpu = ProcessCPU()
        self.kernel_template = kernel_template
        self.responsive_seconds = responsive_seconds
        self.plan, self.code, self.budget = plan, code, budget
        self.output_bytes = output_bytes
        self.kernel_env = kernel_env or {}
        self.on_kernel_started = self.on_kernel_stopping = lambda: None
        self.runs = {}  # exercise -> ExerciseRun
        self.cell_timeouts = self.cells_not_run = 0
        self.output_dropped = False
        self._output_used = 0
        self._next_timeout = None
        self.timeout_func = lambda cell: self._next_timeout
        self._segments = []
        self._known_ids = frozenset()
        self._capture = None  # the capture in progress
        self._answer_errors = {}  # exercise -> how its answer cell failed
        self._frame_watch = None  # the kernel's connections dropped for a frame over the cap

    def on_notebook_start(self, **kwargs):
        self.budget.restart()
        self.on_kernel_started()

    async def _async_cleanup_kernel(self):
        # Before nbclient stops the kernel it started: what the kernel started is seen (and
        # killed with it), even a process of its own session started in the last cell,
        # which the kernel's end would leave to init before the watchdog's next look.
        self.on_kernel_stopping()
        await super()._async_cleanup_kernel()

    _cleanup_kernel = run_sync(_async_cleanup_kernel)  # what nbconvert's preprocess calls

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
        template_cpu, entered = self._template_cpu(), time.monotonic()
        with self.clock.stage("fork + confinement") as stage:
            await super().async_start_new_kernel(**kwargs)
            self.kernel_cpu.watch(self.km.provisioner.process.pid)
            # The new kernel's CPU so far (its set-up: cgroup, private root, policy) and
            # the template's fork, but not the template's import if this kernel waited
            # for it: that is a stage of its own.
            stage.add(cpu=self.kernel_cpu() + self._template_cpu() - template_cpu)
            self._take_template_import(stage, template_cpu, entered)

    def _template_cpu(self):
        return self.kernel_template.cpu_seconds() if self.kernel_template else 0.0

    def _take_template_import(self, stage, cpu_before, entered):
        """The template's import as a stage of its own, and out of `stage` what of it
        this kernel waited for: the part after `cpu_before` (the template's CPU as the
        kernel was asked for, at time.monotonic() `entered`) and after `entered` (the
        template may have been ready long before, started as its worker was set up)."""
        started = self.kernel_template.take_startup() if self.kernel_template else None
        if started is not None:
            wall, cpu = started
            if wall or cpu:  # a batch's shared template: counted once, by the coordinator
                self.clock.add_stage("template import", wall=wall, cpu=cpu)
            waited = max(0.0, self.kernel_template.ready_at - entered)
            stage.add(wall=-waited, cpu=-max(0.0, cpu - cpu_before))

    start_new_kernel = run_sync(async_start_new_kernel)

    async def async_start_new_kernel_client(self):
        # Whoever made the kernel (a warm template or nbclient), its client is ours: no
        # frame above the cap is ever received (grader.run.kernel_client).
        self.km.client_factory = CappedKernelClient
        self.km.update_config(Config({"CappedKernelClient": {
            "max_frame_bytes": max_frame_bytes(self.output_bytes)}}))
        with self.clock.stage("kernel handshake", self.kernel_cpu):
            client = await super().async_start_new_kernel_client()
            self._frame_watch = FrameWatch(client)
        return client

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def preprocess(self, nb, resources=None, km=None):
        self._segments = exercise_segments(nb.cells, self._test_cells)
        # The grade ids a cell's stage may be named by (cell_stage): once per notebook.
        self._known_ids = frozenset({*self._test_cells, *self._test_cells.values()})
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
            with self.clock.stage(cell_stage(index, cell, self._known_ids), self.kernel_cpu):
                failure = self._run_cell(cell, resources, index, segment)
        if cells.grade_id(cell) in self._test_cells.values():  # an exercise's answer cell
            self._answer_errors[cells.grade_id(cell)] = failure  # the last copy counts
        if exercise:
            with self.clock.stage("capture", self.kernel_cpu):
                run = self._capture_exercise(exercise, segment, failure)
            self.runs[exercise] = dataclasses.replace(
                run, answer_cell_error=self._answer_errors.get(exercise))
            self._note_dropped_frames(cell)  # by the hidden test (student code it calls)
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
        self._note_dropped_frames(cell)
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
        if self._frame_watch is not None:  # its monitors first: they hold the context
            self._frame_watch.close()
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
        if msg_type in DROPPED_MESSAGES:
            return None
        try:
            return super().process_message(msg, cell, cell_index)
        except CellExecutionComplete:
            raise
        except Exception:  # a malformed message (a kernel can send anything): drop it
            cell.outputs.append(nbformat.v4.new_output(
                "stream", name="stderr", text="[grader: a malformed output was dropped]\n"))
            return None

    def _note_dropped_frames(self, cell):
        """When the kernel sent a frame over the cap while `cell` ran, its connection was
        dropped (that message, and what was sent meanwhile, lost): a message larger than
        the whole budget, which it spends as any other would; then connect again, and a
        kernel that does not answer is stopped."""
        dropped = self._frame_watch.dropped() if self._frame_watch else []
        if not dropped:
            return
        self._budget_spent(cell)
        if not run_sync(self._frame_watch.reconnect)(dropped, RECONNECT_SECONDS):
            raise KernelUnresponsive

    def _within_budget(self, msg, cell):
        """Count the message against the submission's output budget; False when over it."""
        size = message_size(msg, limit=self.output_bytes - self._output_used)
        if self._output_used + size <= self.output_bytes:
            self._output_used += size
            return True
        self._budget_spent(cell)
        return False

    def _budget_spent(self, cell):
        """Keep no more output; say so once, in the cell where it happened."""
        if not self.output_dropped:
            self.output_dropped = True
            self._output_used = self.output_bytes
            megabytes = self.output_bytes / 10**6
            cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=(
                f"\n[grader: this submission's output passed {megabytes:g} MB;"
                " the rest was not kept]\n")))


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


CELL_STAGE = "cell "  # how a cell's stage name starts: "cell 07 UNQ_C1"


def cell_stage(index, cell, known_ids):
    """The profile's name for the run of the notebook's cell `index`: with its grade id
    when that is one of `known_ids` (the lab's answer and test cells). A cell the student
    added may carry any metadata: a name of theirs (a megabyte, one per cell) would become
    a row of the batch's profile, kept for the whole class."""
    grade_id = cells.grade_id(cell)
    known = isinstance(grade_id, str) and grade_id in known_ids  # any JSON: a list too
    return f"{CELL_STAGE}{index:02d}{' ' + grade_id if known else ''}"


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


def execute(notebook, *, workdir, cell_timeout, timeout, output_bytes=4 * 10**6, plan=None,
            kernel_template=None, memory_mb=None, max_processes=None, confinement=None,
            kernel_env=None, rlimits=None, syscall_policy=False,
            grace=GracePeriods(), clock=None):
    """Run `notebook` (a NotebookNode, changed in place) with `workdir` as the kernel's
    working directory, capturing what `plan` (captures.CapturePlan) says; stop it after
    `timeout` seconds, killing everything it started. With a `kernel_template`
    (grader.run.warm_kernels), the kernel is forked from it, and with a `confinement` too,
    it runs in a private root of its own (grader.run.isolation); with `memory_mb` and
    `max_processes`, in a cgroup of its own (grader.run.cgroups). `kernel_env` adds
    variables to the kernel's environment; a warm kernel applies `rlimits`
    (grader.run.warm_kernels.RLimits) to itself, and with `syscall_policy`, puts itself
    under grader.run.syscalls' filter. The kernel is killed `grace.kill` seconds past
    `timeout` if it is still running. `clock` (grader.stage_clock.StageClock) times the
    stages. Returns a RunOutcome."""
    clock = clock or StageClock()
    exercises = len(plan.test_cells) if plan else 0
    with clock.stage("executor and cgroup"):
        executor = GradingExecute(
            plan=plan, code=captures.compile_capture(plan.source) if plan else None,
            budget=TimeBudget(timeout=timeout, cell_timeout=cell_timeout, exercises=exercises),
            output_bytes=output_bytes, kernel_name="python3", kernel_env=kernel_env,
            responsive_seconds=grace.responsive, timeout=int(cell_timeout), clock=clock,
            kernel_template=kernel_template)
        cgroup, rlimits = _cgroup(memory_mb, max_processes, rlimits)
        watchdog = KernelWatchdog(executor, timeout + grace.kill, cgroup)
        executor.on_kernel_started = watchdog.start
        executor.on_kernel_stopping = watchdog.look
    end, reason = RunEnd.FINISHED, ""
    try:
        setup = KernelSetup(confinement, rlimits, cgroup.procs_files() if cgroup else (),
                            syscall_policy=syscall_policy)
        with contextlib.ExitStack() as run:
            with clock.stage("executor and cgroup", count=0):
                manager = run.enter_context(run_kernel_manager(kernel_template, setup))
            executor.preprocess(notebook, {"metadata": {"path": str(workdir)}}, km=manager)
    except DeadKernelError:
        end = RunEnd.TIMED_OUT if watchdog.fired else RunEnd.KERNEL_DIED
    except KernelUnresponsive:
        end = RunEnd.TIMED_OUT
    except Exception as error:  # no kernel, a fault of ours, a kernel that broke nbclient
        end, reason = _failed_run(error, watchdog)
    finally:
        with clock.stage("kernel stop"):
            watchdog.stop()
            executor.release_kernel_client()
    if watchdog.fired:
        end = RunEnd.TIMED_OUT
    elif end is RunEnd.KERNEL_DIED and watchdog.memory_exceeded:
        end = RunEnd.MEMORY_EXCEEDED
    elif end is RunEnd.KERNEL_DIED and kernel_template and not _alive(kernel_template):
        end, reason = RunEnd.GRADING_FAILED, TEMPLATE_DIED  # its kernels die with it
    with clock.stage("output limits"):
        notebook, _ = LimitOutput().preprocess(notebook, {})
    runs = {exercise: _as_ended(executor.runs.get(exercise), end) or unreached(exercise, end)
            for exercise in (plan.test_cells.values() if plan else ())}
    return RunOutcome(exercises=runs, end=end, reason=reason, notebook=notebook,
                      cell_timeouts=executor.cell_timeouts,
                      cells_not_run=executor.cells_not_run,
                      output_dropped=executor.output_dropped)


# A kernel killed because its template died (killed by someone, the machine out of memory):
# ours, not the notebook's; the row is an error, graded again by the next run.
TEMPLATE_DIED = "the kernel template stopped while the notebook ran, taking its kernel"


def _alive(template):
    """Whether the kernel template's process runs: its Popen's, or a kept one's, poll."""
    process = template.process
    return process is not None and process.poll() is None


def _as_ended(run, end):
    """A capture that timed out in a run stopped at the time limit waited on a kernel stuck
    in an earlier cell (one that ignored its interrupt): the notebook ran out of time."""
    if (run is not None and end is RunEnd.TIMED_OUT and run.failure is not None
            and run.failure.kind is FailureKind.CELL_TIMED_OUT):
        return dataclasses.replace(run, failure=Failure(FailureKind.NOTEBOOK_TIMED_OUT))
    return run


def _failed_run(error, watchdog):
    if watchdog.fired:
        return RunEnd.TIMED_OUT, ""
    reason = isolation.failure(error)
    if reason:
        return RunEnd.SANDBOX_FAILED, f"the sandbox could not be set up ({reason})"
    return RunEnd.GRADING_FAILED, short_error(error)


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
