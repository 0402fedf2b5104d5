"""Where submissions are graded: a Dask cluster, remote or embedded on this machine.

    coordinating process                          Dask workers (here or on other machines)
    intake, the secret, the journal,    --task-->  runner.run(task, support files): a
    the gradebook, the class files      <--data--  sandbox, a warm kernel, a RunOutcome back

Dask only distributes: what runs a submission is the Runner the coordinator chose
(grader.run.runner), sent with each task. A task may carry a finish request (the
publishing stage's, which this module never imports): the worker then reads and prepares
the notebook first, and judges and publishes the run after (grader.publish.on_worker).

With a scheduler address the batch runs on that cluster; without, on a LocalCluster of
worker processes started here for the batch: the same tasks, the same code either way.

A worker that dies (killed, out of memory, its machine lost) takes the submission it was
grading with it; the coordinator submits it again, to go to another worker. A submission
that two workers died grading is not tried a third time: it becomes that student's error.
One that only waited on a dying worker is not to blame: it is submitted again.

Every worker process has a memory limit (`worker_memory_bytes`): a kernel's frames are
capped (grader.run.kernel_client) and its outputs budgeted, so an honest grading stays far
below it; a kernel that still floods the worker (a multipart message of many capped
frames) gets it restarted by its nanny, and the submission becomes that student's row,
like any worker death.
"""

import contextlib
import dataclasses
import gc
import logging
import signal
import threading
import time
import uuid

import dask
from distributed import Client, WorkerPlugin, as_completed, get_worker
from distributed.scheduler import KilledWorker

import grader
from grader.errors import GraderError, short_error
from grader.records import RunEnd, RunOutcome
from grader.run import cgroups, local_cluster
from grader.run.kernel_client import QUEUED_MESSAGES, WATCHED_CHANNELS, max_frame_bytes
from grader.run.support_files import SupportFilesResult, as_result  # noqa: F401 (its old home)
from grader.run.unfinished_runs import FINISHED, STARTED, UnfinishedRuns
from grader.run.unfinished_runs import report as report_run
from grader.settings import ATTEMPTS, CONNECT_SECONDS, FATAL_UNFINISHED_RUNS
from grader.stage_clock import StageClock

# Dask blames a worker's death on every task assigned to it, started or not, and tries each
# again until the count passes its `allowed-failures`. The grader sets that to 0 on the
# scheduler and decides itself, from the starts and ends the workers report: a submission
# that two workers died grading is not tried a third time; one that only waited on a dying
# worker is submitted again, up to ATTEMPTS times in all (grader.settings).
ALLOWED_FAILURES = 0
WORKER_DIED_TWICE = "the grading worker died twice while grading this submission"
WORKERS_KEPT_DYING = (f"Dask workers died {ATTEMPTS} times while this submission waited "
                      "to be graded")
# A worker process's own memory: Python, Dask, nbclient and a submission's notebook (it
# imports no TensorFlow: its kernel template does). Measured: ~150 MB grading C2_W2.
WORKER_BASE_BYTES = 512 * 2**20
LOOSE_MEMORY_LIMIT = 1.5  # times the limit grading needs: a worker's more is warned of
DECODED_PER_BYTE = 8  # what a frame of JSON (a list of small numbers) may take decoded
# How often a batch's end looks whether its stopped workers have ended (a wait of 0.2-0.4 s).
STOP_POLL_SECONDS = 0.02

log = logging.getLogger(__name__)


class ClusterError(GraderError, RuntimeError):
    """The Dask cluster cannot grade: unreachable scheduler, no workers, wrong set-up."""


def worker_memory_bytes(limits):
    """A worker process's memory limit, for submissions graded under `limits`
    (grader.settings.Limits): its own memory, what its kernel's sockets may hold (each
    watched channel and the heartbeat: the messages queued, one being received, one being
    read, each a capped frame), the message being read once decoded, and a few copies of
    the output budget (the notebook, the outcome pickled for the coordinator)."""
    frame = max_frame_bytes(limits.output_bytes)
    sockets = (len(WATCHED_CHANNELS) + 1) * (QUEUED_MESSAGES + 2) * frame
    return WORKER_BASE_BYTES + sockets + DECODED_PER_BYTE * frame + 4 * limits.output_bytes


