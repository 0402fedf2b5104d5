"""A kernel template kept between a student's checks (grader.run.kept_templates, the client;
grader.run.template_keeper, the server): one per user and key, shared, ended when idle or
when its socket is removed, never handing a kernel anything of the server's."""

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from jupyter_client.connect import write_connection_file

from grader.labs.c2_w2 import LAB as lab
from grader.run import import_turns, isolation, kept_templates
from grader.run.kept_templates import (
    BatchTemplate,
    KeptTemplate,
    SharedTemplate,
    connect,
    template_for_checks,
    template_key,
)
from grader.run.warm_kernels import KernelTemplate
from grader.stage_clock import StageClock

PRELOAD = ("json",)  # a template in a tenth of a second: what is kept is the same


@pytest.fixture
def cache(monkeypatch):
    """A cache of the test's own, at a short path (a socket's is at most 107 bytes); its
    kept templates end with the test (the folder removed: what ends them is tested below)."""
    root = Path(tempfile.mkdtemp(prefix="kept-"))
    monkeypatch.setenv("GRADER_CACHE_DIR", str(root))
    yield root
    templates = _kept_processes(root)
    shutil.rmtree(root)
    assert all(_ends(process) for process in templates)


def _kept_processes(root):
    """The templates kept in `root` (or a batch's there), not their kernels (forks: the same
    command line)."""
    folder = str(root)
    found = []
    for process in psutil.process_iter(["cmdline", "ppid"]):
        command = process.info["cmdline"] or []
        if "--keep" in command and command[command.index("--keep") + 1].startswith(folder):
            found.append(process)
    pids = {process.pid for process in found}
    return [process for process in found if process.info["ppid"] not in pids]


def _ends(process, seconds=10):
    return not psutil.wait_procs([process], timeout=seconds)[1]


def _kernel(template, folder):
    """A kernel forked from `template`, serving a connection file nobody uses."""
    folder.mkdir(exist_ok=True)
    connection_file, _ = write_connection_file(fname=str(folder / "kernel.json"))
    kernel = psutil.Process(template.fork_kernel(connection_file, folder,
                                                 {"PATH": "/usr/bin:/bin"}))
    assert kernel.is_running()
    return kernel


def test_the_next_check_forks_from_the_template_the_first_one_started(cache, tmp_path):
    first = template_for_checks(PRELOAD)
    assert isinstance(first, KeptTemplate)
    kernel = _kernel(first, tmp_path / "first")
    assert first.take_startup()[0] > 0  # its start, for the profile: this check's
    kept = psutil.Process(first.process.pid)
    assert os.getsid(kept.pid) == kept.pid  # a session of its own: no Ctrl-C reaches it
    first.kill()  # the check is over: its kernel goes, the template stays
    assert _ends(kernel)
    assert kept.is_running()
    second = template_for_checks(PRELOAD)
    second.start()
    time.sleep(0.5)  # a worker's first task comes a while after its set-up started it
    second.wait_until_ready()
    assert second.process.pid == kept.pid
    assert second.take_startup()[0] == 0.0  # ready before: no import of this check's
    assert _kernel(second, tmp_path / "second").ppid() == kept.pid
    second.kill()
    assert [process.pid for process in _kept_processes(cache)] == [kept.pid]


def test_checks_started_together_share_one_template(cache):
    templates = [template_for_checks(PRELOAD) for _ in range(4)]
    threads = [threading.Thread(target=template.wait_until_ready) for template in templates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(template.ready for template in templates)
    assert len({template.process.pid for template in templates}) == 1
    for template in templates:  # those started meanwhile found the socket locked and ended
        template.kill()
    deadline = time.monotonic() + 10
    while len(_kept_processes(cache)) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_kept_processes(cache)) == 1


def test_a_killed_templates_socket_is_taken_over_by_a_new_one(cache, tmp_path):
    first = template_for_checks(PRELOAD)
    first.wait_until_ready()
    dead = first.process.pid
    os.kill(dead, signal.SIGKILL)  # its socket file stays, nobody listening
    first.kill()
    assert os.path.exists(first.path)
    second = template_for_checks(PRELOAD)
    assert _kernel(second, tmp_path / "k").ppid() not in (dead, os.getpid())
    second.kill()


def test_a_template_ends_when_idle_for_its_keep_time(cache, tmp_path):
    check = template_for_checks(PRELOAD, keep_seconds=1)
    kernel = _kernel(check, tmp_path / "k")
    kept = psutil.Process(check.process.pid)
    time.sleep(2)
    assert kept.is_running()  # a check connected is never idle, however long it runs
    check.kill()
    assert _ends(kernel) and _ends(kept)
    assert not os.path.exists(check.path)  # the next check starts a new one


