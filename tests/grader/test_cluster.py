"""Grading on a Dask cluster started as an instructor starts one on several machines (here a
scheduler and two workers on loopback), and what happens when its workers die.

The tests grade a few of the corpus's submissions, not all: grading costs seconds each.
"""

import contextlib
import csv
import gc
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import corpus
import dask
import dying_grade
import psutil
import pytest
from distributed import Client
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from grader.cli import build_parser
from grader.labs.c2_w2 import LAB as lab
from grader.pipeline import autograde
from grader.publish import page_server
from grader.publish.journal import Journal
from grader.publish.page_process import PageProcess
from grader.records import RunEnd, RunOutcome
from grader.release_files import read_release_files
from grader.run import cluster, local_cluster, server_end, unfinished_runs, worker_server
from grader.run.runner import CannedRunner
from grader.run.worker import SandboxRunner
from grader.settings import Limits
from tools.loopback_cluster import loopback_cluster, tls_settings

START_SECONDS = 120  # for the scheduler and both workers on a busy 2-core machine
# One student per kind of outcome among those the cluster grades (the invalid one never
# leaves the coordinator).
SOME_STUDENTS = ["invalid-truncated", "ok-loop-softmax-input-model", "ok-test-cell-deleted",
                 "wrong-model-softmax-output", "wrong-softmax-raises",
                 "wrong-softmax-unnormalised"]
KERNEL_SECONDS = 60  # for the worker's kernel template to fork the submission's kernel


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory):
    """The address of a `dask scheduler` with two `dask worker`s on loopback."""
    with loopback_cluster(tmp_path_factory.mktemp("dask-cluster"), workers=2,
                          timeout=START_SECONDS) as address:
        yield address


def _subset(class_dir, destination, students):
    for student in students:
        shutil.copytree(class_dir / student, destination / student)
    return destination


def _rows(out):
    with (out / "grades.csv").open(newline="") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


def _golden(row, student):
    want = corpus.expected_grades()[student]
    keys = ("UNQ_C1", "UNQ_C2", "score", "status")
    return ([row[key] for key in keys] == [want[key] for key in keys]
            and want["detail_contains"] in row["detail"])


def _gradebook_scores(out):
    with (warnings.catch_warnings(),
          Gradebook(f"sqlite:///{out / 'gradebook.db'}", course_id=lab.course_id) as gradebook):
        warnings.simplefilter("ignore", category=SAWarning)
        return [(submission.student.id, submission.score)
                for submission in gradebook.assignment_submissions(lab.assignment)]


def test_the_cluster_gives_the_rows_of_grading_on_this_machine(dask_scheduler, class_dir,
                                                               graded, tmp_path):
    some = _subset(class_dir, tmp_path / "some", SOME_STUDENTS)
    result = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(some), "--out", str(tmp_path / "out"),
         "--cell-timeout", "10", "--scheduler", dask_scheduler],
        capture_output=True, text=True, cwd=lab.root, timeout=600)
    assert result.returncode == 0, result.stderr
    # The real count of the cluster's workers, not this machine's cores.
    assert f"on the Dask cluster at {dask_scheduler} (2 workers)" in result.stdout
    here, _ = graded  # the whole corpus, graded by worker processes on this machine
    assert _rows(tmp_path / "out") == {student: _rows(here)[student] for student in SOME_STUDENTS}
    with Client(dask_scheduler) as client:  # the batch ran there, on both workers
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert len(plugins) == 2
    assert all(cluster.ReadyToGrade.name in names for names in plugins.values())


