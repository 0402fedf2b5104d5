"""Each kernel in a cgroup of its own: memory and process caps, and nothing survives it."""

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.pipeline import finish
from grader.run import cgroups
from grader.run.execution import execute
from grader.run.warm_kernels import KernelTemplate

pytestmark = pytest.mark.skipif(cgroups.unavailable_reason() is not None,
                                reason=f"cgroups: {cgroups.unavailable_reason()}")

DAEMON = ("import subprocess\n"
          "subprocess.Popen('setsid sleep {seconds} > /dev/null 2>&1 &', shell=True).wait()")


@pytest.fixture(scope="module")
def template():
    template = KernelTemplate()
    yield template
    template.close()


def _run(workdir, *sources, template=None, memory_mb=300, max_processes=64):
    notebook = nbformat.from_dict(new_notebook(cells=[new_code_cell(s) for s in sources]))
    return execute(notebook, workdir=workdir, capture_cells={}, cell_timeout=20, timeout=60,
                   kernel_template=template, memory_mb=memory_mb, max_processes=max_processes)


def _sleepers(seconds):
    return [p for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] == ["sleep", str(seconds)] and p.status() != "zombie"]


@pytest.mark.parametrize("warm", [False, True])
def test_memory_beyond_the_cap_stops_the_kernel_not_the_machine(tmp_path, template, warm):
    outcome = _run(tmp_path, "hog = bytearray(800 * 1024 * 1024)\nhog[::4096] = b'1' * 204800",
                   "print('after')", template=template if warm else None)
    assert outcome.kernel_died and outcome.memory_exceeded
    result = finish("hog", {**outcome.__dict__, "memory_mb": 300}, [])
    assert result.status == "error" and "300 MB of memory" in result.detail


@pytest.mark.parametrize(("warm", "seconds"), [(False, 1601), (True, 1602)])
def test_a_double_forked_daemon_does_not_outlive_grading(tmp_path, template, warm, seconds):
    outcome = _run(tmp_path, DAEMON.format(seconds=seconds), "import time\ntime.sleep(0.5)",
                   template=template if warm else None)
    assert not outcome.kernel_died
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
    assert not outcome.kernel_died and not outcome.memory_exceeded
    assert "1000.0" in outcome.notebook["cells"][0]["outputs"][0]["text"]