def test_end_all_ends_every_template_kept_in_a_cache(cache):
    checks = [template_for_checks(PRELOAD, slot=slot) for slot in ("", "0")]
    for check in checks:
        check.wait_until_ready()
        check.kill()
    kept = _kept_processes(cache)
    assert len(kept) == 2
    kept_templates.end_all(cache, seconds=10)  # how a benchmark's round ends them
    assert not (cache / kept_templates.FOLDER).exists()
    assert not any(process.is_running() for process in kept)


def test_a_template_ends_when_its_socket_is_removed(cache):
    check = template_for_checks(PRELOAD)
    check.wait_until_ready()
    kept = psutil.Process(check.process.pid)
    check.kill()
    os.unlink(check.path)
    assert _ends(kept)


def test_a_kernel_holds_none_of_the_servers_descriptors(cache, tmp_path):
    # Another check is connected while this one's kernel is forked: the kernel must hold
    # neither the listening socket, nor the other's connection, nor the lock.
    other = template_for_checks(PRELOAD)
    other.wait_until_ready()
    check = template_for_checks(PRELOAD)
    kernel = _kernel(check, tmp_path / "k")
    template = psutil.Process(check.process.pid)
    theirs = {_target(template.pid, fd) for fd in os.listdir(f"/proc/{template.pid}/fd")}
    held = {_target(kernel.pid, fd) for fd in os.listdir(f"/proc/{kernel.pid}/fd")}
    servers = {target for target in theirs if target.startswith("socket:")}
    assert len(servers) >= 3  # the listener and both connections
    assert check.path + ".lock" in theirs
    assert not held & (servers | {check.path + ".lock"})
    other.kill()
    check.kill()


def _target(pid, fd):
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return ""


FAKE_TEMPLATE = """
import os, socket, sys, time
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
os.setuid(int(sys.argv[2]))  # listen()'s credentials are the ones a client sees
listener.listen(4)
print("listening", flush=True)
while True:
    connection, _ = listener.accept()
    connection.sendall(b"not a reply\\n")
"""


def _fake_template(path, uid):
    fake = subprocess.Popen([sys.executable, "-c", textwrap.dedent(FAKE_TEMPLATE), path,
                             str(uid)], stdout=subprocess.PIPE, text=True)
    assert fake.stdout.readline() == "listening\n"
    return fake


def test_a_kept_template_that_fails_is_killed_and_replaced(cache):
    path = kept_templates.socket_path(PRELOAD)
    fake = _fake_template(path, os.geteuid())
    check = KeptTemplate(PRELOAD, path)
    try:
        check.wait_until_ready()  # a reply that is not one
        fake.wait(timeout=10)  # killed: it never ends by itself
        assert isinstance(check.process, kept_templates.Connection)  # a new kept one
        assert check.process.pid != fake.pid and check.ready
    finally:
        fake.kill()
        check.kill()


def test_a_worker_never_kills_its_batchs_template_whatever_it_answers(cache):
    path = kept_templates.socket_path(PRELOAD, slot="test",
                                      folder_name=kept_templates.BATCH_FOLDER)
    fake = _fake_template(path, os.geteuid())
    worker = SharedTemplate(PRELOAD, path, 30.0)
    try:
        worker.wait_until_ready()  # replies that are not ones: a template of its own
        assert fake.poll() is None  # the other workers' kernels would live on
        assert isinstance(worker.process, subprocess.Popen) and worker.ready
    finally:
        fake.kill()
        worker.kill()


def test_when_no_kept_template_will_serve_the_check_starts_its_own(cache, monkeypatch):
    monkeypatch.setattr(KeptTemplate, "_start_kept", lambda self: None)
    monkeypatch.setattr(kept_templates, "CONNECT_SECONDS", 0.5)
    path = kept_templates.socket_path(PRELOAD)
    fake = _fake_template(path, os.geteuid())
    check = KeptTemplate(PRELOAD, path)
    try:
        check.wait_until_ready()
        fake.wait(timeout=10)
        assert isinstance(check.process, subprocess.Popen) and check.ready
    finally:
        fake.kill()
        check.kill()


