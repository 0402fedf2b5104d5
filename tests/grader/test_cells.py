"""grader.cells: a cell's grading metadata, read safely whatever JSON a student's file holds."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader import cells
from grader.intake.prepare import prepare
from grader.labs.c2_w2 import LAB

ODD_METADATA = [None, "UNQ_C1", ["UNQ_C1"], 3, True, {"grade_id": None},
                {"grade_id": ["UNQ_C1"]}, {"solution": "yes", "grade": 1, "points": "50"}]


@pytest.mark.parametrize("odd", ODD_METADATA)
def test_odd_nbgrader_metadata_reads_as_no_grading_metadata(odd):
    cell = {"cell_type": "code", "metadata": {"nbgrader": odd}, "source": "x = 1"}
    assert cells.grade_id(cell) is None
    assert not cells.is_answer_cell(cell) and not cells.is_test_cell(cell)
    assert cells.points(cell) == 0.0


@pytest.mark.parametrize("metadata", [None, "x", [1, 2], 7])
def test_odd_cell_metadata_reads_as_empty(metadata):
    cell = {"cell_type": "code", "metadata": metadata, "source": ["a", "b"]}
    assert cells.metadata(cell) == {} and cells.nbgrader(cell) == {}
    assert cells.tags(cell) == [] and not cells.skipped(cell)
    assert cells.source(cell) == "ab"


def test_a_cell_that_is_not_a_dict_has_no_metadata():
    for cell in (None, "cell", [], 3):
        assert cells.grade_id(cell) is None and cells.source(cell) == ""


@pytest.mark.parametrize("odd", ODD_METADATA)
def test_prepare_keeps_a_cell_with_odd_metadata_as_the_students_own(odd):
    # nbformat's schema allows any metadata: `"nbgrader": null` must not stop the batch.
    released = nbformat.from_dict(LAB.source)
    odd_cell = new_code_cell("print('mine')", metadata={"nbgrader": odd})
    notebook = new_notebook(cells=[*released.cells[:3], odd_cell, *released.cells[3:]])
    prepared = prepare(nbformat.from_dict(notebook), LAB.source)
    mine = [cell for cell in prepared.notebook.cells if cell.source == "print('mine')"]
    assert len(mine) == 1 and "nbgrader" not in mine[0].metadata


def test_public_and_hidden_text_split_a_test_cell():
    source = "a = 1\n### BEGIN HIDDEN TESTS\nassert a\n### END HIDDEN TESTS\nprint(a)\n"
    assert cells.public_text(source) == "a = 1\nprint(a)\n"
    assert cells.hidden_text(source) == "### BEGIN HIDDEN TESTS\nassert a\n### END HIDDEN TESTS\n"
