"""What a student types into the graded cells, and what the released notebook holds.

The reference answers are read from the source notebook, between nbgrader's solution
markers; the student's cell is the released stub with the lines between the course's
code markers replaced, the way a student fills it in.
"""

import re
import subprocess
import sys
from pathlib import Path

import nbformat

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SOURCE_NOTEBOOK = PROJECT_ROOT / "C2_W2_Assignment.ipynb"
NOTEBOOK_NAME = SOURCE_NOTEBOOK.name
EXERCISES = ("UNQ_C1", "UNQ_C2")
PUBLIC_TEST_CELLS = {"UNQ_C1": "UNQ_C1_test", "UNQ_C2": "UNQ_C2_test"}

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
START_CODE, END_CODE = "### START CODE HERE ###", "### END CODE HERE ###"

# Calls that draw a figure in the lab: the helpers of autils/lab_utils_softmax and the
# notebook's own plt.subplots grids. One cell shows one figure.
FIGURE_CALLS = ("plt_act_trio(", "plt_softmax(", "plt.subplots(", "plot_loss_tf(",
                "display_digit(", "display_errors(")

# A frequent mistake: the numerators without the shared denominator.
UNNORMALISED_SOFTMAX = "a = np.exp(z)"

MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def release_student_version(out_dir):
    """`python -m grader release --out out_dir`, as an instructor makes it; the notebook path."""
    result = subprocess.run([sys.executable, "-m", "grader", "release", "--out", str(out_dir)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"grader release failed:\n{result.stdout}{result.stderr}"
    return Path(out_dir) / NOTEBOOK_NAME


def read_notebook(path):
    return nbformat.read(str(path), as_version=4)


def grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def cell_index(notebook, wanted_grade_id):
    indices = [i for i, cell in enumerate(notebook.cells) if grade_id(cell) == wanted_grade_id]
    assert len(indices) == 1, f"expected one cell {wanted_grade_id}, found {len(indices)}"
    return indices[0]


def reference_solutions():
    """{exercise: the solution lines of the source notebook}, as written there."""
    source = read_notebook(SOURCE_NOTEBOOK)
    return {exercise: _between(source.cells[cell_index(source, exercise)].source,
                               BEGIN_SOLUTION, END_SOLUTION)
            for exercise in EXERCISES}


def answered_cell(stub_source, answer_lines):
    """The stub cell with the lines between the code markers replaced by answer_lines."""
    lines = stub_source.splitlines()
    start = _marker_line(lines, START_CODE)
    end = _marker_line(lines, END_CODE)
    return "\n".join(lines[:start + 1] + list(answer_lines) + lines[end:])


def stub_answer_lines(stub_source):
    lines = stub_source.splitlines()
    return lines[_marker_line(lines, START_CODE) + 1:_marker_line(lines, END_CODE)]


def unnormalised_softmax_lines(stub_source):
    """The UNQ_C1 answer with the mistake, indented like the stub's own line."""
    stub_line = next(line for line in stub_answer_lines(stub_source) if line.strip())
    indent = stub_line[:len(stub_line) - len(stub_line.lstrip())]
    return [indent + UNNORMALISED_SOFTMAX]


def figure_cell_indices(notebook):
    return [i for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and any(call in cell.source for call in FIGURE_CALLS)]


def code_cell_count(notebook):
    return sum(cell.cell_type == "code" for cell in notebook.cells)


def markdown_headings(notebook):
    """The text of every heading of the markdown cells, in order, without markup."""
    headings = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            headings.extend(_headings_of(cell.source))
    return headings


def _headings_of(markdown):
    in_fence = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else MARKDOWN_HEADING.match(line)
        if match:
            yield re.sub(r"[*_`]", "", match.group(2)).strip()


def _between(source, begin, end):
    lines = source.splitlines()
    return lines[_marker_line(lines, begin) + 1:_marker_line(lines, end)]


def _marker_line(lines, marker):
    found = [i for i, line in enumerate(lines) if line.strip() == marker]
    assert len(found) == 1, f"expected one line {marker!r}, found {len(found)}"
    return found[0]