@pytest.mark.skipif(os.geteuid() != 0, reason="listening as another user needs root")
def test_a_socket_another_user_listens_on_is_not_connected_to(cache):
    path = kept_templates.socket_path(PRELOAD)
    fake = _fake_template(path, 65534)
    try:
        assert kept_templates.connect(path) is None
    finally:
        fake.kill()


def test_templates_are_kept_apart_by_what_they_are_made_of(cache, tmp_path, monkeypatch):
    key = template_key(PRELOAD)
    assert template_key(("json", "csv")) != key
    assert template_key(PRELOAD, {**os.environ, "LANG": "xx_XX.UTF-8"}) != key
    installed, working = tmp_path / "venv" / "site-packages", tmp_path / "work"
    installed.mkdir(parents=True)
    working.mkdir()
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))  # as a venv's packages
    monkeypatch.syspath_prepend(str(installed))
    monkeypatch.syspath_prepend(str(working))  # `python -m` puts the working folder first
    before = template_key(PRELOAD)
    (working / "notebook.ipynb").write_text("{}")  # saved: the folder's time changes
    os.utime(working, ns=(0, time.time_ns() + 10**9))
    assert template_key(PRELOAD) == before  # the same template
    (installed / "new_package").mkdir()  # a package installed since: a new template
    os.utime(installed, ns=(0, time.time_ns() + 10**9))
    assert template_key(PRELOAD) != before


def test_a_check_keeps_no_template_where_it_cannot_keep_one_safely(cache, monkeypatch):
    assert type(template_for_checks(PRELOAD, keep_seconds=0)) is KernelTemplate
    (cache / kept_templates.FOLDER).mkdir(parents=True)
    os.chmod(cache / kept_templates.FOLDER, 0o755)  # others may enter it
    assert type(template_for_checks(PRELOAD)) is KernelTemplate
    monkeypatch.setenv("GRADER_CACHE_DIR", "/tmp/" + "x" * 120)  # too long for a socket
    assert kept_templates.socket_path(PRELOAD) is None
    monkeypatch.setenv("GRADER_CACHE_DIR", "off")
    assert type(template_for_checks(PRELOAD)) is KernelTemplate


