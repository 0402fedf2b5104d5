"""What the notebook's text says holds: it renders and exports cleanly, and it promises only
what the code does."""

import re
from types import SimpleNamespace

import pytest

from autils import widgvis
from grader.labs.c2_w2 import LAB as lab
from tools.run_notebook import read_notebook, run_notebook

MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.DOTALL)
# Characters LaTeX reads as commands in math: `#` (macro parameter), `%` (comment).
UNESCAPED_IN_MATH = re.compile(r"(?<!\\)[#%]")
TEXT_COMMAND = re.compile(r"\\text\{([^}]*)\}")
HIDDEN_TESTS = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", re.DOTALL)


@pytest.fixture(scope="module")
def notebook():
    return read_notebook(lab.source_notebook)


def _markdown_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "markdown"]


def _cell(notebook, grade_id):
    return next(c for c in notebook.cells if c.metadata["nbgrader"]["grade_id"] == grade_id)


def test_math_exports_to_latex(notebook):
    # `\text{# ReLU function}` renders in the browser but stops a LaTeX (PDF) export.
    for cell in _markdown_cells(notebook):
        for formula in MATH.findall(cell.source):
            assert not UNESCAPED_IN_MATH.search(formula), formula
            for text in TEXT_COMMAND.findall(formula):
                assert not re.search(r"[_^&]", text), formula


def test_blockquotes_do_not_run_on(notebook):
    """Every line of a quote starts with `>`: a line without it would be pulled into the
    quote's paragraph (lazy continuation), running the note on into the next text."""
    for cell in _markdown_cells(notebook):
        in_quote = False
        for line in cell.source.splitlines():
            if line.lstrip().startswith(">"):
                in_quote = True
            elif not line.strip():
                in_quote = False
            else:
                assert not in_quote, f"quote runs on into {line!r}"


def test_text_promises_no_toolbar_the_figures_hide(notebook):
    canvas = SimpleNamespace(toolbar_visible=True, header_visible=True, footer_visible=True)
    widgvis(SimpleNamespace(canvas=canvas))
    assert canvas.toolbar_visible is False  # so no figure offers pan or zoom
    words = {word for cell in _markdown_cells(notebook)
             for word in re.findall(r"[a-z]+", cell.source.lower())}
    assert not {"pan", "zoom", "zooming", "panning"} & words


def test_exercise_2_says_why_the_input_layer_is_needed(notebook):
    position = notebook.cells.index(_cell(notebook, "UNQ_C2"))
    text = notebook.cells[position - 1].source
    assert "tf.keras.Input(shape=(400,))" in text and "get_weights()" in text


def test_a_model_without_input_passes_the_test_and_stops_at_the_weights(project_root):
    """Why exercise 2's text insists on the Input line: the public test lets the model
    through (with a note), and the cell that reads the weights then fails."""
    notebook = read_notebook(lab.source_notebook)
    weights_cell = next(c for c in notebook.cells
                        if c.cell_type == "code" and "layer1.get_weights()" in c.source)
    cells = notebook.cells[:notebook.cells.index(weights_cell) + 1]
    cells = [cell for cell in cells if cell.cell_type == "code"
             and "skip-autograde" not in cell.metadata.get("tags", [])]
    answer = _cell(notebook, "UNQ_C2")
    kept = [line for line in answer.source.splitlines() if "tf.keras.Input(" not in line]
    assert len(kept) == len(answer.source.splitlines()) - 1
    answer.source = "\n".join(kept)
    for cell in cells:  # the student's version: no hidden tests
        cell.source = HIDDEN_TESTS.sub("", cell.source)
    notebook.cells = cells
    run = run_notebook(notebook, project_root)
    test_cell = run.cell_containing("test_model(model, 10, 400)")
    assert "All tests passed!" in run.stdout(test_cell)
    assert "tf.keras.Input(shape=(400,))" in run.stdout(test_cell)
    assert [output.output_type for output in weights_cell.outputs] == ["error"]
    assert len(run.errors()) == 1