def memory_limit_warning(client, limit):
    """A warning when workers of the cluster may use much more memory than `limit` bytes
    (`dask worker` started without --memory-limit gets a share of its machine's), else
    None: a kernel flooding such a worker takes more of its machine before its nanny
    restarts it."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    loose = sorted(address for address, info in workers.items()
                   if not info.get("memory_limit")
                   or info["memory_limit"] > LOOSE_MEMORY_LIMIT * limit)
    if not loose:
        return None
    megabytes = -(-limit // 2**20)
    return (f"{len(loose)} Dask worker(s) may use more than {megabytes} MB, what grading "
            f"needs ({', '.join(loose[:5])}{' ...' if len(loose) > 5 else ''}): start them"
            f" with `dask worker ... --memory-limit {megabytes}MiB` and memory pausing and "
            "spilling off (docs/cluster.md#memory)")


@contextlib.contextmanager
def connect(*, scheduler=None, workers=1, timeout=CONNECT_SECONDS, memory_limit=None,
            early=None):
    """A Dask client: of the scheduler at `scheduler`, or of a cluster of `workers`
    processes started here, each limited to `memory_limit` bytes (None: Dask's share of
    the machine's), and stopped on leaving; `early` (local_cluster.StartedSoon), when
    given, is that cluster already on its way."""
    if scheduler:
        with _remote_client(scheduler, timeout) as client:
            previous = _checked(client, timeout)
            try:
                yield client
            finally:  # a shared scheduler serves others after this batch: as it was
                with contextlib.suppress(Exception):
                    client.run_on_scheduler(_set_allowed_failures, previous)
        return
    try:
        # Read by each nanny as it starts, and kept for the workers it starts again.
        with (dask.config.set(local_cluster.CONFIG),
              _local_cluster(workers, memory_limit, early) as local,
              Client(local) as client):
            _checked(client, timeout)
            try:
                yield client
            finally:
                _stop_workers(local, timeout)
    finally:
        # A worker killed while grading left its kernel's cgroup behind: its workers gone,
        # the batch removes what they left (a batch killed itself: the next one, as it starts).
        cgroups.remove_stale()


def _local_cluster(workers, memory_limit, early=None):
    """A LocalCluster of `workers` processes (`early`'s, when it has one), or ClusterError
    saying why it did not start (a machine out of processes or memory: Dask's own words,
    its traceback in the log)."""
    try:
        started = early.take(workers, memory_limit) if early is not None else None
        return started or local_cluster.start(workers, memory_limit)
    except Exception as error:
        log.info("the local Dask cluster did not start", exc_info=True)
        raise ClusterError(f"the grader's local Dask workers did not start ({short_error(error)})"
                           "; see grader.log, and check the machine's free memory and process"
                           " limit (ulimit -u)") from None


def _stop_workers(local, timeout):
    """Stop the workers, and wait for their processes to end, while the scheduler still
    listens: closed with it, a worker's heartbeat in flight meets a closed stream, and its
    traceback (`Stream is closed`, CommClosedError) reaches the terminal. Forgotten by the
    scheduler is not enough: a worker's last heartbeat may still be on its way. The cluster
    drops a worker once its nanny has seen the process end; then the client and the
    scheduler close."""
    local.scale(0)
    deadline = time.monotonic() + timeout
    while local.workers and time.monotonic() < deadline:
        time.sleep(STOP_POLL_SECONDS)


@contextlib.contextmanager
def _remote_client(scheduler, timeout):
    client, error = new_client(lambda: Client(scheduler, timeout=timeout),
                               (OSError, ValueError, TypeError))  # TypeError: tls://, no settings
    if client is None:
        if scheduler.startswith("tls://"):
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {error}; set"
                               " Dask's TLS settings (docs/cluster.md)")
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {error}")
    with client:
        yield client


def new_client(make, errors):
    """(the Client `make()` made, None), or (None, the text of the exception of `errors` it
    raised) once the Client it left half made is closed. Left to the garbage collector,
    that Client's __del__ closes its loop runner under the lock every loop runner shares,
    wherever the collector happens to run: inside the next Client's start, which holds that
    lock, it waits on itself forever (distributed 2026.8; a test hung so, making Clients
    after a refused one). Collected here, once the exception and its traceback, which
    hold it, are let go."""
    try:
        return make(), None
    except errors as error:
        text = str(error)
    gc.collect()
    return None, text


def _checked(client, timeout):
    """Check that the cluster has a worker, and set its retries as grading needs; return
    the scheduler's setting before."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise ClusterError(f"no Dask worker joined the scheduler at {client.scheduler.address}"
                           f" within {timeout} s") from None
    threaded = {address: count for address, count in client.nthreads().items() if count > 1}
    if threaded:
        # Each worker process keeps one warm kernel template, which serves one task at a time.
        raise ClusterError("every Dask worker must run one thread (dask worker --nthreads 1);"
                           f" these run more: {threaded}")
    try:
        return client.run_on_scheduler(_set_allowed_failures, ALLOWED_FAILURES)
    except ImportError as error:
        raise ClusterError(_cannot_run_the_grader("the Dask scheduler", error)) from None


def _cannot_run_the_grader(who, error):
    # The scheduler unpickles the tasks, the workers run them: both need the grader.
    return (f"{who} cannot run the grader ({error}); start the scheduler and every worker "
            "in an environment where the grader is installed (`make setup`, or `pip install`"
            " of this repository), the same version as here")


def _set_allowed_failures(allowed, dask_scheduler=None):
    # The scheduler reads this setting when a worker dies, so changing it applies at once
    # (a remote scheduler need not have been started with it).
    previous = dask_scheduler.allowed_failures
    dask_scheduler.allowed_failures = allowed
    return previous


def run_tasks(client, tasks, *, runner, support_files, on_outcome, clock=None):
    """Run `runner.run(task, support_files)` on the cluster, its workers prepared for
    `runner` (prepare_workers), for every task (a
    grader.run.runner.GradingTask) and call `on_outcome(task, outcome)` here as each
    finishes. `runner` (a grader.run.runner.Runner, pickled with each task) returns a
    RunOutcome; a failure (a bug of ours, a worker dying twice) becomes a failed
    RunOutcome, never an exception. `clock` (grader.stage_clock.StageClock) times the
    waits and the transfers."""
    clock = clock or StageClock()
    scheduler = client.scheduler.address
    support = SupportFilesResult(client, support_files)
    # One task group per batch, ("grade-1a2b3c4d", student id, attempt), as Dask shows it:
    # the batch's keys differ from any other batch's on a shared scheduler.
    batch = f"grade-{uuid.uuid4().hex[:8]}"
    runs = UnfinishedRuns(client, topic=f"{batch}-runs")
    waiting = iter(tasks)  # made one at a time, as the cluster can take them
    running = as_completed()
    submitted = {}  # key: (task, attempt)

    def submit(task, attempt=1):
        with clock.stage("dask submit"):
            future = client.submit(_started_then, runs.topic, runner, task,
                                   support.future(), pure=False,
                                   key=(batch, task.student_id, attempt))
        submitted[future.key] = task, attempt
        running.add(future)

    threads = _Threads(client)

    def submit_more():
        # No more submissions in the cluster than it has threads, so that few wait on a
        # worker that may die.
        while running.count() < threads.count():
            task = next(waiting, None)
            if task is None:
                return
            submit(task)

    with _counting(runs), _cancelled_if_stopped(client, running), support:
        submit_more()
        for future in _waited(running, clock):
            if client.status != "running":
                # Dask cancels every future when the client loses its scheduler. Their error
                # rows would replace good grades in the gradebook: stop before anything is
                # written, and let the instructor grade the batch again.
                raise ClusterError(f"lost the Dask scheduler at {scheduler} in "
                                   "the middle of the batch; nothing was written: grade the "
                                   "batch again")
            task, attempt = submitted.pop(future.key)
            with clock.stage("result transfer"):
                outcome = _outcome(future, task, runs)
            if outcome is _WORKER_DIED and attempt < ATTEMPTS:
                submit(task, attempt + 1)
                continue
            submit_more()  # before the verdicts, so that the worker is not left idle meanwhile
            if outcome is _WORKER_DIED:
                outcome = _failed(task, RunEnd.WORKER_DIED, WORKERS_KEPT_DYING)
            on_outcome(task, outcome)


class _Threads:
    """The cluster's threads, asked of the scheduler at most every THREADS_SECONDS (a
    question per result was a round trip per student)."""

    def __init__(self, client):
        self.client, self._count, self._asked = client, 1, -THREADS_SECONDS

    def count(self):
        if time.monotonic() - self._asked >= THREADS_SECONDS:
            self._count = max(1, sum(self.client.nthreads().values()))
            self._asked = time.monotonic()
        return self._count


THREADS_SECONDS = 1.0


def _waited(running, clock):
    """The futures of `running` (as_completed) as they finish, each wait timed."""
    finished = iter(running)
    while True:
        with clock.stage("waiting for workers") as wait:
            future = next(finished, None)
            wait.count = int(future is not None)  # the last wait, for the end, is no result's
        if future is None:
            return
        yield future


@contextlib.contextmanager
def _cancelled_if_stopped(client, running):
    """Cancel the submissions still in the cluster when the batch stops early (Ctrl-C):
    released before the workers close, no task is lost with them, nor recomputed."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(list(running.futures), force=True)
        raise


@contextlib.contextmanager
def _counting(runs):
    """`runs` (UnfinishedRuns) counted on the scheduler from before the first task until
    the batch leaves, however it leaves."""
    try:
        runs.begin()
    except ImportError as error:
        raise ClusterError(_cannot_run_the_grader("the Dask scheduler", error)) from None
    try:
        yield
    finally:
        runs.end()


def _started_then(topic, runner, task, support):
    """Runs on the worker: run the task, and report the start and the end."""
    worker = get_worker()
    clock = StageClock()
    with clock.stage("dask task reports"):
        report_run(worker, topic, task.student_id, STARTED)
    outcome = _run_and_finish(runner, task, support, clock)
    with clock.stage("dask task reports", count=0):
        report_run(worker, topic, task.student_id, FINISHED)
    return _with_stages(outcome, clock)


def _run_and_finish(runner, task, support, clock):
    """The task's outcome: run by `runner`, and when the task carries a finish request
    (grader.publish.on_worker, which this stage never imports), its notebook read and
    prepared here first if it came as the student's file, and the run judged and published
    here after. The runner never sees the request (the grading's secret is in it)."""
    request = getattr(task, "finish", None)
    if request is None:
        return runner.run(task, support)
    task = dataclasses.replace(task, finish=None)
    if task.notebook is None:  # sent as the student's file
        task, request, row = request.prepared(task, clock)
        if row is not None:  # not gradable, or not preparable here: no run
            return row
    outcome = runner.run(task, support)
    if isinstance(outcome, RunOutcome):
        outcome = request.finish(task.student_id, outcome, clock)
    return outcome


def _with_stages(outcome, clock):
    """`outcome` with `clock`'s stages added to its own (the profile's; a runner that is
    not ours may return anything: it is left as it is)."""
    finished = not isinstance(outcome, RunOutcome)  # a FinishedRun holds its RunOutcome
    run = getattr(outcome, "outcome", None) if finished else outcome
    if not isinstance(run, RunOutcome):
        return outcome
    clock.merge(run.stages)
    run = dataclasses.replace(run, stages=clock.totals())
    return dataclasses.replace(outcome, outcome=run) if finished else run


def prepare_workers(client, runner, preload=()):
    """Set every worker of the cluster up for `runner`, and every worker that joins later:
    the same grader as here, the runner's code imported, and `runner.warm_up(preload)`
    started (a lab's kernel template: its imports go on while the batch starts).
    ClusterError when a worker cannot grade with this grader."""
    try:
        client.register_plugin(ReadyToGrade(runner, tuple(preload), grader.engine_version()))
    except OtherGrader as error:  # Dask re-raises the worker's own exception, unpickled
        raise ClusterError(str(error)) from None
    except Exception as error:  # e.g. a worker without the grader: an ImportError
        raise ClusterError(_cannot_run_the_grader("a Dask worker", error)) from None


class OtherGrader(ClusterError):
    """A worker runs another package version or grading ABI than the coordinator."""


class ReadyToGrade(WorkerPlugin):
    """Sets up every worker process, a replacement for one that died included: it refuses
    to grade with another package version or grading ABI than the coordinator's
    (grader.engine_version), imports the grading code and starts the runner's warm-up
    before the first submission arrives."""

    name = "grader-ready-to-grade"

    def __init__(self, runner, preload, version):
        self.runner, self.preload, self.version = runner, preload, version

    def setup(self, worker):
        if grader.engine_version() != self.version:
            raise OtherGrader(f"the Dask worker at {worker.address} runs another version of"
                              f" the grader ({grader.engine_version()}) than the coordinating"
                              f" machine ({self.version}): update its checkout and restart it")
        from grader.run.worker import note_worker_start  # its name; its start, for the profile
        note_worker_start(worker.name)
        _warm_up(self.runner, self.preload)
        _leave_interrupts_to_the_coordinator()
        _quiet_the_last_heartbeat(worker)
        # What the imports made lives as long as the process. Frozen, the collector never
        # walks it again, and the process exits at once instead of spending seconds
        # tearing it down, which kept a LocalCluster's close waiting (measured: 1-4 s).
        gc.freeze()


def _warm_up(runner, preload):
    # A warm-up that fails costs nothing but time: the first task starts it again and
    # reports why it failed as that submission's error.
    warm_up = getattr(runner, "warm_up", None)  # a runner of the Runner interface has one
    if warm_up is not None:
        try:
            warm_up(preload)
        except Exception:
            log.warning("the runner's warm-up failed on this worker", exc_info=True)


def _leave_interrupts_to_the_coordinator():
    # Ctrl-C reaches every process of the terminal's group, the workers LocalCluster started
    # included: the coordinator stops them, in order, without a traceback from each.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


LAST_HEARTBEAT = "Failed to communicate with scheduler during heartbeat."


class _LastHeartbeatOfALeavingWorker(logging.Filter):
    """Drops one record: a heartbeat that failed because its own worker is closing. A worker
    sets itself `closing`, then closes its connections to the scheduler; a heartbeat in
    flight at that moment meets the closed stream and Dask logs its traceback (CommClosedError,
    `Stream is closed`) to the terminal the workers share, after a batch that went well
    (CI saw it in one run of about ten). The same failure while the worker runs, a
    scheduler really lost, is kept."""

    def __init__(self, worker):
        super().__init__()
        self.worker = worker

    def filter(self, record):
        leaving = getattr(self.worker.status, "name", "") in LEAVING
        return not (leaving and record.getMessage() == LAST_HEARTBEAT)


LEAVING = frozenset({"closing", "closing_gracefully", "closed"})


def _quiet_the_last_heartbeat(worker):
    logger = logging.getLogger("distributed.worker")
    for old in [f for f in logger.filters if isinstance(f, _LastHeartbeatOfALeavingWorker)]:
        logger.removeFilter(old)  # a worker this process ran before
    logger.addFilter(_LastHeartbeatOfALeavingWorker(worker))


_WORKER_DIED = object()  # the outcome of a submission whose worker died before it finished


def _outcome(future, task, runs):
    """What `future` returned, or why it has nothing to return. `runs` (UnfinishedRuns)
    counts the times its submission started on a worker and did not finish there."""
    try:
        outcome = future.result()
    except KilledWorker:  # a worker it was assigned to, or its support files were, died
        if runs.count(task.student_id) >= FATAL_UNFINISHED_RUNS:
            return _failed(task, RunEnd.WORKER_DIED, WORKER_DIED_TWICE)
        return _WORKER_DIED
    except Exception as error:  # a bug of ours must not stop the batch
        return _failed(task, RunEnd.GRADING_FAILED, short_error(error))
    finally:
        future.release()  # the graded notebook need not stay in the worker's memory
    # A RunOutcome, or one finished on its worker (grader.publish.on_worker.FinishedRun).
    if not isinstance(getattr(outcome, "outcome", outcome), RunOutcome):
        return _failed(task, RunEnd.GRADING_FAILED, "the worker sent back no outcome")
    return outcome


def _failed(task, end, reason):
    # No exercise ran: the judge stage says so for each, from `end`.
    return RunOutcome({}, end, reason)
