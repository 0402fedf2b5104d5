"""Where submissions are graded: a Dask cluster, remote or embedded on this machine.

    coordinating process                          Dask workers (here or on other machines)
    intake, prepare, verdicts, results  --task-->  grade(task, support files): sandbox,
    (the only writer of the gradebook)  <--dict--  warm kernel, plain outcome back

With a scheduler address the batch runs on that cluster; without, on a LocalCluster of
worker processes started here for the batch: the same tasks, the same code either way.

A worker that dies (killed, out of memory, its machine lost) takes the submission it was
grading with it; Dask runs that submission again on another worker. A submission that was
on two workers when they died is not tried a third time: it becomes that student's error.
"""

import contextlib
import gc
import importlib
import uuid

import dask
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from distributed.scheduler import KilledWorker

from grader.support_files import write_under

# Workers a submission may be on when they die before it counts as the cause: the first
# death is retried elsewhere, the second is final (Dask's default, 3, would let one
# submission take down four workers).
ALLOWED_FAILURES = 1
WORKER_DIED_TWICE = "the grading worker died twice while grading this submission"
CONNECT_SECONDS = 30  # to reach the scheduler, then again for a first worker to join
SUPPORT_FILES_KEY = "grader-support-files-{digest}"


class ClusterError(RuntimeError):
    """The Dask cluster cannot grade: unreachable scheduler, no workers, wrong set-up."""


@contextlib.contextmanager
def connect(*, scheduler=None, workers=1, timeout=CONNECT_SECONDS):
    """A Dask client: of the scheduler at `scheduler`, or of a cluster of `workers`
    processes started here and stopped on leaving."""
    if scheduler:
        with _remote_client(scheduler, timeout) as client:
            yield _checked(client, timeout)
        return
    # No dashboard; the scheduler's small HTTP server (health, metrics) still listens, on
    # a free loopback port rather than 8787, which another cluster here may hold.
    with (LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                       dashboard_address=None,
                       scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as local,
          Client(local) as client):
        yield _checked(client, timeout)


@contextlib.contextmanager
def _remote_client(scheduler, timeout):
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, ValueError) as error:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    with client:
        yield client


def _checked(client, timeout):
    """The client, once its cluster has a worker and retries as grading needs."""
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
        client.run_on_scheduler(_set_allowed_failures, ALLOWED_FAILURES)
    except ImportError as error:
        raise ClusterError(_cannot_run_the_grader("the Dask scheduler", error)) from None
    return client


def _cannot_run_the_grader(who, error):
    # The scheduler unpickles the tasks, the workers run them: both need the grader.
    return (f"{who} cannot run the grader ({error}); start the scheduler and every worker "
            "with this repository's virtualenv and the repository on PYTHONPATH")


def _set_allowed_failures(allowed, dask_scheduler=None):
    # The scheduler reads this setting when a worker dies, so changing it applies at once
    # (a remote scheduler need not have been started with it).
    dask_scheduler.allowed_failures = allowed


def run_tasks(client, tasks, *, grade, support_files, on_outcome):
    """Run `grade(task, support_files)` on the cluster for every task and call
    `on_outcome(task, outcome)` here as each finishes. `grade` returns a dict; a failure
    (a bug of ours, a worker dying twice) becomes {"error": why}, never an exception."""
    _prepare_workers(client, grade.__module__)
    scheduler = client.scheduler.address
    support = _send_support_files(client, support_files)
    waiting = list(reversed(tasks))
    running = as_completed()
    submitted = {}
    # One task group per batch, ("grade-1a2b3c4d", student id), as Dask shows it: the
    # batch's keys differ from any other batch's on a shared scheduler.
    batch = f"grade-{uuid.uuid4().hex[:8]}"

    def submit_more():
        # No more submissions in the cluster than it has threads: Dask counts a worker's
        # death against every task assigned to it, so a submission waiting on a worker
        # that dies must not be blamed for it.
        capacity = max(1, sum(client.nthreads().values()))
        while waiting and running.count() < capacity:
            task = waiting.pop()
            future = client.submit(grade, task, support, key=(batch, task.student_id),
                                   pure=False)
            submitted[future.key] = task
            running.add(future)

    submit_more()
    for future in running:
        if client.status != "running":
            # Dask cancels every future when the client loses its scheduler. Their error
            # rows would replace good grades in the gradebook: stop before anything is
            # written, and let the instructor grade the batch again.
            raise ClusterError(f"lost the Dask scheduler at {scheduler} in "
                               "the middle of the batch; nothing was written: grade the "
                               "batch again")
        submit_more()  # before the verdicts, so that the worker is not left idle meanwhile
        on_outcome(submitted.pop(future.key), _outcome(future))


def _prepare_workers(client, module):
    try:
        client.register_plugin(ReadyToGrade(module))
    except Exception as error:  # Dask re-raises a worker's failure as a plain Exception
        raise ClusterError(_cannot_run_the_grader("a Dask worker", error)) from None


class ReadyToGrade(WorkerPlugin):
    """Sets up every worker process, a replacement for one that died included: the support
    files go into the worker's own folder, and the grading code is imported before the
    first submission arrives."""

    name = "grader-ready-to-grade"

    def __init__(self, module):
        self.module = module

    def setup(self, worker):
        write_under(worker.local_directory)
        importlib.import_module(self.module)
        # What the imports made lives as long as the process. Frozen, the collector never
        # walks it again, and the process exits at once instead of spending seconds
        # tearing it down, which kept a LocalCluster's close waiting (measured: 1-4 s).
        gc.freeze()


def _send_support_files(client, support_files):
    """The support files as the result of a task, so that Dask can compute them again on
    another worker if every worker holding them dies (scattered data would be lost)."""
    # Sent once per batch on purpose: Dask's warning about a large graph does not apply.
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GiB"}):
        return client.submit(_as_result, support_files, pure=False,
                             key=SUPPORT_FILES_KEY.format(digest=support_files.digest))


def _as_result(value):
    return value


def _outcome(future):
    try:
        return future.result()
    except KilledWorker:
        return {"error": WORKER_DIED_TWICE}
    except Exception as error:  # a bug of ours must not stop the batch
        return {"error": f"grading failed: {type(error).__name__}: {error}"}
    finally:
        future.release()  # the graded notebook need not stay in the worker's memory
