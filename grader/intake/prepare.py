"""Make a submitted notebook ready to grade, from the source notebook as the authority.

- Given cells (locked in the source, test cells included) are taken from the source, so an
  edited or deleted test cell is restored with its hidden tests. nbgrader's own
  OverwriteCells.add_missing_cells does this only for grade cells, and fails when the cell
  before a missing one is a plain read-only cell (jupyter/nbgrader#1770), as here.
- Answer cells are the student's; a copied answer cell keeps every copy, in order, so the
  later one counts, exactly as when the student runs the notebook.
- Cells the student added always run, where the student put them. nbgrader metadata on
  them that the source does not know (a cell marked "graded, 1000 points") is dropped.
- Cells the source tags `skip-autograde` (training, plots) are marked to be skipped.
- Test cells keep only their public part: the hidden tests never reach the kernel (the
  grader captures each exercise with the lab's own code, grader.run.captures).
"""

import copy
from dataclasses import dataclass, field

import nbformat

from grader import cells
from grader.cells import GRADER_METADATA, grade_id, is_answer_cell, is_test_cell

SKIP_TAG = "skip-autograde"


@dataclass
class PreparedNotebook:
    notebook: nbformat.NotebookNode
    notes: list[str] = field(default_factory=list)


def prepare(submitted, source):
    """Rebuild `submitted` (a notebook dict) on the structure of `source` (NotebookNode)."""
    submitted_cells = submitted.get("cells", [])
    answers, added_after = _sort_submitted_cells(submitted_cells, source)
    notes = _test_cell_notes(submitted_cells, source)
    cells = list(added_after.get(None, []))
    for source_cell in source.cells:
        cells.extend(_graded_version(source_cell, answers, notes))
        cells.extend(added_after.get(grade_id(source_cell), []))
    _give_unique_ids(cells)  # before new_notebook, which validates them
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(source.metadata))
    return PreparedNotebook(notebook, notes)


def _sort_submitted_cells(cells, source):
    """Split the submission into answer cells by grade_id and added cells by anchor.

    An added cell is anchored to the last source cell before it, so it is put back after
    that cell whatever else the student moved or deleted. Whether a cell is an answer is
    decided by the source, not by the submitted metadata, which a student can change.
    """
    source_ids = {grade_id(cell) for cell in source.cells}
    answer_ids = {grade_id(cell) for cell in source.cells if is_answer_cell(cell)}
    answers, added_after, anchor = {}, {}, None
    for cell in cells:
        cell_id = grade_id(cell)
        if cell_id in answer_ids:
            answers.setdefault(cell_id, []).append(cell)
        if cell_id in source_ids:
            anchor = cell_id
        else:
            added_after.setdefault(anchor, []).append(_as_student_cell(cell))
    return answers, added_after


def _test_cell_notes(submitted_cells, source):
    """Say which test cells had been deleted or edited (both are restored)."""
    submitted = {grade_id(cell): cells.source(cell) for cell in submitted_cells}
    notes = []
    for cell in filter(is_test_cell, source.cells):
        if grade_id(cell) not in submitted:
            notes.append(f"The test cell {grade_id(cell)} had been deleted; it was restored.")
        elif submitted[grade_id(cell)].strip() != cells.public_text(cell.source).strip():
            notes.append(f"The test cell {grade_id(cell)} had been edited; it was restored.")
    return notes


def _graded_version(source_cell, answers, notes):
    """The cells that stand for one source cell in the notebook to grade."""
    if not is_answer_cell(source_cell):
        return [_fresh(source_cell)]
    copies = answers.get(grade_id(source_cell))
    if not copies:
        notes.append(f"The answer cell {grade_id(source_cell)} was missing from the notebook.")
        return [_missing_answer(source_cell)]
    return [_answer(source_cell, student_cell) for student_cell in copies]


def _fresh(source_cell):
    cell = copy.deepcopy(source_cell)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    if is_test_cell(cell):
        cell.source = cells.public_text(cell.source)
    if SKIP_TAG in cells.tags(cell):
        cell.metadata[GRADER_METADATA] = {"skip": True}
    return cell


def _answer(source_cell, student_cell):
    cell = _fresh(source_cell)
    cell.source = cells.source(student_cell)
    return cell


def _missing_answer(source_cell):
    cell = _fresh(source_cell)
    cell.source = f"# The answer cell {grade_id(source_cell)} was missing from the submission."
    return cell


def _as_student_cell(cell):
    """A cell the source does not know: the student's own, without any grading metadata."""
    kind = cell.get("cell_type")
    source = cells.source(cell)
    if kind == "code":
        return nbformat.v4.new_code_cell(source)
    if kind == "markdown":
        return nbformat.v4.new_markdown_cell(source)
    return nbformat.v4.new_raw_cell(source)


def _give_unique_ids(cells):
    # Copied cells share an id, which nbformat 4.5 forbids; numbering by position keeps
    # the result the same every time the same submission is prepared.
    for index, cell in enumerate(cells):
        cell.id = f"cell-{index:03d}"
