"""What one grading run shows a student is worth nothing in the next (issue 18), and no
folder can take over another student's row (ids unique across OUT).

Three batches into one OUT, beside honest students, with the sandbox on:

1. an attacker whose my_softmax walks up the capture's frames and keeps every local it
   finds (the hidden inputs, anything else there), then prints them, the kernel's
   environment and its files into its own graded notebook and feedback;
2. the attacker resubmits wrong answers, with the json.dumps patch of test_attacks.py
   handing out answers worked out from what batch 1 printed; beside it, folders named
   `honest\\right` and `VICTIM_CASE`, which made-safe or case-folded would be the ids of
   the honest `honest_right` and `victim_case` already in OUT;
3. `--regrade` of the same submissions.

The attacker must gain nothing, the secret of its grading must appear nowhere it can
read, and the honest students' rows, feedback, graded notebooks and gradebook entries
must stay exactly as they were.
"""

import csv
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys

import corpus
import nbformat
import numpy as np
import pytest

from grader.hidden_secrets import grading_secret, parse_secret_key, secret_number
from grader.intake.notebook_file import notebook_digest
from grader.judge.verdicts import judge_exercise
from grader.labs.c2_w2 import LAB as lab
from grader.labs.c2_w2.rules import lab_rules
from grader.records import ExerciseRun

NOTEBOOK = lab.notebook_name
FEEDBACK = NOTEBOOK.replace(".ipynb", ".html")
# Batch 1 grades with a repeat key, so that the test knows the attacker's secret and can
# look for it; batches 2 and 3 draw random secrets, as a class is graded.
KEY_HEX = "a77ac4e5" * 4
ATTACKER = "attacker"
HONEST = {"honest_right": (corpus.STABLE, corpus.MODEL, "100"),
          "victim_case": (corpus.STABLE, corpus.MODEL.replace("'relu'", "'sigmoid'"), "50")}
WRONG_SOFTMAX = "a = np.exp(z)   # not normalised"
WRONG_MODEL = corpus.MODEL.replace("'relu'", "'sigmoid'")

# In my_softmax: every local of every frame above it, kept when the capture calls it. All
# but the capture's docstring and bytecode (the request's base64), which would get the
# page refused for showing the hidden tests' code.
LOOTING = """
import sys as _sys, json as _json
_frame, _found = _sys._getframe(1), []
while _frame is not None:
    for _name, _value in list(_frame.f_locals.items()):
        try:
            _text = _value if isinstance(_value, str) else _json.dumps(_value)
        except Exception:
            _text = repr(_value)
        if _name != "__doc__" and "marshal" not in _text:
            _found.append([_frame.f_code.co_name, _name, _text[:20000]])
    _frame = _frame.f_back
if any(name == "inputs" for _, name, _ in _found):
    globals()["_loot"] = _found
"""
# After the test cell, so after the capture: what was found, the environment, the files.
PRINT_LOOT = """
import json, os
print("LOOT " + json.dumps(globals().get("_loot")))
print("ENV " + json.dumps(dict(os.environ)))
_files = {}
for _root, _dirs, _names in os.walk("."):
    for _name in _names:
        try:
            with open(os.path.join(_root, _name), "rb") as _file:
                _files[os.path.join(_root, _name)] = _file.read(10**6).hex()
        except OSError:
            pass
print("FILES " + json.dumps(_files))
"""
# The json.dumps patch of test_attacks.py, for my_softmax's answer only.
PATCHED_DUMPS = """
import json
_forged, _real_dumps = FORGED, json.dumps
def _dumps(value, *args, **kwargs):
    if isinstance(value, dict) and "cases" in value:
        return _forged
    return _real_dumps(value, *args, **kwargs)
json.dumps = _dumps
"""


def _cell(notebook, grade_id):
    return next(cell for cell in notebook.cells
                if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _after(notebook, grade_id, source):
    index = notebook.cells.index(_cell(notebook, grade_id)) + 1
    notebook.cells.insert(index, nbformat.v4.new_code_cell(source))
    return notebook


def _looting(release, softmax, forged=None):
    notebook = corpus.answered(release, LOOTING + softmax, WRONG_MODEL)
    _after(notebook, "UNQ_C1_test", PRINT_LOOT)
    if forged is not None:
        _after(notebook, "code_import_numpy_as_np",
               PATCHED_DUMPS.replace("FORGED", repr(json.dumps(forged))))
    return notebook


def _write(path, notebook):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))


