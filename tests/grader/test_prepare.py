"""grader.intake.prepare: the source decides the structure, the student only the answers."""

import ast
import copy
import json

import nbformat
import pytest
from nbformat.v4 import (
    new_code_cell,
    new_markdown_cell,
    new_notebook,
    new_output,
    new_raw_cell,
)
from nbgrader.preprocessors import ClearHiddenTests

from grader.cells import grade_id, public_text, skipped
from grader.intake.prepare import SKIP_TAG, prepare

SOLUTION = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
STUB = "def f():\n    pass  # your code here\n"
HIDDEN = "### BEGIN HIDDEN TESTS\nassert f() + 41 == 42, 'hidden'\n### END HIDDEN TESTS\n"
TEST = "assert f() == 1\n" + HIDDEN + "print('public test done')\n"
PUBLIC_TEST = "assert f() == 1\nprint('public test done')\n"
SOURCE_ORDER = ["intro", "setup", "A", "A_test", "plot"]


# --- Factories ------------------------------------------------------------------------------

def nbgrader(cell_id, *, grade=False, solution=False, points=None):
    meta = {"grade_id": cell_id, "grade": grade, "solution": solution,
            "locked": not solution, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def given_markdown(cell_id="intro", text="# Softmax\nRead this first."):
    return new_markdown_cell(text, metadata=nbgrader(cell_id))


def given_code(cell_id="setup", code="x = 1", tags=()):
    metadata = nbgrader(cell_id)
    if tags:
        metadata["tags"] = list(tags)
    return new_code_cell(code, metadata=metadata)


def answer_cell(cell_id="A", code=SOLUTION):
    return new_code_cell(code, metadata=nbgrader(cell_id, solution=True))


def graded_cell(cell_id="A_test", code=TEST):
    return new_code_cell(code, metadata=nbgrader(cell_id, grade=True, points=50))




def source_notebook():
    """The instructor's notebook: solution and hidden tests in, an output left in."""
    setup = given_code("setup", "x = 1\nprint(x)")
    setup.outputs = [new_output("stream", name="stdout", text="1\n")]
    setup.execution_count = 7
    return new_notebook(
        cells=[given_markdown(), setup, answer_cell(), graded_cell(),
               given_code("plot", "plot_everything()", tags=[SKIP_TAG])],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}})


def released_cells():
    """The student's version of the source cells: stub answer, public test only."""
    cells = copy.deepcopy(source_notebook().cells)
    cells[1].outputs, cells[1].execution_count = [], None
    cells[2].source = STUB
    cells[3].source = PUBLIC_TEST
    return cells


def submitted(cells):
    """A notebook as a student's file holds it: plain JSON, sources split in lines, not
    validated (nbformat would repair duplicate cell ids on writing)."""
    cells = json.loads(json.dumps(cells))
    for cell in cells:
        cell["source"] = cell["source"].splitlines(keepends=True)
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


def student_cell(code, **metadata):
    return new_code_cell(code, metadata=metadata)


def cells_of(prepared, cell_id):
    return [cell for cell in prepared.notebook.cells if grade_id(cell) == cell_id]


def layout(prepared):
    """Each cell as its grade_id, or the start of its source for the student's own."""
    return [grade_id(cell) or cell.source[:12] for cell in prepared.notebook.cells]


def source_text(cell_id):
    return next(cell.source for cell in source_notebook().cells if grade_id(cell) == cell_id)


# --- The untouched student version ----------------------------------------------------------

def test_the_untouched_student_version_gives_the_source_structure_and_no_notes():
    prepared = prepare(submitted(released_cells()), source_notebook())
    assert layout(prepared) == SOURCE_ORDER
    assert prepared.notes == []
    assert cells_of(prepared, "A")[0].source == STUB
    assert cells_of(prepared, "A_test")[0].source == PUBLIC_TEST
    assert prepared.notebook.metadata == source_notebook().metadata
    nbformat.validate(prepared.notebook)


def test_prepare_changes_neither_the_submission_nor_the_source():
    notebook, source = submitted(released_cells()), source_notebook()
    notebook_before, source_before = copy.deepcopy(notebook), copy.deepcopy(source)
    prepare(notebook, source)
    assert notebook == notebook_before
    assert source == source_before


# --- Given and test cells come from the source ----------------------------------------------

