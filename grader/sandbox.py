"""Run one submission's notebook in a place of its own, with time limits.

Each submission gets a fresh directory holding only the lab's support files and its own
notebook, and the kernel runs there; the directory is removed afterwards. The kernel and
every process it started are killed when the notebook is done or its time is up
(grader.execution.KernelWatchdog).
"""

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader import lab
from grader.execution import execute


@dataclass(frozen=True)
class Limits:
    cell_timeout: int = 60  # seconds one cell may run before it is interrupted
    timeout: int = 600  # seconds for the whole submission
    memory_mb: int = 4096  # memory of the kernel and all it starts (where cgroups exist)
    max_processes: int = 1024  # processes and threads, likewise


def run_notebook(notebook, *, support_dir, capture_cells, limits, kernel_template=None):
    """Execute `notebook` (a dict) beside copies of `support_dir`'s files; plain outcome."""
    with tempfile.TemporaryDirectory(prefix="grader-submission-") as scratch:
        workdir = Path(scratch) / "lab"
        # Copies, not links: a link would let one student's code change another's files.
        shutil.copytree(support_dir, workdir)
        node = nbformat.from_dict(notebook)
        nbformat.write(node, str(workdir / lab.NOTEBOOK_NAME))
        return execute(node, workdir=workdir, capture_cells=capture_cells,
                       cell_timeout=limits.cell_timeout, timeout=limits.timeout,
                       kernel_template=kernel_template, memory_mb=limits.memory_mb,
                       max_processes=limits.max_processes)
