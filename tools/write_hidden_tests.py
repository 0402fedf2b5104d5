"""Write the hidden tests that plain nbgrader runs into the lab's source notebook.

They are made from the grader's own recipes (grader/labs/c2_w2/nbgrader_tests.py), so the
inputs nbgrader's autograde tests on and the ones `python -m grader` captures are the same;
a test fails when the notebook's blocks differ from what this writes. Run it after changing
the recipes or the judges' tolerances:

    .venv/bin/python tools/write_hidden_tests.py
"""

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader import cells  # noqa: E402
from grader.labs.c2_w2 import LAB  # noqa: E402
from grader.labs.c2_w2.nbgrader_tests import hidden_tests  # noqa: E402


def with_hidden_tests(notebook, blocks):
    """`notebook` whose test cells end with `blocks` (grade_id -> hidden block) instead of
    the hidden tests they had."""
    for cell in notebook.cells:
        block = blocks.get(cells.grade_id(cell))
        if block is not None:
            cell.source = cells.public_text(cell.source).rstrip("\n") + "\n" + block.rstrip("\n")
    return notebook


def main():
    path = LAB.source_notebook
    notebook = nbformat.read(str(path), as_version=4)
    text = nbformat.writes(with_hidden_tests(notebook, hidden_tests())) + "\n"
    if text != path.read_text(encoding="utf-8"):
        path.write_text(text, encoding="utf-8")
        print(f"Wrote the hidden tests into {path}")
    else:
        print(f"{path} already holds these hidden tests")


if __name__ == "__main__":
    main()
