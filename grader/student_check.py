"""Check my work: run the lab's notebook as the grader does and say, per exercise, whether
its public tests pass. Run it from the released folder, with the Python that runs the lab:

    python check_my_work.py C2_W2_Assignment.ipynb

Exit status 0: every exercise's public tests pass; 1: some do not; 2: the notebook cannot
be read. The hidden tests that decide the grade use other inputs: passing the public tests
is necessary, not sufficient.

This file is the grader's own check (`grader validate` reads the cells it runs with these
same functions) copied into the release as it is: it imports nothing of the grader, and
holds no test, no answer. What it needs to know of the lab (the exercises, the test cells as
released, the cells the grader skips, the time a cell may take) it reads from
check_my_work.json beside it, which the release writes.
"""

import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

SPEC_FILE = "check_my_work.json"
NOT_A_NOTEBOOK = 2
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Where IPython's traceback places the error in the cell: its first frame, the cell's own.
CELL_LINE = re.compile(r"Cell In\[\d*\], line (\d+)")
# Keras wraps errors in lines that say nothing about the mistake.
BOILERPLATE = re.compile(r"^(Exception encountered when calling|Arguments received by|•)")


@dataclass(frozen=True)
class ExerciseCheck:
    exercise: str
    title: str
    passed: bool
    messages: tuple[str, ...]


def check_exercise(exercise_id, title, answer_cell, test_cell, passed_marker):
    """The check of one exercise from its answer and test cells as they ran (dicts)."""
    stopped = answer_cell_stopped(exercise_id, answer_cell)
    if test_cell is None:
        return ExerciseCheck(exercise_id, title, False, (*stopped, "The test cell did not run."))
    printed = ANSI_ESCAPE.sub("", "".join(o.get("text", "") for o in test_cell.get("outputs", [])
                                          if o.get("output_type") == "stream"))
    errors = [error_text(output) for output in _errors(test_cell)]
    if passed_marker in printed and not errors:  # what the cell defined before it stopped passes
        return ExerciseCheck(exercise_id, title, True, stopped)
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    return ExerciseCheck(exercise_id, title, False, (*stopped, *errors, *lines[-6:]))


def answer_cell_stopped(exercise_id, cell):
    """(the sentence,) naming the error the exercise's answer cell stopped with and its
    line, or () when it ran through."""
    error = next(iter(_errors(cell or {})), None)
    if error is None:
        return ()
    return (f"The {exercise_id} cell stopped with {error_text(error)}: the test after it"
            " sees only what the cell defined before that line; fix this error first.",)


def _errors(cell):
    return [output for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def error_text(output):
    """'Name: message (line N)' of an error output; the line is the cell's."""
    text = quote(f"{output.get('ename', '')}: {output.get('evalue', '')}")
    traceback = ANSI_ESCAPE.sub("", "\n".join(str(line) for line in output.get("traceback", [])))
    line = CELL_LINE.search(traceback)
    return f"{text} (line {line.group(1)})" if line else text


def quote(text, limit=200):
    """A student's text (an error message, a name), short and on one line: no colour codes,
    no Keras wrapping."""
    text = ANSI_ESCAPE.sub("", str(text))
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not BOILERPLATE.match(line)]
    text = " ".join(" ".join(kept or lines).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def report(checks, notes=()):
    """The text the check prints."""
    lines = []
    for check in checks:
        verdict = "public tests pass" if check.passed else "public tests FAIL"
        lines.append(f"{check.exercise} ({check.title}): {verdict}")
        lines.extend(f"    {message}" for message in check.messages)
    lines.extend(f"Note: {note}" for note in notes if note)
    lines.append("The hidden tests that decide the grade use other inputs: passing the public "
                 "tests is necessary, not sufficient.")
    return "\n".join(lines)


def grade_id(cell):
    nbgrader = cell.get("metadata", {}).get("nbgrader")
    return nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None


def checks_of(ran_cells, spec):
    """One check per exercise of `spec` from the cells as they ran; the last copy of a
    cell counts, as when the student runs the notebook."""
    by_id = {grade_id(cell): cell for cell in ran_cells}
    return [check_exercise(exercise["id"], exercise["title"], by_id.get(exercise["id"]),
                           by_id.get(exercise["test_cell"]), spec["passed_marker"])
            for exercise in spec["exercises"]]


# --- The student's own run: what the grader's sandbox does, with the lab's Python --------

def prepared(notebook, spec):
    """`notebook` with its given cells (the test cells included) as released, and the cells
    the grader skips emptied, as are those after the last test cell: no check reads what
    they do, and a student's own training or plots there would cost seconds; (the
    notebook, notes)."""
    notebook = copy.deepcopy(notebook)
    given, notes = spec["given_cells"], []
    last_test = _last_test_cell(notebook.get("cells", []), spec)
    for index, cell in enumerate(notebook.get("cells", [])):
        cell["source"] = _source(cell)  # nbclient runs text, a file may hold a list of lines
        cell_id = grade_id(cell)
        if cell_id in given and _source(cell) != given[cell_id]:
            cell["source"] = given[cell_id]
            notes.append(f"the cell {cell_id} was changed: it is checked as released")
        if cell_id in spec["skipped_cells"]:
            cell["source"] = ""  # training, plots: the grader does not run them either
        if index > last_test:
            cell["source"] = ""  # no check reads it (`grader validate` skips it too)
    return notebook, notes


def _last_test_cell(cells, spec):
    """The index of the last of the exercises' test cells in `cells`; len(cells) when
    there is none (nothing is emptied for it: the checks say the test cells did not run)."""
    test_cells = {exercise["test_cell"] for exercise in spec["exercises"]}
    return max((index for index, cell in enumerate(cells) if grade_id(cell) in test_cells),
               default=len(cells))


def _source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def run(notebook, spec, folder):
    """The notebook's cells after running it in `folder` as the grader does: each cell
    within its time limit, input() an error (no stdin), errors not stopping the run."""
    import nbformat
    from nbclient import NotebookClient

    node = nbformat.from_dict(notebook)
    # Killed at the end rather than asked to shut down: a kernel holding TensorFlow takes
    # seconds to exit, and nothing of it is kept.
    client = NotebookClient(node, timeout=spec["cell_timeout"], allow_errors=True,
                            interrupt_on_timeout=True, allow_stdin=False, kernel_name="python3",
                            shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    return node.cells


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python {Path(__file__).name} NOTEBOOK.ipynb", file=sys.stderr)
        return NOT_A_NOTEBOOK
    folder = Path(__file__).resolve().parent
    spec = json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
    try:
        notebook = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        assert isinstance(notebook.get("cells"), list)
    except (OSError, ValueError, AssertionError, AttributeError) as error:
        print(f"{argv[0]}: not a notebook this check can read ({error})", file=sys.stderr)
        return NOT_A_NOTEBOOK
    notebook, notes = prepared(notebook, spec)
    checks = checks_of(run(notebook, spec, folder), spec)
    print(report(checks, notes))
    return 0 if all(check.passed for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
