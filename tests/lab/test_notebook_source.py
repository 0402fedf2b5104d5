"""The source notebook: every section of the lab, and nbgrader metadata that holds up."""

import re

import pytest

from grader.labs.c2_w2 import LAB as lab
from tools.run_notebook import read_notebook

SECTIONS = [
    "1 - Importing the packages", "2 - The ReLU activation", "3 - The softmax function",
    "Exercise 1", "4 - A network for ten digits", "4.1 The task", "4.2 The data",
    "4.2.1 A first look at X and y", "4.2.2 The shapes of X and y", "4.2.3 Seeing the digits",
    "4.3 The shape of the network", "4.4 Building the model in TensorFlow",
    "4.5 Where the softmax goes", "Exercise 2", "Epochs, batches and the progress log",
    "Following the loss", "Making predictions", "Well done!",
]


@pytest.fixture(scope="module")
def notebook():
    return read_notebook(lab.source_notebook)


def _markdown(notebook):
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def _nbgrader(cell):
    return cell.metadata["nbgrader"]


def test_every_section_is_there_in_order(notebook):
    headings = [line.lstrip("#").strip() for line in _markdown(notebook).splitlines()
                if line.startswith("#")]
    positions = [next(i for i, heading in enumerate(headings) if heading.startswith(section))
                 for section in SECTIONS]
    assert positions == sorted(positions)


def test_formulas_hints_and_expected_outputs(notebook):
    markdown = _markdown(notebook)
    assert r"a = \max(0, z)" in markdown
    assert r"a_j = \frac{e^{z_j}}{ \sum_{k=0}^{N-1}{e^{z_k} }} \tag{1}" in markdown
    assert markdown.count("<details>") == markdown.count("</details>") == 4
    for summary in ["Click for hints", "Click for code", "Expected Output (Click to expand)"]:
        assert summary in markdown
    assert markdown.count("**Expected Output**") == 6
    assert "from_logits=True" in markdown and "157/157" in markdown


def test_every_image_the_text_shows_exists(notebook):
    images = re.findall(r'src="(images/[^"]+)"', _markdown(notebook))
    assert len(images) == 4
    for image in images:
        assert (lab.root / image).is_file(), image


def test_every_cell_has_a_unique_nbgrader_id(notebook):
    ids = [_nbgrader(cell)["grade_id"] for cell in notebook.cells]
    assert len(ids) == len(set(ids))


def test_only_the_two_graded_cells_are_open_to_the_student(notebook):
    open_cells = [cell for cell in notebook.cells if not _nbgrader(cell)["locked"]]
    assert [_nbgrader(cell)["grade_id"] for cell in open_cells] == list(lab.exercise_ids)
    for cell in open_cells:
        assert _nbgrader(cell)["solution"] is True
        assert cell.source.startswith(f"# {_nbgrader(cell)['grade_id']}\n# GRADED CELL")


@pytest.mark.parametrize("grade_id", lab.exercise_ids)
def test_solution_sits_inside_the_code_markers(notebook, grade_id):
    cell = next(c for c in notebook.cells if _nbgrader(c)["grade_id"] == grade_id)
    lines = [line.strip() for line in cell.source.splitlines()]
    order = [lines.index(marker) for marker in ("### START CODE HERE ###", "### BEGIN SOLUTION",
                                                "### END SOLUTION", "### END CODE HERE ###")]
    assert order == sorted(order)


@pytest.mark.parametrize("exercise", lab.exercise_ids)
def test_each_exercise_has_a_50_point_test_cell_with_hidden_tests(notebook, exercise):
    cells = [c for c in notebook.cells if _nbgrader(c)["grade"]]
    cell = next(c for c in cells if _nbgrader(c)["grade_id"] == f"{exercise}_test")
    assert _nbgrader(cell)["points"] == 50 and _nbgrader(cell)["locked"]
    hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
    # For plain nbgrader: they judge in the kernel (tests/grader/labs/ checks what).
    assert "assert " in hidden and f"_hidden_test_{exercise.lower()}()" in hidden
    assert len(cells) == len(lab.exercise_ids)


def test_public_tests_sit_in_unit_test_markers(notebook):
    for call in ["test_my_softmax(my_softmax)", "test_model(model, 10, 400)"]:
        cell = next(c for c in notebook.cells if call in c.source)
        assert re.search(rf"# BEGIN UNIT TEST\n{re.escape(call)}\n# END UNIT TEST", cell.source)


def test_source_is_committed_without_outputs(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_reproducible_seed_is_in_the_given_code(notebook):
    cell = next(c for c in notebook.cells if _nbgrader(c)["grade_id"] == "UNQ_C2")
    # tf.random.set_seed alone does not fix Keras 3's initial weights.
    assert "tf.keras.utils.set_random_seed(1234)" in cell.source.split("### START CODE HERE")[0]