def _autograde(submissions, out, *options):
    result = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
         "--workers", "2", "--cell-timeout", "20", *options],
        capture_output=True, text=True, cwd=lab.root, timeout=900)
    assert result.returncode == 0, result.stderr
    return result


def _printed(out, student, label):
    """What the graded notebook's outputs say after `label ` (printed by PRINT_LOOT)."""
    text = "".join(output.get("text", "") for cell in _graded_notebook(out, student).cells
                   for output in cell.get("outputs", []))
    line = next(line for line in text.splitlines() if line.startswith(label + " "))
    return json.loads(line[len(label) + 1:])


def _graded_notebook(out, student):
    return nbformat.read(str(_graded_path(out, student)), as_version=4)


def _graded_path(out, student):
    return out / "nbgrader" / "autograded" / student / lab.assignment / NOTEBOOK


def _rows(out):
    with (out / "grades.csv").open(newline="") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


def _gradebook(out, student):
    """The student's submission and grades as nbgrader's gradebook holds them."""
    with sqlite3.connect(out / "gradebook.db") as db:
        return sorted(db.execute(
            "SELECT sa.id, sa.timestamp, g.cell_id, g.auto_score, g.manual_score"
            " FROM submitted_assignment sa"
            " JOIN submitted_notebook sn ON sn.assignment_id = sa.id"
            " JOIN grade g ON g.notebook_id = sn.id WHERE sa.student_id = ?", (student,)))


def _honest_outputs(out):
    return {student: (_rows(out)[student], (out / "feedback" / student / FEEDBACK).read_bytes(),
                      _graded_path(out, student).read_bytes(), _gradebook(out, student))
            for student in HONEST}


def _inputs_seen(loot):
    """The hidden inputs my_softmax saw: capture_softmax's local `inputs`."""
    return next(json.loads(text) for function, name, text in loot
                if function == "capture_softmax" and name == "inputs")


def _forged_from(loot):
    """The answer line that would score full marks on the inputs seen."""
    return {"cases": [{"z": z, "a": lab_rules.reference_softmax(np.array(z)).tolist()}
                      for z in _inputs_seen(loot)]}


def _suffixed(base, folder_name):
    return f"{base}-{hashlib.sha256(folder_name.encode()).hexdigest()[:6]}"


@pytest.fixture(scope="module")
def batches(released_lab, tmp_path_factory, sandbox_required):
    release = nbformat.read(str(released_lab / NOTEBOOK), as_version=4)
    root = tmp_path_factory.mktemp("secrets")
    first, second, out = root / "first", root / "second", root / "out"
    for student, (softmax, model, _) in HONEST.items():
        _write(first / student / NOTEBOOK, corpus.answered(release, softmax, model))
    _write(first / ATTACKER / NOTEBOOK, _looting(release, corpus.STABLE))
    _autograde(first, out, "--secret-key", KEY_HEX)
    state = {"first": _honest_outputs(out), "rows_first": _rows(out),
             "loot_first": _printed(out, ATTACKER, "LOOT"),
             "env_first": _printed(out, ATTACKER, "ENV"),
             "files_first": _printed(out, ATTACKER, "FILES"),
             "feedback_first": (out / "feedback" / ATTACKER / FEEDBACK).read_text(),
             "notebook_first": _graded_path(out, ATTACKER).read_text(),
             "verdicts_first": (out / "verdicts.json").read_text(),
             "secret_first": grading_secret(
                 parse_secret_key(KEY_HEX), student_id=ATTACKER,
                 digest=notebook_digest(first / ATTACKER / NOTEBOOK), attempt=0)}
    forged = _forged_from(state["loot_first"])
    state["forged"] = forged
    for student in HONEST:  # the same files: kept, not graded again
        shutil.copytree(first / student, second / student)
    _write(second / ATTACKER / NOTEBOOK, _looting(release, WRONG_SOFTMAX, forged))
    for intruder in ("honest\\right", "VICTIM_CASE"):
        _write(second / intruder / NOTEBOOK, corpus.answered(release, WRONG_SOFTMAX,
                                                             WRONG_MODEL))
    _autograde(second, out)
    state.update(second=_honest_outputs(out), rows_second=_rows(out),
                 loot_second=_printed(out, ATTACKER, "LOOT"))
    _autograde(second, out, "--regrade")
    state.update(rows_regraded=_rows(out), loot_regraded=_printed(out, ATTACKER, "LOOT"),
                 run=json.loads((out / "run.json").read_text()))
    return state


