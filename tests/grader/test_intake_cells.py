"""A submission may hold at most MAX_CELLS cells (grader/intake/notebook_file.py): each cell
costs time to validate, run, rebuild and render, in the one thread that publishes the class."""

import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.intake.notebook_file import MAX_CELLS, NotGradable, read_notebook
from grader.labs.c2_w2 import LAB as lab


def notebook_with(markdown_cells):
    answers = [new_code_cell("pass", metadata={"nbgrader": {"grade_id": exercise,
                                                            "solution": True}})
               for exercise in lab.exercise_ids]
    # Ids of their own: 20,000 random 8-hex ids collide in about one run of 20 (a warning).
    notes = [new_markdown_cell(f"note {index}", id=f"note-{index}")
             for index in range(markdown_cells)]
    return new_notebook(cells=answers + notes)


def test_a_notebook_of_20000_tiny_markdown_cells_is_invalid_at_once(tmp_path):
    path = tmp_path / lab.notebook_name
    nbformat.write(notebook_with(20_000), path)
    started = time.monotonic()
    with pytest.raises(NotGradable, match="20,002 cells, more than the 2,000 limit"):
        read_notebook(path, lab)
    assert time.monotonic() - started < 5


def test_a_notebook_at_the_limit_is_read(tmp_path):
    path = tmp_path / lab.notebook_name
    nbformat.write(notebook_with(MAX_CELLS - len(lab.exercise_ids)), path)
    notebook, _, _ = read_notebook(path, lab)
    assert len(notebook.cells) == MAX_CELLS
