"""A batch's start-up (issue 22): the local cluster started while intake runs
(local_cluster.StartedSoon, pipeline._cluster_soon), each worker's kernel template and page
renderer started as it is set up, before its first submission, and what their processes
import before that."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

import dask
import pytest

from grader import pipeline
from grader.labs.c2_w2 import LAB
from grader.publish import feedback, page_process
from grader.publish.page_process import PageProcess
from grader.run import cluster, local_cluster, worker, worker_server
from grader.run.runner import CannedRunner, Runner
from grader.settings import Limits


class FakeCluster:
    def __init__(self, workers, memory_limit):
        self.workers, self.memory_limit = workers, memory_limit
        self.scaled, self.closed = [], 0
        self.log_length = dask.config.get("distributed.admin.low-level-log-length")
        self.thread = threading.current_thread().name

    def scale(self, workers):
        self.scaled.append(workers)

    def close(self):
        self.closed += 1


@pytest.fixture
def started(monkeypatch):
    made = []

    def start(workers, memory_limit):
        made.append(FakeCluster(workers, memory_limit))
        return made[-1]

    monkeypatch.setattr(local_cluster, "start", start)
    return made


def test_the_cluster_starts_in_a_thread_under_the_batchs_dask_settings(started):
    soon = local_cluster.StartedSoon(2, 1000)
    taken = soon.take(2, 1000)
    assert taken is started[0] and taken.scaled == [] and taken.thread == "grader-cluster-start"
    assert taken.log_length == local_cluster.SCHEDULER_LOG_LENGTH
    soon.close()  # the batch took it: the batch stops it
    assert taken.closed == 0


def test_a_batch_needing_fewer_workers_scales_the_early_cluster_down(started):
    taken = local_cluster.StartedSoon(2, 1000).take(1, 1000)
    assert taken.scaled == [1]


def test_an_early_cluster_of_another_memory_limit_is_stopped_and_not_used(started):
    soon = local_cluster.StartedSoon(2, 1000)
    assert soon.take(2, 2000) is None
    assert started[0].closed == 1


def test_an_early_cluster_no_batch_took_is_stopped(started):
    local_cluster.StartedSoon(2, 1000).close()
    assert started[0].closed == 1


def test_a_worker_server_that_cannot_start_ahead_is_logged_not_raised(monkeypatch, caplog):
    # Started as the command begins, before anything says whether the batch can grade: a
    # machine out of processes is the cluster's start's to report, as a clear error.
    def out_of_processes():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(worker_server.forkserver, "ensure_running", out_of_processes)
    with caplog.at_level(logging.INFO, logger="grader.run.worker_server"):
        worker_server.start_soon()
    assert "the worker server did not start ahead" in caplog.text


def test_an_early_cluster_that_did_not_start_says_why_when_taken(monkeypatch):
    def start(workers, memory_limit):
        raise OSError("Nanny failed to start.")

    monkeypatch.setattr(local_cluster, "start", start)
    soon = local_cluster.StartedSoon(2, 1000)
    with pytest.raises(cluster.ClusterError, match="Nanny failed to start"):
        cluster._local_cluster(2, 1000, soon)
    soon.close()  # nothing to stop


# --- Which batches start their cluster early ---------------------------------------------

class Journal:
    def __init__(self, folders=()):
        self._folders = {name: name for name in folders}

    def folders(self):
        return self._folders


class Run:
    def __init__(self, regrade=False):
        self.regrade, self.limits = regrade, Limits()
        self.templates_started = 0

    def start_template(self):
        self.templates_started += 1


@pytest.fixture
def soon(monkeypatch):
    asked = []
    monkeypatch.setattr(local_cluster, "StartedSoon",
                        lambda workers, memory_limit: asked.append(workers) or "early")
    return asked


@pytest.fixture
def class_of_three(tmp_path):
    for name in ("ann", "bob", "cy", ".hidden"):
        (tmp_path / "class" / name).mkdir(parents=True)
    (tmp_path / "class" / "notes.txt").write_text("not a student")
    return tmp_path / "class"


def test_a_class_with_new_folders_starts_its_cluster_and_template_at_once(class_of_three,
                                                                          soon):
    runs = [Run(), Run()]
    assert pipeline._cluster_soon(class_of_three, Journal(), runs[0], 2, None) == "early"
    assert pipeline._cluster_soon(class_of_three, Journal(["ann", "bob"]), runs[1], 4,
                                  None) == "early"
    assert soon == [2, 1]  # no more workers than new folders
    assert [run.templates_started for run in runs] == [1, 1]


def test_a_resumed_batch_of_known_folders_starts_its_cluster_only_if_it_needs_one(
        class_of_three, soon):
    known = Journal(["ann", "bob", "cy"])
    resumed = Run()
    assert pipeline._cluster_soon(class_of_three, known, resumed, 2, None) is None
    assert resumed.templates_started == 0  # not yet: the batch starts it if it grades
    assert pipeline._cluster_soon(class_of_three, known, Run(regrade=True), 2, None) == "early"
    assert soon == [2]


def test_a_remote_cluster_a_zip_or_an_unreadable_folder_start_nothing_early(
        class_of_three, tmp_path, soon):
    remote = Run()
    assert pipeline._cluster_soon(class_of_three, Journal(), remote, 2, "tcp://x:1") is None
    assert remote.templates_started == 0  # its workers start their own
    (tmp_path / "class.zip").write_bytes(b"PK")
    assert pipeline._cluster_soon(tmp_path / "class.zip", Journal(), Run(), 2, None) is None
    assert pipeline._cluster_soon(tmp_path / "missing", Journal(), Run(), 2, None) is None
    assert soon == []


# --- A worker's set-up starts what its first submission needs -----------------------------

class Template:
    def __init__(self):
        self.started = 0

    def start(self):
        self.started += 1


def test_a_sandbox_runner_warms_up_by_starting_its_template_without_waiting(monkeypatch):
    template = Template()
    monkeypatch.setattr(worker, "_template", lambda preload, keep_seconds, shared: template)
    worker.SandboxRunner().warm_up(("numpy",))
    assert template.started == 1
    assert Runner().warm_up(("numpy",)) is None  # other runners: nothing to start
    assert CannedRunner({}).warm_up(()) is None


class FailingWarmUp(Runner):
    def warm_up(self, preload):
        raise OSError("no more processes")


def test_a_warm_up_that_fails_is_logged_and_costs_the_worker_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger=cluster.log.name):
        cluster._warm_up(FailingWarmUp(), ())
        cluster._warm_up(object(), ())  # a runner without warm_up
    assert "the runner's warm-up failed on this worker" in caplog.text


def _wait_for(condition, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_renderer_started_ahead_is_ready_for_the_first_page():
    pages = PageProcess(str, dict)  # renders nothing; its warm-up is dict()
    try:
        pages.start_soon()
        deadline = time.monotonic() + 120
        while (startup := pages.take_startup()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert startup is not None and pages.cpu_seconds() > 0
    finally:
        pages.close()


@pytest.mark.parametrize("asked", [False, True], ids=["before-ready", "after-a-page"])
def test_a_renderer_whose_worker_is_gone_ends_quietly(asked, monkeypatch):
    # Its worker killed (or its batch over) while it warmed up or rendered: its answer met
    # a closed pipe, and a BrokenPipeError's traceback reached the terminal after the batch.
    ours, theirs = socket.socketpair()
    if asked:
        Connection(os.dup(ours.fileno())).send(({"cells": []}, {}))
    ours.close()
    _keep_interrupts(monkeypatch)
    page_process.serve(Connection(theirs.detach()), str, dict)  # returns, raises nothing


def _keep_interrupts(monkeypatch):
    """The renderer ignores Ctrl-C, a setting of its whole process: not the tests'."""
    monkeypatch.setattr(page_process.signal, "signal", lambda *_: None)