def test_the_batches_ran_in_the_sandbox(batches):
    assert batches["run"]["sandbox"] == "namespaces+cgroups"
    assert "fresh random 128-bit secret" in batches["run"]["hidden_inputs"]


def test_the_attacker_saw_its_runs_hidden_inputs_and_its_forgery_would_take_them(batches):
    # So that the attack proves something: what batch 1 printed are the inputs it was
    # graded on, and judged on that grading's secret the forged answer scores full marks.
    seen = _inputs_seen(batches["loot_first"])
    assert len(seen) == 15 and all(isinstance(z, list) for z in seen)
    run = ExerciseRun("UNQ_C1", batches["forged"])
    assert judge_exercise(lab, lab.exercise("UNQ_C1"), run, batches["secret_first"]).full_marks


def test_the_attacker_gains_nothing_from_what_it_saw(batches):
    assert batches["rows_first"][ATTACKER]["UNQ_C1"] == "50"  # right, and looting
    for rows in ("rows_second", "rows_regraded"):
        row = batches[rows][ATTACKER]
        assert (row["UNQ_C1"], row["UNQ_C2"], row["score"]) == ("0", "0", "0"), (rows, row)


def test_every_grading_sends_other_inputs(batches):
    gradings = [_inputs_seen(batches[loot])
                for loot in ("loot_first", "loot_second", "loot_regraded")]
    assert gradings[0] != gradings[1] and gradings[1] != gradings[2] \
        and gradings[0] != gradings[2]


def test_no_secret_is_anywhere_the_kernel_can_reach(batches):
    secret = batches["secret_first"]
    forms = (secret.hex(), secret.hex().upper(), str(secret_number(secret)), repr(secret))
    reachable = {"frames": json.dumps(batches["loot_first"]),
                 "environment": json.dumps(batches["env_first"]),
                 "files": json.dumps(batches["files_first"]),
                 "feedback": batches["feedback_first"],
                 "graded notebook": batches["notebook_first"],
                 "verdicts": batches["verdicts_first"]}
    for where, text in reachable.items():
        for form in forms:
            assert form not in text, where
    names = {name.lower() for _, name, _ in batches["loot_first"]}
    assert not {name for name in names if "secret" in name or "seed" in name}, names


def test_the_honest_students_rows_are_exact_in_every_batch(batches):
    for rows in ("rows_first", "rows_second", "rows_regraded"):
        for student, (_, _, score) in HONEST.items():
            row = batches[rows][student]
            assert (row["score"], row["status"]) == (score, "graded"), (rows, row)


def test_intruding_folders_leave_the_honest_students_untouched(batches):
    assert all(gradebook for *_, gradebook in batches["first"].values())
    assert batches["second"] == batches["first"]  # rows, feedback, notebooks, gradebook


def test_intruding_folders_get_ids_of_their_own(batches):
    rows = batches["rows_second"]
    made_safe, case_folded = (_suffixed("honest_right", "honest\\right"),
                              _suffixed("VICTIM_CASE", "VICTIM_CASE"))
    assert set(rows) == {*HONEST, ATTACKER, made_safe, case_folded}
    assert rows[made_safe]["status"] == "invalid"
    assert "path separator" in rows[made_safe]["detail"]
    assert (rows[case_folded]["status"], rows[case_folded]["score"]) == ("graded", "0")
    assert "letter case" in rows[case_folded]["detail"]
    assert set(batches["rows_regraded"]) == set(rows)  # the same folders, the same ids