def test_edited_given_and_test_cells_are_restored_from_the_source_without_hidden_tests():
    cells = released_cells()
    cells[0].source = "# My own title"
    cells[1].source = "x = 1000  # easier"
    cells[3].source = "print('All tests passed!')"
    cells[3].metadata["nbgrader"]["points"] = 1000
    prepared = prepare(submitted(cells), source_notebook())
    assert layout(prepared) == SOURCE_ORDER
    for cell_id in ("intro", "setup"):
        [cell] = cells_of(prepared, cell_id)
        assert cell.source == source_text(cell_id)
    [test] = cells_of(prepared, "A_test")
    assert test.source == PUBLIC_TEST
    assert test.metadata["nbgrader"]["points"] == 50


def test_no_prepared_cell_holds_the_hidden_tests():
    # The hidden tests never reach the kernel: the grader captures with the lab's own code.
    cells = released_cells()
    cells.insert(2, student_cell(HIDDEN))  # a student who pasted them in gets them as text
    prepared = prepare(submitted(cells), source_notebook())
    sources = [cell.source for cell in prepared.notebook.cells if grade_id(cell)]
    assert not any("BEGIN HIDDEN TESTS" in source for source in sources)


def test_an_edited_test_cell_is_noted():
    cells = released_cells()
    cells[3].source = "print('All tests passed!')"
    prepared = prepare(submitted(cells), source_notebook())
    assert prepared.notes == ["The test cell A_test had been edited; it was restored."]


def test_a_deleted_test_cell_is_restored_where_it_was_and_noted():
    cells = released_cells()
    del cells[3]
    prepared = prepare(submitted(cells), source_notebook())
    assert layout(prepared) == SOURCE_ORDER
    assert cells_of(prepared, "A_test")[0].source == PUBLIC_TEST
    assert prepared.notes == ["The test cell A_test had been deleted; it was restored."]


# --- Answer cells are the student's ---------------------------------------------------------

def test_the_students_answer_is_kept_with_the_source_metadata():
    cells = released_cells()
    cells[2].source = "def f():\n    return 2 - 1\n"
    cells[2].metadata["nbgrader"]["solution"] = False  # the student cannot change its role
    prepared = prepare(submitted(cells), source_notebook())
    [answer] = cells_of(prepared, "A")
    assert answer.source == "def f():\n    return 2 - 1\n"
    assert answer.metadata["nbgrader"] == source_notebook().cells[2].metadata["nbgrader"]
    assert "BEGIN SOLUTION" not in "".join(cell.source for cell in prepared.notebook.cells)


def test_a_copied_answer_cell_keeps_both_copies_in_order_so_the_later_counts():
    cells = released_cells()
    cells[2].source = "def f():\n    return 0  # first try\n"
    later = copy.deepcopy(cells[2])  # a copy keeps the metadata and even the cell id
    later.source = "def f():\n    return 1  # second try\n"
    cells.insert(3, later)
    prepared = prepare(submitted(cells), source_notebook())
    assert layout(prepared) == ["intro", "setup", "A", "A", "A_test", "plot"]
    assert [cell.source for cell in cells_of(prepared, "A")] == [
        "def f():\n    return 0  # first try\n", "def f():\n    return 1  # second try\n"]
    assert prepared.notes == []


def test_a_missing_answer_cell_is_noted_and_replaced_by_a_harmless_stub():
    cells = released_cells()
    del cells[2]
    prepared = prepare(submitted(cells), source_notebook())
    assert prepared.notes == ["The answer cell A was missing from the notebook."]
    assert layout(prepared) == SOURCE_ORDER
    [stub] = cells_of(prepared, "A")
    assert stub.cell_type == "code"
    assert ast.parse(stub.source).body == []  # only a comment: defines and runs nothing
    assert "return 1" not in stub.source  # never the reference solution


# --- The student's own cells ----------------------------------------------------------------

def test_added_cells_are_kept_after_the_source_cell_they_followed():
    cells = released_cells()
    cells.insert(0, student_cell("print('at the very start')"))
    cells.insert(3, new_markdown_cell("my notes on setup"))
    cells.insert(5, student_cell("print(f())  # try it"))
    cells.insert(6, new_raw_cell("raw scribbles"))
    cells.append(student_cell("print('at the end')"))
    prepared = prepare(submitted(cells), source_notebook())
    assert layout(prepared) == [
        "print('at th", "intro", "setup", "my notes on ", "A", "print(f())  ",
        "raw scribble", "A_test", "plot", "print('at th"]
    kinds = [cell.cell_type for cell in prepared.notebook.cells]
    assert kinds == ["code", "markdown", "code", "markdown", "code", "code", "raw", "code",
                     "code", "code"]
    assert prepared.notebook.cells[-1].source == "print('at the end')"


def test_an_added_cell_follows_its_source_cell_even_when_a_cell_before_was_deleted():
    cells = released_cells()
    del cells[1]  # setup
    cells.insert(1, student_cell("x = 5"))
    prepared = prepare(submitted(cells), source_notebook())
    assert layout(prepared) == ["intro", "x = 5", "setup", "A", "A_test", "plot"]