def _render_unless_odd(notebook, resources):
    if notebook.get("odd"):
        raise ValueError("a notebook nbconvert's template cannot render")
    return f"page of {notebook['student']}"


def test_a_page_that_fails_to_render_costs_the_next_student_nothing(monkeypatch):
    # One student's notebook that the renderer cannot render is that student's error;
    # the same renderer answers the next student's page.
    _keep_interrupts(monkeypatch)
    ours, theirs = socket.socketpair()
    serving = threading.Thread(target=page_process.serve,
                               args=(Connection(theirs.detach()), _render_unless_odd, dict),
                               daemon=True)
    serving.start()
    connection = Connection(ours.detach())
    try:
        assert connection.recv() == ("ready", None)
        connection.send(({"odd": True, "student": "a"}, {}))
        assert connection.recv() == ("error", "ValueError: a notebook nbconvert's template"
                                              " cannot render")
        connection.send(({"student": "b"}, {}))
        assert connection.recv() == ("page", "page of b")
    finally:
        connection.close()
        serving.join(10)
    assert not serving.is_alive()  # the pipe closed: it ended


def test_a_renderer_that_cannot_start_ahead_says_so_at_its_first_page(caplog):
    pages = PageProcess(str, os.abort)  # the child dies as it warms up
    try:
        with caplog.at_level(logging.INFO, logger="grader.publish.page_process"):
            pages.start_soon()
            _wait_for(lambda: "did not start ahead" in caplog.text)
        assert "the page renderer did not start ahead" in caplog.text
        with pytest.raises(RuntimeError, match="the page renderer died"):
            pages.render({}, {})
    finally:
        pages.close()