class WorkerKiller(threading.Thread):
    """SIGKILLs the worker process that runs `student`'s submission, each time it runs it,
    up to `times` times, as a machine crash or the kernel's OOM killer would."""

    def __init__(self, scheduler, student, times):
        super().__init__(daemon=True)
        self.scheduler, self.student, self.times = scheduler, student, times
        self.killed = []  # pids of the worker processes killed
        self.left_behind = []  # what they had started: the kernel template, kernels
        self.done = threading.Event()

    def run(self):
        with Client(self.scheduler) as client:
            while len(self.killed) < self.times and not self.done.wait(0.1):
                pid = self._pid_running_it(client)
                if (pid and pid not in self.killed and self._kernel_started(pid)
                        and self._pid_running_it(client) == pid):  # the victim's kernel
                    self._kill(pid)

    def _pid_running_it(self, client):
        running = client.run(lambda dask_worker: (os.getpid(), [
            task.key for task in dask_worker.state.executing]), on_error="ignore")
        for pid, keys in running.values():
            if any(key[1] == self.student for key in keys if isinstance(key, tuple)):
                return pid
        return None

    def _kernel_started(self, pid):
        """Whether the worker's kernel template has forked a kernel: mid-grading."""
        deadline = time.monotonic() + KERNEL_SECONDS
        while time.monotonic() < deadline:
            try:
                if len(psutil.Process(pid).children(recursive=True)) >= 2:
                    return True
            except psutil.NoSuchProcess:
                return False
            time.sleep(0.05)
        return False

    def _kill(self, pid):
        worker = psutil.Process(pid)
        self.left_behind += worker.children(recursive=True)
        worker.send_signal(signal.SIGKILL)
        self.killed.append(pid)

    def stop(self):
        self.done.set()
        self.join(timeout=30)
        # A killed worker's kernel template sees its pipe close and exits; whatever it had
        # forked for the submission (a kernel, its children) is stopped here.
        for process in self.left_behind:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def _grade_while_killing(scheduler, class_dir, out, students, victim, times):
    """Grade `students` on the cluster from this process while the workers running
    `victim` are killed; return the student of every result reported, in order."""
    with Client(scheduler) as client:
        client.wait_for_workers(2, timeout=START_SECONDS)  # replacements of earlier tests
    reported = []
    killer = WorkerKiller(scheduler, victim, times)
    killer.start()
    try:
        autograde(submissions=_subset(class_dir, out.parent / "some", students),
                  out=out, scheduler=scheduler, limits=Limits(cell_timeout=10),
                  on_progress=lambda done, total, record: reported.append(
                      record.student_id))
    finally:
        killer.stop()
    assert len(killer.killed) == times, "the victim's workers were not killed: no test"
    return reported


def test_a_worker_killed_mid_batch_loses_no_submission_and_grades_none_twice(
        dask_scheduler, class_dir, tmp_path):
    students = ["ok-loop-softmax-input-model", "wrong-model-softmax-output",
                "wrong-softmax-unnormalised"]
    reported = _grade_while_killing(dask_scheduler, class_dir, tmp_path / "out", students,
                                    victim="wrong-model-softmax-output", times=1)
    assert sorted(reported) == students  # each reported once, the victim's after a retry
    rows = _rows(tmp_path / "out")
    assert sorted(rows) == students
    for student in students:
        assert _golden(rows[student], student), rows[student]
    assert sorted(_gradebook_scores(tmp_path / "out")) == [
        (student, float(rows[student]["score"])) for student in students]


def test_a_submission_that_kills_two_workers_is_an_error_not_a_third_try(
        dask_scheduler, class_dir, tmp_path):
    students = ["ok-stable-softmax-relu-function", "wrong-model-units",
                "wrong-softmax-sorted-output"]
    reported = _grade_while_killing(dask_scheduler, class_dir, tmp_path / "out", students,
                                    victim="wrong-model-units", times=2)
    assert sorted(reported) == students
    rows = _rows(tmp_path / "out")
    victim = rows.pop("wrong-model-units")
    assert (victim["status"], victim["score"]) == ("error", "0")
    assert victim["detail"] == f"Grading failed: {cluster.WORKER_DIED_TWICE}."
    for student, row in rows.items():
        assert _golden(row, student), row