def test_fake_grading_metadata_on_a_students_cell_is_dropped():
    fake = student_cell("print('bonus')", nbgrader={
        "grade_id": "bonus", "grade": True, "points": 1000, "solution": False,
        "locked": True, "schema_version": 3}, grader={"skip": True}, tags=[SKIP_TAG])
    cells = released_cells()
    cells.insert(4, fake)
    prepared = prepare(submitted(cells), source_notebook())
    [kept] = [cell for cell in prepared.notebook.cells if cell.source == "print('bonus')"]
    assert "nbgrader" not in kept.metadata
    assert not skipped(kept)
    graded = [cell.metadata["nbgrader"] for cell in prepared.notebook.cells
              if cell.metadata.get("nbgrader", {}).get("grade")]
    assert [(meta["grade_id"], meta["points"]) for meta in graded] == [("A_test", 50)]


@pytest.mark.parametrize("where", ["before the real one", "instead of the real one"])
def test_a_students_cell_claiming_a_test_cells_grade_id_does_not_replace_it(where):
    claim = student_cell("print('All tests passed!')",
                         nbgrader=nbgrader("A_test", grade=True, points=50)["nbgrader"])
    cells = released_cells()
    if where == "before the real one":
        cells.insert(3, claim)
    else:
        del cells[3]
        cells.insert(0, claim)
    prepared = prepare(submitted(cells), source_notebook())
    [test] = cells_of(prepared, "A_test")
    assert test.source == PUBLIC_TEST
    assert [grade_id(cell) for cell in prepared.notebook.cells
            if cell.metadata.get("nbgrader", {}).get("grade")] == ["A_test"]
    assert layout(prepared).index("A_test") == SOURCE_ORDER.index("A_test")


# --- Skipped cells, outputs, ids -------------------------------------------------------------

def test_only_the_cells_the_source_tags_are_marked_skipped():
    cells = released_cells()
    for cell in (cells[2], cells[3]):  # the student tries to skip the answer and the test
        cell.metadata.setdefault("tags", []).append(SKIP_TAG)
        cell.metadata["grader"] = {"skip": True}
    cells[4].metadata["tags"] = []  # and to run the plot the source skips
    cells.append(student_cell("pass", tags=[SKIP_TAG]))
    prepared = prepare(submitted(cells), source_notebook())
    assert [grade_id(cell) for cell in prepared.notebook.cells if skipped(cell)] == ["plot"]


def test_outputs_and_execution_counts_are_cleared():
    cells = released_cells()
    cells.insert(3, student_cell("print('mine')"))
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs = [new_output("stream", name="stdout", text="All tests passed!\n")]
            cell.execution_count = 3
    prepared = prepare(submitted(cells), source_notebook())
    code_cells = [cell for cell in prepared.notebook.cells if cell.cell_type == "code"]
    assert len(code_cells) == 5
    for cell in code_cells:
        assert cell.outputs == [] and cell.execution_count is None


def test_cell_ids_are_unique_and_the_same_every_time():
    cells = released_cells()
    cells.insert(3, copy.deepcopy(cells[2]))  # a copy with the same id
    cells.insert(0, student_cell("x = 2"))
    notebook = submitted(cells)
    assert notebook["cells"][3]["id"] == notebook["cells"][4]["id"]
    first = prepare(copy.deepcopy(notebook), source_notebook())
    second = prepare(copy.deepcopy(notebook), source_notebook())
    ids = [cell.id for cell in first.notebook.cells]
    assert len(ids) == len(set(ids)) == 7
    assert ids == [cell.id for cell in second.notebook.cells]
    assert nbformat.writes(first.notebook) == nbformat.writes(second.notebook)
    nbformat.validate(first.notebook)


# --- public_text ----------------------------------------------------------------------------

def test_public_text_removes_exactly_the_hidden_region():
    assert public_text(TEST) == PUBLIC_TEST
    assert public_text(TEST.splitlines(keepends=True)) == PUBLIC_TEST
    assert public_text(PUBLIC_TEST) == PUBLIC_TEST
    two = "a = 1\n" + HIDDEN + "b = 2\n" + HIDDEN.replace("41", "40 + 1") + "c = 3"
    assert public_text(two) == "a = 1\nb = 2\nc = 3"


def test_public_text_is_what_nbgrader_releases():
    cell = graded_cell()
    ClearHiddenTests()._remove_hidden_test_region(cell)
    assert public_text(TEST).strip() == cell.source.strip()