def test_the_pages_inputs_are_made_ahead_in_a_thread():
    writer = feedback.FeedbackWriter(LAB, "")
    try:
        writer.prepare_soon()
        assert _wait_for(lambda: {"hidden_lines", "given_markdown", "lab_runs"}
                         <= set(writer.__dict__))
        assert writer.lab_runs and writer.hidden_lines  # formulas drawn, hidden lines read
    finally:
        writer.close()


def test_pages_inputs_that_fail_ahead_are_made_again_by_the_first_page(caplog, monkeypatch):
    calls = []

    def fails_first(lab):
        calls.append(lab)
        if len(calls) == 1:
            raise RuntimeError("no fonts")
        return {}

    monkeypatch.setattr(feedback, "standalone_sources", fails_first)
    writer = feedback.FeedbackWriter(LAB, "")
    with caplog.at_level(logging.INFO, logger=feedback.log.name):
        writer.prepare_soon()
        assert _wait_for(lambda: "were not made ahead" in caplog.text)
    assert "the pages' inputs were not made ahead; the first page makes them" in caplog.text
    assert writer.given_markdown == {} and len(calls) == 2


def _modules_after(statement):
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=os.path.dirname(os.path.dirname(worker.__file__)))
    return set(result.stdout.split())


def test_a_worker_starts_its_template_before_importing_nbclient_and_nbgrader():
    # Unpickling the plugin and a SandboxRunner imports these two modules; nbgrader's
    # package alone costs 0.7 s of CPU, which the template's start would wait behind.
    loaded = _modules_after("import grader.run.cluster, grader.run.worker")
    assert not {"nbgrader", "nbclient", "nbconvert"} & loaded


def test_the_page_renderer_does_not_import_nbgrader():
    assert "nbgrader" not in _modules_after("import grader.publish.feedback")


def test_a_workers_start_is_counted_once_though_each_batch_sets_it_up_again(monkeypatch):
    from grader.stage_clock import StageClock

    monkeypatch.setattr(worker, "_worker_start", [])
    monkeypatch.setattr(worker, "_worker_start_noted", [])
    counted = []
    for _batch in range(2):  # a cluster that outlives a batch: ReadyToGrade.setup again
        worker.note_worker_start()
        clock = StageClock()
        worker.take_worker_start(clock)
        counted.append(clock.totals().get("worker start", {}).get("count", 0))
    assert counted == [1, 0]


# --- The profile of a batch whose templates and renderers started ahead --------------------

class StartedTemplate:
    def __init__(self, wall, cpu, ready_at):
        self._startup, self.ready_at = (wall, cpu), ready_at

    def take_startup(self):
        startup, self._startup = self._startup, None
        return startup


def test_the_forks_stage_loses_only_what_it_waited_of_the_templates_import():
    from types import SimpleNamespace

    from grader.run.execution import GradingExecute
    from grader.stage_clock import StageClock

    def fork_stage(template, cpu_before, waited, stage_cpu, stage_wall):
        clock = StageClock()
        with clock.stage("fork + confinement") as stage:
            stage.add(cpu=stage_cpu, wall=stage_wall)
            GradingExecute._take_template_import(
                SimpleNamespace(kernel_template=template, clock=clock), stage, cpu_before,
                time.monotonic() - waited)
        return clock.totals()

    now = time.monotonic()
    # Ready 10 s before the kernel was asked for (started as the worker was set up): the
    # stage keeps its own 0.2 s of fork, the import is a stage of its own.
    ahead = fork_stage(StartedTemplate(3.0, 3.5, now - 10), cpu_before=3.5, waited=0.25,
                       stage_cpu=0.2, stage_wall=0.25)
    assert ahead["template import"]["cpu"] == 3.5
    assert ahead["fork + confinement"]["cpu"] == pytest.approx(0.2, abs=0.01)
    assert ahead["fork + confinement"]["wall"] == pytest.approx(0.25, abs=0.05)
    # Asked for while it imported, 2.3 s ago; ready 2 s later: 1 s of its import's CPU and
    # those 2 s were this kernel's wait.
    during = fork_stage(StartedTemplate(3.0, 3.5, now - 0.3), cpu_before=2.5, waited=2.3,
                        stage_cpu=1.2, stage_wall=2.3)
    assert during["fork + confinement"]["cpu"] == pytest.approx(0.2, abs=0.01)
    assert during["fork + confinement"]["wall"] == pytest.approx(0.3, abs=0.05)