def test_a_scheduler_lost_mid_batch_stops_it_and_a_rerun_finishes_it(class_dir, tmp_path):
    # One worker grades them in turn; the scheduler is killed once the first is saved. The
    # second (in id order) loops until its cell's time limit, so it is still being graded
    # then, whatever the first's publishing cost (the page renderer starts with it).
    students = ["ok-loop-softmax-input-model", "timeout-softmax-infinite-loop",
                "wrong-model-units", "wrong-softmax-raises"]
    limits = Limits(cell_timeout=30)
    with loopback_cluster(tmp_path / "cluster", workers=1, timeout=START_SECONDS) as address:
        with Client(address) as client:
            scheduler_pid = client.run_on_scheduler(os.getpid)

        def kill_the_scheduler(done, total, result):
            if done == 1:
                os.kill(scheduler_pid, signal.SIGKILL)

        with pytest.raises(cluster.ClusterError, match=f"lost the Dask scheduler at {address}"):
            autograde(submissions=_subset(class_dir, tmp_path / "some", students),
                      out=tmp_path / "out", scheduler=address, limits=limits,
                      on_progress=kill_the_scheduler)
    # What was graded before is kept (grades.csv says so too), and no row of error was
    # written for the submissions the lost scheduler cancelled.
    with Journal(tmp_path / "out") as journal:
        saved = [record.student_id for record in journal.records()]
    assert 1 <= len(saved) < len(students)
    rows = _rows(tmp_path / "out")
    assert sorted(rows) == sorted(saved)
    assert all(_golden(rows[student], student) for student in saved)
    # The rerun holds no one back on purpose: the endless loop may meet a shorter limit
    # (its row says "time limit" either way, and limits are not in the grading version).
    batch = autograde(submissions=tmp_path / "some", out=tmp_path / "out", workers=1,
                      limits=Limits(cell_timeout=5))
    assert sorted(batch.kept) == sorted(saved)
    assert len(batch.graded) == len(students) - len(saved)
    rows = _rows(tmp_path / "out")
    assert all(_golden(rows[student], student) for student in students)