def test_a_confined_kernels_connection_file_names_its_own_socket_folder(tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(isolation, "SOCKET_DIR", str(tmp_path))
    path = isolation.confined_connection_file({"ip": "/scratch/abc/kernel-ipc", "a": 1})
    assert Path(path).read_text() == f'{{"ip": "{tmp_path}/kernel-ipc", "a": 1}}'


def test_a_connection_refused_or_absent_is_none_quickly(cache, tmp_path):
    started = time.monotonic()
    assert kept_templates.connect(str(tmp_path / "none.sock")) is None
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()  # the file stays, nobody listens
    assert kept_templates.connect(str(tmp_path / "stale.sock"), seconds=0.2) is None
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------- a batch's templates

def test_a_worker_forks_from_the_batchs_template_its_own_or_its_slots(cache):
    from grader.run import worker

    assert template_key(PRELOAD, slot="0") != template_key(PRELOAD, slot="1")
    shared = (str(cache / "shared.sock"), 30.0)
    try:
        assert isinstance(worker._template(PRELOAD, 60.0), KeptTemplate)
        assert type(worker._template(PRELOAD, 0.0)) is KernelTemplate  # as before
        assert type(worker._template(PRELOAD, 0.0, shared)) is SharedTemplate
        assert worker._template(PRELOAD, 60.0) is worker._template(PRELOAD, 60.0)
    finally:
        for key in ((PRELOAD, 60.0, None), (PRELOAD, 0.0, None), (PRELOAD, 0.0, shared)):
            worker._templates.pop(key).kill()


def test_a_batchs_template_serves_its_workers_and_ends_with_its_files(cache, tmp_path):
    batch = BatchTemplate(PRELOAD)
    path, _keep = batch.for_workers()
    workers = [SharedTemplate(PRELOAD, *batch.for_workers()) for _ in range(2)]
    kernels = [_kernel(each, tmp_path / f"worker-{n}") for n, each in enumerate(workers)]
    assert {kernel.ppid() for kernel in kernels} == {batch.process.pid}  # one template
    for each in workers:  # its import is the batch's to count, not each worker's
        assert each.take_startup() == (0.0, 0.0)
        each.close()
    clock = StageClock()
    batch.end(clock)
    stage = clock.totals()["template import"]
    assert stage["count"] == 1 and 0 < stage["wall"] < 60 and stage["cpu"] > 0
    assert not list(Path(path).parent.iterdir())  # socket, lock and log
    assert _ends(batch.process) and all(_ends(kernel) for kernel in kernels)


COORDINATOR = """
import sys, time
from grader.run.kept_templates import BatchTemplate
batches = [BatchTemplate(("json",), float(keep)) for keep in sys.argv[1:]]
print(*[batch.process.pid for batch in batches], flush=True)
time.sleep(600)
"""


def test_a_batchs_own_template_ends_with_its_coordinator_a_kept_one_outlives_it(cache):
    coordinator = subprocess.Popen([sys.executable, "-c", COORDINATOR, "0", "60"],
                                   stdout=subprocess.PIPE, text=True, cwd=lab.root,
                                   env={**os.environ, "GRADER_CACHE_DIR": str(cache)})
    own, kept = (psutil.Process(int(pid)) for pid in coordinator.stdout.readline().split())
    coordinator.kill()  # SIGKILL: nothing of it runs again
    coordinator.wait()
    assert _ends(own)
    assert kept.is_running()  # for the next batch (the fixture's end removes it)


def test_ending_the_kept_templates_leaves_a_running_batchs_alone(cache, tmp_path):
    batch = BatchTemplate(PRELOAD)
    kept_templates.end_all(cache)  # `rm -r kept-templates`, or a test run's end
    shared = SharedTemplate(PRELOAD, *batch.for_workers())
    try:
        assert _kernel(shared, tmp_path / "a").ppid() == batch.process.pid
    finally:
        shared.close()
        batch.end(StageClock())


def test_a_worker_whose_batch_template_died_forks_from_a_new_one(cache, tmp_path):
    from grader.run import execution

    batch = BatchTemplate(PRELOAD)
    shared = SharedTemplate(PRELOAD, *batch.for_workers())
    first = _kernel(shared, tmp_path / "a")
    assert shared.process.poll() is None and execution._alive(shared)
    batch.process.kill()  # its kernels die with it
    assert _ends(first)
    assert shared.process.poll() == 0 and not execution._alive(shared)
    second = _kernel(shared, tmp_path / "b")
    assert second.ppid() != batch.process.pid and execution._alive(shared)
    shared.close()
    batch.end(StageClock())  # its socket removed: the new template ends too
    assert all(_ends(process) for process in _kept_processes(cache))


def test_a_batchs_template_is_private_unless_kept_for_the_next(cache):
    first, second = BatchTemplate(PRELOAD), BatchTemplate(PRELOAD)
    kept, next_batch = BatchTemplate(PRELOAD, 60.0), None
    try:
        assert first.path != second.path and first.process.pid != second.process.pid
        assert kept.path not in (first.path, second.path)
        assert connect(kept.path, 30.0) is not None  # listening (its import may go on)
        next_batch = BatchTemplate(PRELOAD, 60.0)
        assert next_batch.process.pid == kept.process.pid and next_batch.popen is None
        assert next_batch.cpu_before > 0  # its import was the last batch's
        clock = StageClock()
        next_batch.end(clock)
        assert clock.totals()["template import"]["wall"] == 0.0
        assert Path(kept.path).exists()  # kept: still listening for the batch after
    finally:
        for batch in (first, second):
            batch.end(StageClock())


def _run(runner):
    from grader.pipeline import _Run

    return _Run(lab=lab, limits=None, journal=None, batch=None, secret_key=None,
                regrade=False, version="", on_progress=None, runner=runner)


def test_only_the_sandbox_runner_is_given_the_batchs_template(cache):
    from grader.run.runner import CannedRunner
    from grader.run.worker import SandboxRunner

    canned = _run(CannedRunner({}))
    assert canned._runner_here() is canned.runner and canned.template is None
    sandbox = _run(SandboxRunner(keep_templates=0))
    try:
        runner = sandbox._runner_here()
        assert isinstance(runner, SandboxRunner) and runner is not sandbox.runner
        assert runner.shared_template == sandbox.template.for_workers() is not None
        assert sandbox._runner_here().shared_template == runner.shared_template  # one
    finally:
        sandbox.end_early_starts()


def test_a_batch_that_fails_before_grading_ends_the_template_it_started(cache, tmp_path):
    from grader.cli import main

    (tmp_path / "class" / "ann").mkdir(parents=True)
    assert main(["autograde", str(tmp_path / "class"), "--out", str(tmp_path / "out"),
                 "--due", "2026-12-01T23:59"]) == 1  # no time zone: refused
    assert not _kept_processes(cache)
    assert not list((cache / kept_templates.BATCH_FOLDER).iterdir())


def test_no_batch_template_where_none_can_be_kept_safely(cache, monkeypatch):
    monkeypatch.setattr(import_turns, "private_cache_folder", lambda name: None)
    batch = BatchTemplate(PRELOAD)
    assert batch.for_workers() is None and batch.process is None
    batch.end(StageClock())  # nothing to end


STUDENTS = ["ok-loop-softmax-input-model", "wrong-softmax-unnormalised"]


def _batch(class_dir, out, env, keep="120"):
    """Grade `class_dir` into `out` with two workers: its template's stage in the profile."""
    result = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(class_dir), "--out", str(out),
         "--workers", "2", "--keep-templates", keep],
        capture_output=True, text=True, cwd=lab.root, env=env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "graded 2, timeout 0, error 0" in result.stdout
    profile = json.loads((out / "profile.json").read_text())
    assert profile["workers"] == 2
    return profile["stages"]["workers"]["template import"]


