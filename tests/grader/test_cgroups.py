"""Each kernel in a cgroup of its own: memory and process caps, and nothing survives it.

These run on the machine's own cgroups (cgroup v1 here, the hierarchy `cgroups.find` finds);
tests/grader/test_cgroups_v2.py covers cgroup v2.
"""

import dataclasses
import json
import os
import subprocess
import sys

import cgroup_grade
import nbformat
import psutil
import pytest
from fake_cgroupfs import _alive
from nbformat.v4 import new_code_cell, new_notebook

from grader.judge.status import status_and_detail
from grader.labs.c2_w2 import LAB
from grader.records import RunEnd
from grader.release_files import read_release_files
from grader.run import cgroups, cluster
from grader.run.execution import execute
from grader.run.warm_kernels import KernelTemplate

# Fails where cgroups are missing, as every sandbox test does (skipped only on request:
# GRADER_TESTS_WITHOUT_SANDBOX); checked by a fixture, so that collecting this file (as
# `make check` does, to deselect it) creates no cgroup.
pytestmark = pytest.mark.usefixtures("sandbox_required")

DAEMON = ("import subprocess\n"
          "subprocess.Popen('setsid sleep {seconds} > /dev/null 2>&1 &', shell=True).wait()")


@pytest.fixture(scope="module")
def template():
    template = KernelTemplate()
    yield template
    template.close()


def _run(workdir, *sources, template=None, memory_mb=300, max_processes=64):
    notebook = nbformat.from_dict(new_notebook(cells=[new_code_cell(s) for s in sources]))
    outcome = execute(notebook, workdir=workdir, cell_timeout=20,
                      timeout=60, kernel_template=template, memory_mb=memory_mb,
                      max_processes=max_processes)
    assert _groups(made_by=os.getpid()) == []  # every group made for a kernel is removed
    assert cgroups.unavailable_reason() is None  # and none failed
    return outcome


def _groups(made_by=None):
    """The kernels' groups on this machine (made by process `made_by`)."""
    prefix = "kernel-" if made_by is None else f"kernel-{cgroups._identity()[0]}-{made_by}-"
    return sorted({name for parent in cgroups.hierarchy().parents
                   for name in os.listdir(parent) if name.startswith(prefix)})


def _sleepers(seconds):
    return [p for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] == ["sleep", str(seconds)] and p.status() != "zombie"]


@pytest.mark.parametrize("warm", [False, True])
def test_memory_beyond_the_cap_stops_the_kernel_not_the_machine(tmp_path, template, warm):
    outcome = _run(tmp_path, "hog = bytearray(800 * 1024 * 1024)\nhog[::4096] = b'1' * 204800",
                   "print('after')", template=template if warm else None)
    assert outcome.end is RunEnd.MEMORY_EXCEEDED
    status, detail = status_and_detail(dataclasses.replace(outcome, memory_mb=300))
    assert status == "error" and "300 MB of memory" in detail


@pytest.mark.parametrize(("warm", "seconds"), [(False, 1601), (True, 1602)])
def test_a_double_forked_daemon_does_not_outlive_grading(tmp_path, template, warm, seconds):
    outcome = _run(tmp_path, DAEMON.format(seconds=seconds), "import time\ntime.sleep(0.5)",
                   template=template if warm else None)
    assert outcome.end is not RunEnd.KERNEL_DIED
    assert _sleepers(seconds) == []


def test_the_process_cap_stops_a_fork_storm(tmp_path, template):
    outcome = _run(tmp_path, "import subprocess\nstarted = []\n"
                   "try:\n    for _ in range(500):\n"
                   "        started.append(subprocess.Popen(['sleep', '1603']))\n"
                   "except OSError as error:\n    print('refused after', len(started))",
                   template=template)
    printed = "".join(o.get("text", "") for o in outcome.notebook["cells"][0]["outputs"])
    assert "refused after" in printed
    assert int(printed.split()[-1]) < 64
    assert _sleepers(1603) == []


def test_honest_work_runs_under_the_caps(tmp_path, template):
    outcome = _run(tmp_path, "import numpy as np\nprint(np.ones(1000).sum())",
                   template=template, memory_mb=4096, max_processes=1024)
    assert outcome.end is RunEnd.FINISHED
    assert "1000.0" in outcome.notebook["cells"][0]["outputs"][0]["text"]


GRADER = """
import json, subprocess, sys
from grader.run import cgroups
group = cgroups.kernel_cgroup(memory_mb=200, max_processes=16)
detached = subprocess.Popen(["sleep", "1952"], start_new_session=True)
group.add(detached.pid)
print(json.dumps([group.name, detached.pid]), flush=True)
sys.stdin.readline()  # killed meanwhile
"""


def _grader(project_root):
    """A grader process that made a kernel's group with a detached process in it, and waits."""
    process = subprocess.Popen([sys.executable, "-c", GRADER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=project_root,
                               env={**os.environ, "PYTHONPATH": str(project_root)})
    name, pid = json.loads(process.stdout.readline())
    return process, name, pid


def test_the_groups_of_a_killed_grader_are_removed_when_the_next_starts(project_root):
    killed, its_group, its_process = _grader(project_root)
    running, other_group, other_process = _grader(project_root)
    try:
        killed.kill()
        killed.wait()
        assert its_group in _groups() and _alive(its_process)
        cgroups.find()  # what each grader process does first
        assert its_group not in _groups() and not _alive(its_process)
        assert other_group in _groups() and _alive(other_process)  # still running: kept
    finally:
        running.kill()
        running.wait()
    cgroups.remove_stale()
    assert other_group not in _groups() and not _alive(other_process)


def test_a_worker_killed_while_its_kernel_has_a_group_leaves_nothing(tmp_path):
    outcomes = []
    with cluster.connect(workers=1) as client:
        cluster.prepare_workers(client, cgroup_grade.CgroupRunner())
        cluster.run_tasks(client, [cgroup_grade.Task("crashes-its-worker", str(tmp_path))],
                          runner=cgroup_grade.CgroupRunner(), support_files=read_release_files(LAB),
                          on_outcome=lambda task, outcome: outcomes.append(outcome))
    assert [(outcome.end, outcome.reason) for outcome in outcomes] == [
        (RunEnd.WORKER_DIED, cluster.WORKER_DIED_TWICE)]
    started = cgroup_grade.records(tmp_path, "crashes-its-worker")
    assert len(started) == 2  # the second worker removed the first's group as it started
    for name, pid in started:  # and the batch, as it ended, the second's
        assert name not in _groups() and not _alive(int(pid))