class StartedPages:
    def __init__(self, cpu_now, startup):
        self.cpu, self._startup = cpu_now, startup

    def cpu_seconds(self):
        return self.cpu

    def take_startup(self):
        startup, self._startup = self._startup, None
        return startup


def test_a_page_counts_its_render_not_the_renderers_start_ahead(monkeypatch):
    from types import SimpleNamespace

    from grader.publish import on_worker
    from grader.stage_clock import StageClock

    pages = StartedPages(cpu_now=0.6, startup=(0.8, 0.6))  # ready before the page

    def made_page(writer, result, notebook, penalty):
        pages.cpu += 0.15  # the render
        return None, "", ""

    monkeypatch.setattr(on_worker, "made_page", made_page)
    clock = StageClock()
    on_worker._timed_page(SimpleNamespace(pages=pages), None, None, 0.0, clock)
    totals = clock.totals()
    assert totals["feedback page render"]["cpu"] == pytest.approx(0.15)
    assert totals["feedback renderer start"]["cpu"] == 0.6


def test_the_coordinator_starts_a_batch_without_importing_nbgrader():
    # nbgrader's package (0.7 s of CPU) is imported when the gradebook is first written,
    # in the publisher's thread while grading goes on, or a timestamp first read.
    assert "nbgrader" not in _modules_after("import grader.cli, grader.pipeline")


def test_the_coordinators_feedback_writer_renders_nothing_until_a_page_is_asked_for():
    # Workers render the pages: a coordinator that built the page exporter (nbconvert) and
    # drew the lab's formulas (matplotlib) as its publisher started paid 1.7 s per batch.
    loaded = _modules_after("import grader.cli, grader.pipeline; "
                            "from grader.publish.feedback import FeedbackWriter; "
                            "from grader.labs.c2_w2 import LAB; "
                            "FeedbackWriter(LAB, '/nonexistent')")
    assert not {"nbconvert", "matplotlib", "grader.publish.page_render"} & loaded


KERNEL_START = """
import json, sys
from jupyter_client.connect import write_connection_file
from grader.run.warm_kernels import KERNEL_MODULES
for module in KERNEL_MODULES:
    __import__(module)
connection_file, report = sys.argv[1:]
write_connection_file(connection_file)
before = set(sys.modules)
from ipykernel.kernelapp import IPKernelApp
IPKernelApp.instance().initialize(["-f", connection_file, "--HistoryManager.hist_file=:memory:"])
with open(report, "w") as file:  # the app has taken over stdout and stderr
    json.dump(sorted(set(sys.modules) - before), file)
"""


def test_a_forked_kernel_finds_what_its_start_imports_preloaded(tmp_path):
    # A forked kernel runs IPKernelApp.initialize; what it imports there, every kernel
    # paid for again (its debugger's debugpy and pydevd were 160 modules, 0.07 CPU s).
    report = tmp_path / "imported.json"
    subprocess.run([sys.executable, "-c", KERNEL_START, str(tmp_path / "kernel.json"),
                    str(report)], check=True, capture_output=True, timeout=120,
                   cwd=os.path.dirname(os.path.dirname(worker.__file__)))
    imported = json.loads(report.read_text())
    assert len(imported) < 40, imported
    assert not [name for name in imported if name.split(".")[0] in {"debugpy", "pydevd"}]


VALIDATE_UNTIL_THE_WAIT = """
import copy, os, sys
from grader import validate
from grader.labs.c2_w2 import LAB

class Template:  # stands for the kernel template: what is imported when it is waited for
    def wait_until_ready(self):
        print(" ".join(sorted(sys.modules)), flush=True)
        os._exit(0)

validate.validate(copy.deepcopy(LAB.source), lab=LAB, support_dir="/nonexistent",
                  template=Template())
"""


def test_validate_imports_the_executor_while_the_template_imports():
    # Waiting for the template (TensorFlow's 3 s), validate's own process is idle: the
    # executor's imports (nbclient, nbgrader: a second) must be done by then, not after.
    result = subprocess.run([sys.executable, "-c", VALIDATE_UNTIL_THE_WAIT],
                            capture_output=True, text=True, check=True, timeout=120,
                            cwd=os.path.dirname(os.path.dirname(worker.__file__)))
    assert {"grader.run.execution", "nbclient"} <= set(result.stdout.split())