def _two_students(class_dir, tmp_path):
    submissions = tmp_path / "class"
    submissions.mkdir()
    for student in STUDENTS:
        shutil.copytree(class_dir / student, submissions / student)
    return submissions


def test_a_batchs_workers_share_one_template_that_ends_with_it(cache, class_dir, tmp_path):
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache)}
    stage = _batch(_two_students(class_dir, tmp_path), tmp_path / "out", env, keep="0")
    # One import for both workers: a worker starting its own would count one more.
    assert stage["count"] == 1 and stage["cpu"] > 1.0
    assert all(_ends(process) for process in _kept_processes(cache))
    assert not list((cache / kept_templates.BATCH_FOLDER).iterdir())  # no file left behind


def test_the_next_batch_grades_with_the_templates_the_last_one_kept(cache, class_dir,
                                                                    tmp_path):
    submissions = _two_students(class_dir, tmp_path)
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache)}
    first = _batch(submissions, tmp_path / "first", env)
    kept = {process.pid for process in _kept_processes(cache)}
    assert len(kept) == 1  # the one both workers shared, beside the batch's end
    second = _batch(submissions, tmp_path / "second", env)
    assert {process.pid for process in _kept_processes(cache)} == kept
    # TensorFlow imported once by the first batch's template, by nobody in the second's.
    assert first["count"] == 1 and first["cpu"] > 1.0 and second["cpu"] < 0.5 * first["cpu"]
    rows = [(tmp_path / out / "grades.csv").read_text() for out in ("first", "second")]
    assert rows[0].splitlines()[1:] == rows[1].splitlines()[1:]


def _template_serving(cache, kernels, seconds=300):
    """The batch's template in `cache` once it has `kernels` kernels running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for template in _kept_processes(cache):
            with contextlib.suppress(psutil.Error):
                if len(template.children()) >= kernels:
                    return template
        time.sleep(0.2)
    raise AssertionError("no template with that many kernels")


def test_a_template_killed_mid_batch_costs_its_kernels_students_an_error_row_only(
        cache, class_dir, tmp_path):
    submissions = tmp_path / "class"
    for name, student in (("a-loop-1", "timeout-softmax-infinite-loop"),
                          ("a-loop-2", "timeout-softmax-infinite-loop"),
                          ("b-ok-1", STUDENTS[0]), ("b-ok-2", STUDENTS[0])):
        shutil.copytree(class_dir / student, submissions / name)
    out = tmp_path / "out"
    batch = subprocess.Popen(
        [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
         "--workers", "2", "--timeout", "300", "--cell-timeout", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=lab.root,
        env={**os.environ, "GRADER_CACHE_DIR": str(cache)})
    try:
        template = _template_serving(cache, 2)  # both workers in an endless loop
        time.sleep(1.0)
        template.kill()  # as the machine's out-of-memory killer would
        output, _ = batch.communicate(timeout=600)
    finally:
        batch.kill()
    assert batch.returncode == 0, output
    with open(out / "grades.csv", newline="") as grades:
        rows = {row["student_id"]: row for row in csv.DictReader(grades)}
    for student in ("a-loop-1", "a-loop-2"):  # ours, not their endless loop's
        assert rows[student]["status"] == "error"
        assert "the kernel template stopped while the notebook ran" in rows[student]["detail"]
    for student in ("b-ok-1", "b-ok-2"):  # forked from a new template
        assert (rows[student]["status"], rows[student]["score"]) == ("graded", "100"), rows
    assert all(_ends(process) for process in _kept_processes(cache))
    assert not list((cache / kept_templates.BATCH_FOLDER).iterdir())
