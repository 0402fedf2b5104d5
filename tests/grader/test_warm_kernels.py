"""Kernels forked from the warm template: each one fresh, private and killable."""

import json

import nbformat
import psutil
import pytest
from jupyter_client.connect import write_connection_file
from nbformat.v4 import new_code_cell, new_notebook

from grader.labs.c2_w2 import LAB
from grader.records import RunEnd
from grader.run.execution import execute
from grader.run.warm_kernels import KernelTemplate

REPORT = """
import json, os, sys
print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(),
                  "pythonpath": os.environ.get("PYTHONPATH"),
                  "tensorflow_warm": "tensorflow" in sys.modules,
                  "seen": globals().get("left_by_another_student")}))
"""


@pytest.fixture(scope="module")
def template():
    template = KernelTemplate(LAB.preload_modules)
    yield template
    template.close()


def _run(template, workdir, *sources, cell_timeout=10, timeout=60):
    notebook = new_notebook(cells=[new_code_cell(source) for source in sources])
    outcome = execute(nbformat.from_dict(notebook), workdir=workdir,
                      cell_timeout=cell_timeout, timeout=timeout, kernel_template=template)
    return outcome


def _printed(cell):
    return "".join(o.get("text", "") for o in cell["outputs"] if o["output_type"] == "stream")


def test_each_kernel_is_a_fresh_copy_in_its_own_directory(template, tmp_path):
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    first = _run(template, first_dir, "left_by_another_student = 'answers'", REPORT)
    second = _run(template, second_dir, REPORT)
    one, two = (json.loads(_printed(o.notebook["cells"][-1])) for o in (first, second))
    assert one["pid"] != two["pid"]
    assert (one["cwd"], two["cwd"]) == (str(first_dir), str(second_dir))
    assert one["seen"] == "answers" and two["seen"] is None
    assert one["tensorflow_warm"] and two["tensorflow_warm"]
    assert one["pythonpath"] is None


def test_a_kernel_cannot_import_the_grader(template, tmp_path):
    outcome = _run(template, tmp_path, "import grader")
    (error,) = [o for o in outcome.notebook["cells"][0]["outputs"] if o["output_type"] == "error"]
    assert error["ename"] == "ModuleNotFoundError"


def test_a_kernel_imports_what_the_grader_skips(template, tmp_path):
    # The template is a grader process, which marks rfc3987_syntax missing (grader/__init__).
    outcome = _run(template, tmp_path, "import jsonschema, rfc3987_syntax\n"
                   "print('iri' in jsonschema.FormatChecker.checkers)")
    assert _printed(outcome.notebook["cells"][0]) == "True\n"


def test_an_endless_cell_is_interrupted_and_the_next_one_runs(template, tmp_path):
    outcome = _run(template, tmp_path, "while True:\n    pass", "print('next')",
                   cell_timeout=2)
    assert "next" in _printed(outcome.notebook["cells"][1])
    assert outcome.end is RunEnd.FINISHED


def test_kernel_and_its_children_are_gone_afterwards(template, tmp_path):
    outcome = _run(template, tmp_path, "import os, subprocess\n"
                   "child = subprocess.Popen(['sleep', '300'])\nprint(os.getpid(), child.pid)")
    pids = [int(pid) for pid in _printed(outcome.notebook["cells"][0]).split()]
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_a_kernel_that_exits_is_reported_and_the_template_lives_on(template, tmp_path):
    outcome = _run(template, tmp_path, "import os\nos._exit(3)", "print('never')")
    assert outcome.end is RunEnd.KERNEL_DIED
    assert template.process.poll() is None
    assert _run(template, tmp_path, "print(40 + 2)").notebook["cells"][0]["outputs"]


def _serving_kernel(template, tmp_path):
    """A kernel forked from `template`, serving a connection file nobody uses."""
    connection_file, _ = write_connection_file(fname=str(tmp_path / "kernel.json"))
    pid = template.fork_kernel(connection_file, tmp_path, {"PATH": "/usr/bin:/bin"})
    kernel = psutil.Process(pid)
    assert kernel.is_running()
    return kernel


def _ends(process, seconds=10):
    try:
        process.wait(timeout=seconds)
    except psutil.TimeoutExpired:
        return process.status() == psutil.STATUS_ZOMBIE
    return True


def test_a_kernel_dies_with_its_template(tmp_path):
    # A Dask worker killed mid-submission takes its template with it: the kernel must go too.
    template = KernelTemplate(LAB.preload_modules)
    kernel = _serving_kernel(template, tmp_path)
    template.process.kill()
    assert _ends(kernel)


def test_a_template_whose_worker_is_gone_kills_its_kernels(tmp_path):
    template = KernelTemplate(LAB.preload_modules)
    kernel = _serving_kernel(template, tmp_path)
    template.process.stdin.close()  # what the worker's death does to the pipe
    assert _ends(kernel)
    template.process.wait(timeout=10)