def test_workers_here_and_a_scheduler_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["autograde", "class", "--out", "out", "--workers", "2",
                                   "--scheduler", "tcp://127.0.0.1:8786"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_workers_running_another_version_of_the_grader_are_refused(monkeypatch):
    # The coordinator's engine differs from its workers' (another checkout, another
    # commit): refused before any submission is sent, with a message.
    import grader

    monkeypatch.setattr(grader, "engine_version", lambda: "0.0.0+another")
    with (cluster.connect(workers=1) as client,
          pytest.raises(cluster.ClusterError, match="runs another version of the grader")):
        cluster.prepare_workers(client, dying_grade.DyingRunner())


def test_the_loopback_cluster_imports_the_installed_grader(dask_scheduler):
    # As on a grading machine: `make setup` installs the grader, nothing on PYTHONPATH.
    with Client(dask_scheduler) as client:
        seen = client.run(lambda: (__import__("os").environ.get("PYTHONPATH"),
                                   __import__("grader").__file__))
    import grader

    for pythonpath, path in seen.values():
        assert path == grader.__file__
        if Path(grader.__file__).resolve().parents[1] == lab.root:  # this checkout installed
            assert pythonpath is None


def test_a_shared_schedulers_retries_are_restored_when_the_batch_ends(dask_scheduler):
    def allowed_failures(dask_scheduler=None):
        return dask_scheduler.allowed_failures

    with Client(dask_scheduler) as client:
        before = client.run_on_scheduler(allowed_failures)
    with cluster.connect(scheduler=dask_scheduler) as client:
        assert client.run_on_scheduler(allowed_failures) == cluster.ALLOWED_FAILURES
    with Client(dask_scheduler) as client:
        assert client.run_on_scheduler(allowed_failures) == before != cluster.ALLOWED_FAILURES


def test_an_unreachable_scheduler_is_a_clear_error():
    unreachable = cluster.connect(scheduler="tcp://127.0.0.1:9", timeout=1)
    with pytest.raises(cluster.ClusterError, match="cannot reach the Dask scheduler at "
                                                   "tcp://127.0.0.1:9"):
        unreachable.__enter__()


def test_only_a_submission_running_when_its_worker_dies_is_blamed(monkeypatch, tmp_path):
    # One worker process, which its nanny starts again each time it dies. The coordinator
    # is made to believe the worker has three threads, as right after a worker's death
    # when more submissions are in flight than threads are left: two wait behind the one
    # that kills its worker, and Dask blames all three for each death.
    support = read_release_files(lab)
    tasks = [dying_grade.Task("kills-its-worker", str(tmp_path), kills_its_worker=True),
             dying_grade.Task("waits-1", str(tmp_path), kills_its_worker=False),
             dying_grade.Task("waits-2", str(tmp_path), kills_its_worker=False)]
    outcomes = {}
    with cluster.connect(workers=1) as client:
        monkeypatch.setattr(client, "nthreads", lambda: {"one worker": 3})
        cluster.prepare_workers(client, dying_grade.DyingRunner())
        cluster.run_tasks(client, tasks, runner=dying_grade.DyingRunner(), support_files=support,
                          on_outcome=lambda task, outcome: outcomes.update(
                              {task.student_id: outcome}))
        # Nothing of the batch is left wanted, its support files included: the workers stop
        # next, and a result they still hold makes the scheduler warn that it was lost.
        assert client.run_on_scheduler(_keys_held) == []
        # The deaths were counted on the scheduler, for this batch only: its counts are gone.
        assert client.run_on_scheduler(_counted_batches) == {}
    victim = outcomes.pop("kills-its-worker")
    assert (victim.end, victim.reason) == (RunEnd.WORKER_DIED, cluster.WORKER_DIED_TWICE)
    assert {student: outcome.notebook for student, outcome in outcomes.items()} == {
        "waits-1": {"graded": "waits-1", "support_files": support.digest},
        "waits-2": {"graded": "waits-2", "support_files": support.digest}}
    victim, *waiting = (dying_grade.starts(tmp_path, task.student_id) for task in tasks)
    assert victim == 2  # not a third time
    # Once, or twice if the worker holding the result died before it was fetched.
    assert all(starts in (1, 2) for starts in waiting)


def _keys_held(dask_scheduler=None):
    return sorted(map(str, dask_scheduler.tasks))


def _counted_batches(dask_scheduler=None):
    return dask_scheduler.plugins[unfinished_runs.PLUGIN_NAME].batches


class _ClusterOf:
    """A client's view of workers with these memory limits (bytes; 0: none)."""

    def __init__(self, *limits):
        self.limits = limits

    def scheduler_info(self, n_workers=-1):
        return {"workers": {f"tcp://10.0.0.{number}:9000": {"memory_limit": limit}
                            for number, limit in enumerate(self.limits)}}


def test_a_workers_memory_limit_follows_the_output_budget():
    default, larger = (cluster.worker_memory_bytes(Limits(output_mb=mb)) for mb in (4, 40))
    assert 512 * 2**20 < default < 1024 * 2**20 < larger


def test_workers_that_may_use_much_more_memory_than_grading_needs_are_warned_of():
    limit = cluster.worker_memory_bytes(Limits())
    assert cluster.memory_limit_warning(_ClusterOf(limit, limit + 2**20), limit) is None
    warning = cluster.memory_limit_warning(_ClusterOf(limit, 0, 16 * 2**30), limit)
    assert warning.startswith("2 Dask worker(s) may use more than")
    assert f"--memory-limit {-(-limit // 2**20)}MiB" in warning


def test_the_workers_started_here_have_the_memory_limit_and_are_only_restarted_past_it():
    with cluster.connect(workers=1, memory_limit=900 * 2**20) as client:
        [info] = client.scheduler_info(n_workers=-1)["workers"].values()
        config = client.run(lambda: __import__("dask").config.get("distributed.worker.memory"))
    assert info["memory_limit"] == 900 * 2**20
    [memory] = config.values()
    assert (memory["pause"], memory["spill"], memory["target"], memory["terminate"]) == \
        (False, False, False, 0.95)


def test_the_local_scheduler_keeps_no_submission_it_sent():
    # Dask logs the last 1000 batches of messages each connection sent, each task with its
    # notebook in them: the coordinator, where a local cluster's scheduler lives, grew by a
    # notebook per student (bench/bench_coordinator.py). Now at most the last 20 are kept.
    marker = "sent to a worker"
    count = 3 * local_cluster.SCHEDULER_LOG_LENGTH
    with cluster.connect(workers=1) as client:
        for number in range(count):
            future = client.submit(cluster.as_result,
                                   RunOutcome({}, RunEnd.FINISHED, f"{marker} {number}"),
                                   pure=False)
            assert future.result().reason == f"{marker} {number}"
            future.release()
        del future
        gc.collect()
        kept = [thing for thing in gc.get_objects()
                if isinstance(thing, RunOutcome) and thing.reason.startswith(marker)]
    assert len(kept) <= local_cluster.SCHEDULER_LOG_LENGTH + 1, f"{len(kept)} of {count} kept"


# A lambda: cloudpickle sends it whole; a function of this module, by name, which a
# worker started apart cannot import.
_periodic_callbacks = lambda dask_worker: sorted(dask_worker.periodic_callbacks)  # noqa: E731


def test_a_local_workers_task_is_not_sampled_by_dasks_profiler():
    # Its 10 ms callback walked the grading thread's stack for a dashboard nobody serves.
    with cluster.connect(workers=1) as client:
        (names,) = client.run(_periodic_callbacks).values()
    assert "heartbeat" in names and not {"profile", "profile-cycle"} & set(names)


def _worker_process_facts(variable):
    return {"parent": os.getppid(), "pid": os.getpid(), "variable": os.environ.get(variable),
            "imported": [name for name in worker_server.WORKER_MODULES if name in sys.modules],
            "cpu": time.process_time(), "quick_end": server_end.registered,
            "renderer": _renderer_parent()}


def _renderer_parent():
    """The parent of the page renderer this worker starts: the page server, not itself."""
    pages = PageProcess(page_server.RENDER_PAGE, page_server.WARM_UP)
    try:
        pages._started()
        return psutil.Process(pages._child.pid).parent().pid
    finally:
        pages.close()


def test_local_workers_are_forked_with_the_grading_code_imported(monkeypatch):
    # Forked from one server that imported the grading code, not each a new interpreter
    # importing it: a worker has spent none of its own CPU on those imports.
    variable = "GRADER_TEST_WORKER_SEES"
    for value in ("first", "second"):  # a later batch's value too, not the server's
        monkeypatch.setenv(variable, value)
        with cluster.connect(workers=2) as client:
            facts = list(client.run(_worker_process_facts, variable).values())
        assert len(facts) == 2 and len({fact["pid"] for fact in facts}) == 2
        for fact in facts:
            assert fact["parent"] != os.getpid()  # the forkserver's child, not ours
            assert psutil.Process(fact["parent"]).parent().pid == os.getpid()
            assert fact["imported"] == list(worker_server.WORKER_MODULES)
            assert fact["variable"] == value
            assert fact["cpu"] < 1.0  # spawned, its imports alone took 1.4 CPU s
            # inherited from the server, whose own end skips the interpreter's teardown
            assert fact["quick_end"] is True
            assert fact["renderer"] == page_server._server[0].process.pid


def test_workers_started_as_the_docs_say_run_no_profiler(dask_scheduler):
    with Client(dask_scheduler) as client:
        callbacks = client.run(_periodic_callbacks)
    assert len(callbacks) == 2
    for names in callbacks.values():
        assert "heartbeat" in names and "profile" not in names


def test_a_scheduler_started_as_the_docs_say_keeps_a_short_log(dask_scheduler):
    with Client(dask_scheduler) as client:
        length = client.run_on_scheduler(
            lambda: __import__("dask").config.get("distributed.admin.low-level-log-length"))
    assert length == local_cluster.SCHEDULER_LOG_LENGTH


# --- The batch's start: the cluster and each worker's template before the first task -------

def _template_pid(preload):
    from grader.run import worker

    template = worker._templates.get((tuple(preload), 0.0, None))
    return None if template is None or template.process is None else template.process.pid


def test_prepared_workers_start_the_kernel_template_before_any_submission():
    with cluster.connect(workers=1) as client:
        cluster.prepare_workers(client, SandboxRunner(), lab.preload_modules)
        pids = list(client.run(_template_pid, lab.preload_modules).values())
        assert len(pids) == 1 and pids[0] is not None and psutil.pid_exists(pids[0])


def test_a_fresh_out_is_graded_on_the_cluster_started_as_the_batch_began(
        class_dir, tmp_path, monkeypatch):
    started, start = [], local_cluster.start

    def recorded(workers, memory_limit):
        started.append((threading.current_thread().name, workers))
        return start(workers, memory_limit)

    monkeypatch.setattr(local_cluster, "start", recorded)
    submissions = _subset(class_dir, tmp_path / "class", SOME_STUDENTS[1:3])
    runner = CannedRunner({}, default=RunOutcome({}, RunEnd.FINISHED))

    def graded():
        return autograde(submissions=submissions, out=tmp_path / "out", lab=lab, workers=2,
                         runner=runner).graded

    assert len(graded()) == 2 and started == [("grader-cluster-start", 2)]
    assert len(graded()) == 0 and len(started) == 1  # nothing to grade: no cluster at all
    # One file changed in a known folder: its cluster starts once the batch knows it needs one.
    notebook = submissions / SOME_STUDENTS[1] / lab.notebook_name
    notebook.write_text(notebook.read_text() + " ")
    assert len(graded()) == 1 and started[1:] == [("MainThread", 1)]


def _refused(address, security):
    """Whether a connection to `address` with `security` (None: none) gets nowhere: no
    function of the caller's would run there."""
    client, _ = cluster.new_client(lambda: Client(address, timeout=3, security=security),
                                   Exception)  # OSError, CommClosedError, a TLS TypeError
    if client is None:
        return True
    try:
        with client:
            client.run_on_scheduler(os.getpid)
    except Exception:  # closed by the scheduler as it runs
        return True
    return False


def test_a_client_that_failed_to_start_is_closed_before_the_next_is_made():
    # A failed Client is only freed by the garbage collector; its __del__ takes the lock
    # every Dask loop runner shares, so run inside the next Client's start it hung a test.
    closed = []

    class HalfMade:
        def __init__(self):
            self.itself = self  # a cycle: only the collector frees it, as a failed Client
            raise OSError("refused")

        def __del__(self):
            closed.append(True)

    gc.disable()  # no collection but new_client's own
    try:
        assert cluster.new_client(HalfMade, (OSError,)) == (None, "refused")
    finally:
        gc.enable()
    assert closed == [True]


def test_the_local_cluster_refuses_anyone_without_its_credentials():
    # A Dask scheduler, nanny or worker runs any function a connection sends, as root:
    # on plain TCP, any user of the machine could reach the loopback ports mid-batch.
    with cluster.connect(workers=1) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert client.run_on_scheduler(os.getpid) == os.getpid()  # the batch's own client
        assert _refused(address, None)
        assert _refused(address, local_cluster.credentials())  # another cluster's
        assert _refused(address.replace("tls://", "tcp://"), None)
        workers = client.scheduler_info(n_workers=-1)["workers"]
        peers = [*workers, *(info["nanny"] for info in workers.values())]
        assert peers and all(peer.startswith("tls://127.0.0.1:") for peer in peers)
        other = local_cluster.credentials().get_connection_args("client")
        for peer in peers:
            with pytest.raises(OSError):
                sync_connect(peer, other)


def sync_connect(address, connection_args):
    import asyncio

    from distributed.comm import connect

    async def attempt():
        comm = await connect(address, timeout=3, **connection_args)
        await comm.write({"op": "identity"})
        return await comm.read()

    return asyncio.run(attempt())


def test_the_local_clusters_web_pages_show_nothing_but_its_health():
    import urllib.error
    import urllib.request

    with cluster.connect(workers=1) as client:
        client.submit(os.getpid, key=("grade-test", "a-student-id", 1)).result()
        port = client.scheduler_info()["services"]["dashboard"]
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/health", timeout=10) as answer:
            assert answer.read() == b"ok"
        for page in ("/info/main/workers.html", "/json/counts.json", "/metrics",
                     "/info/main/logs.html"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + page, timeout=10)
            assert refused.value.code == 404


def test_a_cluster_on_tls_grades_with_dasks_settings_and_refuses_a_client_without(tmp_path):
    # As docs/cluster.md#tls starts one: the dask commands with a certificate's files, the
    # grader with Dask's settings (here set in-process, as its DASK_... variables would).
    folder = tmp_path / "tls-cluster"
    with loopback_cluster(folder, workers=1, timeout=START_SECONDS, tls=True) as address:
        assert address.startswith("tls://127.0.0.1:")
        with pytest.raises(cluster.ClusterError, match="set Dask's TLS settings"):
            cluster.connect(scheduler=address, timeout=5).__enter__()
        with dask.config.set(tls_settings(folder)), \
                cluster.connect(scheduler=address) as client:
            cluster.prepare_workers(client, CannedRunner({}))
            assert client.submit(os.getpid).result() != os.getpid()
