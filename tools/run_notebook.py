"""Execute a notebook the way a student's "Run All" does, headless, and read what it showed.

Used by the notebook tests and the benchmark. The kernel's working directory is the
notebook's folder (passed to the kernel, not set with os.chdir), so `load_data()` and the
style sheet resolve exactly as in JupyterLab.
"""

import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from grader.run.kernel_sockets import kernel_manager, private_sockets

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class NotebookRun:
    """An executed notebook and how long it took, kernel start to last cell done."""

    notebook: nbformat.NotebookNode
    seconds: float

    def code_cells(self):
        return [cell for cell in self.notebook.cells if cell.cell_type == "code"]

    def outputs(self, output_type=None):
        for cell in self.code_cells():
            for output in cell.get("outputs", []):
                if output_type is None or output.output_type == output_type:
                    yield cell, output

    def stdout(self, cell=None):
        """Everything printed to stdout (by one cell, or all), without colour codes."""
        cells = [cell] if cell is not None else self.code_cells()
        text = "".join(output.get("text", "") for c in cells for output in c.get("outputs", [])
                       if output.output_type == "stream" and output.name == "stdout")
        return ANSI_ESCAPE.sub("", text)

    def shown_text(self, cell):
        """What a cell showed as text: its stdout plus the plain text of its displays
        (Keras' model.summary() is displayed, not printed), without colour codes."""
        shown = [output.get("text", "") if output.output_type == "stream"
                 else output.get("data", {}).get("text/plain", "")
                 for output in cell.get("outputs", []) if output.get("name") != "stderr"]
        return ANSI_ESCAPE.sub("", "".join(shown))

    def stderr_texts(self):
        return [output.text for _, output in self.outputs("stream") if output.name == "stderr"]

    def errors(self):
        return [f"{output.ename}: {output.evalue}" for _, output in self.outputs("error")]

    def cell_containing(self, text):
        matches = [cell for cell in self.code_cells() if text in cell.source]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} code cells contain {text!r}")
        return matches[0]


def read_notebook(path):
    return nbformat.read(str(path), as_version=4)


def run_notebook(notebook, workdir, timeout=300, allow_errors=True):
    """Execute `notebook` (a NotebookNode, changed in place) with `workdir` as cwd.

    With allow_errors, a failing cell is recorded as an error output and the run goes on,
    so a test can report every problem at once.
    """
    # Over ipc sockets in a private folder: a TCP port jupyter_client chose may be taken by
    # another process before the kernel binds it (grader.run.kernel_sockets).
    with private_sockets() as ip:
        client = NotebookClient(
            notebook,
            km=kernel_manager(ip),
            timeout=timeout,
            kernel_name="python3",
            allow_errors=allow_errors,
            shutdown_kernel="immediate",
            resources={"metadata": {"path": str(Path(workdir))}},
        )
        start = time.perf_counter()
        client.execute(cleanup_kc=True)  # the kernel shut down, though handed in
    return NotebookRun(notebook, time.perf_counter() - start)
