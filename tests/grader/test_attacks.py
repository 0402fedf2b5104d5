"""Attacks on the grader, graded in one batch beside honest students.

A clever student controls the kernel their notebook runs in. The grader's answer: the hidden
tests decide nothing there; they only print data (what my_softmax returns on inputs the
student never saw, what the model is and computes), and the verdict is made in the
coordinating process from that data. Given and test cells come from the source notebook,
and grading metadata a student gives their own cells is dropped. So each attack below must
earn exactly what its honest part earns, and must not disturb the honest students graded
in the same batch, nor leave a process behind.

Attacks on the machine itself (reading or writing what is not theirs, the network,
escaping the sandbox, exhausting memory, floods of output) are in test_sandbox_attacks.py.
"""

import csv
import json
import os
import subprocess
import sys
import time
import uuid
from itertools import pairwise
from pathlib import Path

import corpus
import nbformat
import numpy as np
import psutil
import pytest

from grader.intake.prepare import prepare
from grader.judge.verdicts import judge_exercise, judge_outcome
from grader.labs.c2_w2 import LAB as lab
from grader.labs.c2_w2.hidden_inputs import model_batch, softmax_inputs
from grader.labs.c2_w2.rules import lab_rules
from grader.records import ExerciseRun
from grader.run.captures import CapturePlan
from grader.run.sandbox import run_notebook
from grader.settings import Limits

NOTEBOOK = lab.notebook_name
CSV_COLUMNS = ["student_id", "UNQ_C1", "UNQ_C2", "score", "max_score", "status", "detail"]
CELL_TIMEOUT = 8
# In the batch's environment, so every process it starts carries it: other grading on the
# same machine (another test run) is not mistaken for ours.
# NBGRADER_ variables are among the few a confined kernel keeps from the grader's environment.
MARK = "NBGRADER_ATTACK_BATCH"
BATCH = uuid.uuid4().hex

WRONG_SOFTMAX = "a = np.exp(z)   # not normalised"
WRONG_MODEL = corpus.MODEL.replace("'relu'", "'sigmoid'")
RAISING_SOFTMAX = corpus.ANSWERS["wrong-softmax-raises"][0]  # a NameError in every call
FAKE_PASS = 'print("\\x1b[92mAll tests passed!\\x1b[0m")'
# A grading secret the forged answers are worked out for, as if a student had learnt it:
# the grader draws a fresh one for every grading, so it is never this one.
KNOWN_SECRET = bytes(16)


# ---------------------------------------------------------------- notebook surgery

def _cell(notebook, grade_id):
    return next(c for c in notebook.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _after(notebook, grade_id, *cells):
    """Put `cells` (sources or cells) right after the cell `grade_id`, as a student would."""
    index = notebook.cells.index(_cell(notebook, grade_id)) + 1
    cells = [nbformat.v4.new_code_cell(c) if isinstance(c, str) else c for c in cells]
    notebook.cells[index:index] = cells
    return notebook


def _append_to(notebook, grade_id, code):
    """Code after the function or model in an answer cell: a graded cell may hold anything."""
    cell = _cell(notebook, grade_id)
    cell.source = cell.source.rstrip("\n") + "\n\n" + code.strip("\n") + "\n"
    return notebook


def _copy(cell, **changes):
    copied = nbformat.from_dict(json.loads(json.dumps(cell)))
    copied.id = uuid.uuid4().hex[:8]
    for key, value in changes.items():
        copied[key] = value
    return copied


# ---------------------------------------------------------------- 1. rebinding

REBIND_SOFTMAX_TESTS = f"""
np.allclose = lambda *a, **k: True
np.isclose = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
tf.nn.softmax = lambda z: my_softmax(z)
def test_my_softmax(target):
    {FAKE_PASS}
    return True
"""
REBIND_MODEL_TESTS = f"""
import public_tests
def test_model(*args, **kwargs):
    {FAKE_PASS}
    return True
public_tests.test_model = test_model
public_tests.test_my_softmax = test_model
"""


def rebind_in_graded_cells(release):
    notebook = corpus.answered(release, WRONG_SOFTMAX, WRONG_MODEL)
    _append_to(notebook, "UNQ_C1", REBIND_SOFTMAX_TESTS)
    return _append_to(notebook, "UNQ_C2", REBIND_MODEL_TESTS)


def rebind_in_extra_cell(release):
    notebook = corpus.answered(release, WRONG_SOFTMAX, corpus.MODEL)
    return _after(notebook, "code_import_numpy_as_np", REBIND_SOFTMAX_TESTS + REBIND_MODEL_TESTS)


# ---------------------------------------------------------------- 2. swallowing failures

SWALLOW = """
import sys
get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)
sys.excepthook = lambda *a: None
print = lambda *a, **k: None
"""
EXIT = "import sys\nsys.exit()"


def swallowing(softmax, model):
    def build(release):
        notebook = corpus.answered(release, softmax, model)
        _after(notebook, "code_import_numpy_as_np", SWALLOW)
        _after(notebook, "UNQ_C1", EXIT)
        return _after(notebook, "UNQ_C1_test", EXIT)
    return build


# ---------------------------------------------------------------- 3. forged objects

# The real network has sigmoid hidden layers; its `layers` claim Dense(25/15/10) with ReLU
# and hand out the real weights, so units, activations, shapes and counts all look right.
FORGED_LAYERS_MODEL = """
# UNQ_C2
tf.keras.utils.set_random_seed(1234)
from tensorflow.keras.activations import linear, relu
real = Sequential([tf.keras.Input(shape=(400,)), Dense(25, activation='sigmoid', name="L1"),
                   Dense(15, activation='sigmoid', name="L2"), Dense(10, name="L3")])

def _claim(units, activation, layer):
    fake = type("Dense", (), {})()   # named Dense, like the real class
    fake.units, fake.activation, fake.use_bias, fake.name = units, activation, True, layer.name
    fake.get_weights = layer.get_weights
    fake.count_params = layer.count_params
    return fake

class ForgedSequential(Sequential):
    @property
    def layers(self):
        real_layers = [layer for layer in self._layers if type(layer).__name__ == "Dense"]
        return [_claim(units, activation, layer) for units, activation, layer
                in zip((25, 15, 10), (relu, relu, linear), real_layers)]

real.__class__ = ForgedSequential
model = real
"""
LYING_COUNT_MODEL = """
# UNQ_C2
tf.keras.utils.set_random_seed(1234)
class LyingSequential(Sequential):
    def count_params(self):
        return 10_415   # what the right model has
model = LyingSequential([tf.keras.Input(shape=(400,)), Dense(20, activation='relu'),
                         Dense(15, activation='relu'), Dense(10, activation='linear')])
"""
# An ndarray of the wrong values that says it equals anything.
LYING_ARRAY_SOFTMAX = """
class Liar(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(self), dtype=bool)
    __ne__ = lambda self, other: np.zeros(np.shape(self), dtype=bool)
    __hash__ = None
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return np.True_   # isclose, allclose, equal: all "True"
a = np.exp(z).view(Liar)
"""
# Not an array at all: equal to anything, and garbage (uniform, sums to 1) when converted.
ARRAY_PROTOCOL_SOFTMAX = """
class Claim:
    def __init__(self, n):
        self.n = n
    def __array__(self, dtype=None, copy=None):
        return np.full(self.n, 1.0 / self.n, dtype=dtype)
    def __eq__(self, other):
        return True
    def __len__(self):
        return self.n
    __hash__ = None
a = Claim(len(z))
"""


def forged_layers(release):
    notebook = corpus.answered(release, corpus.STABLE)
    _cell(notebook, "UNQ_C2").source = FORGED_LAYERS_MODEL
    return notebook


def lying_count_params(release):
    notebook = corpus.answered(release, corpus.STABLE)
    _cell(notebook, "UNQ_C2").source = LYING_COUNT_MODEL
    return notebook


# ---------------------------------------------------------------- 4. editing the notebook

GRADE_METADATA = {"grade": True, "solution": False, "locked": False, "points": 1000,
                  "schema_version": 3, "task": False}


def edited_notebook(softmax, model):
    def build(release):
        notebook = corpus.answered(release, softmax, model)
        answer_c1 = _cell(notebook, "UNQ_C1")
        answer_copy = _copy(answer_c1)  # a second UNQ_C1, marked as worth 1000 points
        answer_copy.metadata.nbgrader.update(grade=True, points=1000)
        _after(notebook, "UNQ_C1", answer_copy)
        test_c1 = _cell(notebook, "UNQ_C1_test")
        duplicate = _copy(test_c1, source=FAKE_PASS)  # a second UNQ_C1_test, 1000 points
        test_c1.source = ""
        test_c1.metadata.nbgrader["points"] = 1000
        duplicate.metadata.nbgrader["points"] = 1000
        _after(notebook, "UNQ_C1_test", duplicate)
        notebook.cells.remove(_cell(notebook, "UNQ_C2_test"))
        bonus = nbformat.v4.new_code_cell(FAKE_PASS, metadata={
            "nbgrader": {**GRADE_METADATA, "grade_id": "bonus"}})
        bonus_answer = nbformat.v4.new_code_cell("x = 1", metadata={
            "nbgrader": {**GRADE_METADATA, "solution": True, "grade_id": "bonus_answer"}})
        return _after(notebook, "UNQ_C2", bonus, bonus_answer)
    return build


# ---------------------------------------------------------------- 5. forged answer lines

def forged_answer_lines():
    """Answer lines that would earn full marks if the grader took them: the hidden inputs
    with their true softmax, and a right network described with its own forward pass."""
    softmax = {"cases": [{"z": z.tolist(), "a": lab_rules.reference_softmax(z).tolist()}
                         for _, z in softmax_inputs(KNOWN_SECRET)]}
    rng = np.random.default_rng(7)
    sizes, layers = (400, 25, 15, 10), []
    values = model_batch(KNOWN_SECRET).astype(float)
    probe_input = np.array([lab_rules.ACTIVATION_PROBE])
    for index, (n_in, n_out) in enumerate(pairwise(sizes)):
        kernel = np.round(rng.normal(0.0, 0.1, (n_in, n_out)), 3)
        bias = np.round(rng.normal(0.0, 0.1, n_out), 3)
        values = values @ kernel + bias
        hidden = index < 2
        values = np.maximum(values, 0.0) if hidden else values
        probe = np.maximum(probe_input, 0.0) if hidden else probe_input
        layers.append({"class": "Dense", "name": f"L{index + 1}", "units": n_out,
                       "use_bias": True, "weights": [kernel.tolist(), bias.tolist()],
                       "activation_probe": probe.astype(float).tolist()})
    model = {"type": "Sequential", "forward": values.tolist(), "layers": layers}
    return {"UNQ_C1": softmax, "UNQ_C2": model}


# my_softmax is wrong, and after each call prints the line the hidden test would print for
# the last 9 inputs it was given with their true softmax: after the hidden test's 9th call,
# exactly the right answer line, in the test cell itself.
PRINTING_SOFTMAX = """
import json
seen = globals().setdefault("_seen", [])
seen.append([float(v) for v in z])
cases = [{"z": s, "a": (np.exp(np.array(s) - max(s)) / np.exp(np.array(s) - max(s)).sum()).tolist()}
         for s in seen[-9:]]
print("\\n__GRADER_ANSWER__ UNQ_C1 " + json.dumps({"cases": cases}))
a = np.exp(z)
"""


def forged_lines(release):
    lines = {exercise: f'print("\\n__GRADER_ANSWER__ {exercise} " + {json.dumps(answer)!r})'
             for exercise, answer in forged_answer_lines().items()}
    notebook = corpus.answered(release, PRINTING_SOFTMAX, WRONG_MODEL)
    _after(notebook, "UNQ_C1", lines["UNQ_C1"])
    _after(notebook, "UNQ_C1_test", lines["UNQ_C1"])
    _after(notebook, "UNQ_C2", lines["UNQ_C2"])
    return _after(notebook, "UNQ_C2_test", lines["UNQ_C2"], lines["UNQ_C1"])


def _rewriting(hook):
    """Wrong answers, and a cell before the tests that makes `hook` rewrite every answer
    line on its way out into one worked out in advance (for KNOWN_SECRET's inputs)."""
    def build(release):
        forged = json.dumps({exercise: json.dumps(answer)
                             for exercise, answer in forged_answer_lines().items()})
        notebook = corpus.answered(release, WRONG_SOFTMAX, WRONG_MODEL)
        return _after(notebook, "code_import_numpy_as_np", hook.replace("FORGED", repr(forged)))
    return build


# Knows the capture's protocol: its answer line goes out through sys.stdout, marked by a
# nonce, with the answer's JSON after it.
PATCHED_STDOUT = """
import json, sys
_forged, _stdout = json.loads(FORGED), sys.stdout
class _Rewriting:
    def __getattr__(self, name):
        return getattr(_stdout, name)
    def write(self, text):
        if text.lstrip().startswith("__GRADER_ANSWER__ "):
            marker, nonce, answer = text.strip().split(" ", 2)
            exercise = "UNQ_C1" if '"cases"' in answer else "UNQ_C2"
            text = "\\n" + " ".join([marker, nonce, _forged[exercise]]) + "\\n"
        return _stdout.write(text)
sys.stdout = _Rewriting()
"""
PATCHED_DUMPS = """
import json
_forged, _real_dumps = json.loads(FORGED), json.dumps
def _dumps(value, *args, **kwargs):
    if isinstance(value, dict) and "cases" in value:
        return _forged["UNQ_C1"]
    if isinstance(value, dict) and "layers" in value:
        return _forged["UNQ_C2"]
    return _real_dumps(value, *args, **kwargs)
json.dumps = _dumps
"""


# ---------------------------------------------------------------- 6.-8. hangs, exits, processes

SLEEPING_SOFTMAX = "import time\ntime.sleep(10**6)\n" + corpus.STABLE
SPAWN = f"""
import os, subprocess
children = [subprocess.Popen(["sleep", "600"]),
            subprocess.Popen(["sleep", "600"], start_new_session=True)]
print("SPAWNED", *[child.pid for child in children], "MARK", os.environ.get("{MARK}"))
"""


def honest_with(*extra):
    """Right answers, with `extra` cells: (grade_id to put them after, source)."""
    def build(release):
        notebook = corpus.answered(release, corpus.STABLE, corpus.MODEL)
        for grade_id, source in extra:
            _after(notebook, grade_id, source)
        return notebook
    return build


def answers(softmax, model):
    return lambda release: corpus.answered(release, softmax, model)


# ---------------------------------------------------------------- the class

TIME_LIMIT = "ran past the time limit for one cell"
KERNEL_STOPPED = "kernel stopped"

# student -> (how to build the notebook, UNQ_C1, UNQ_C2, status, detail contains)
CLASS = {
    # Honest students: their points must not depend on who sits next to them.
    "honest-full-stable": (answers(corpus.STABLE, corpus.MODEL), 50, 50, "graded", ""),
    "honest-full-loop": (answers(corpus.LOOP, corpus.MODEL), 50, 50, "graded", ""),
    "honest-softmax-only": (answers(corpus.STABLE, WRONG_MODEL), 50, 0, "graded", ""),
    # 1. The capture runs in a namespace of its own, and the verdicts in another process:
    # the wrong answers are recorded as they are.
    "attack-rebind-in-graded-cells": (rebind_in_graded_cells, 0, 0, "graded", ""),
    "attack-rebind-in-extra-cell": (rebind_in_extra_cell, 0, 50, "graded", ""),
    # 2. Nothing needs an error to be seen or a print to work: the capture is a request of
    # its own after the test cell, and a swallowed error or a SystemExit stops only its cell.
    "attack-swallow-wrong-answers": (swallowing(RAISING_SOFTMAX, WRONG_MODEL), 0, 0, "graded",
                                     ""),
    "attack-swallow-right-answers": (swallowing(corpus.STABLE, corpus.MODEL), 50, 50, "graded",
                                     ""),
    # 3. The verdict recomputes the forward pass from the weights the layers hand out: a
    # sigmoid network behind ReLU-claiming layers gives other outputs. count_params is never
    # asked. Answers are converted with numpy.asarray, which reads the values, not __eq__.
    "attack-forged-layers": (forged_layers, 50, 0, "graded", ""),
    "attack-lying-count-params": (lying_count_params, 50, 0, "graded", ""),
    "attack-lying-array-softmax": (answers(LYING_ARRAY_SOFTMAX, corpus.MODEL), 0, 50, "graded",
                                   ""),
    "attack-array-protocol-softmax": (answers(ARRAY_PROTOCOL_SOFTMAX, corpus.MODEL), 0, 50,
                                      "graded", ""),
    # 4. Test cells are restored from the source with their 50 points; a student's own
    # cells lose their grading metadata; a copied test cell is not the student's to add.
    "attack-notebook-edits-wrong-answers": (edited_notebook(WRONG_SOFTMAX, WRONG_MODEL), 0, 0,
                                            "graded", "had been edited"),
    "attack-notebook-edits-right-answers": (edited_notebook(corpus.STABLE, corpus.MODEL), 50,
                                            50, "graded", "had been deleted"),
    # 5. Only the capture's own output is read, and only a line with its nonce, new for each
    # capture: lines printed by the student's cells, or the old format, count for nothing.
    "attack-forged-answer-lines": (forged_lines, 0, 0, "graded", ""),
    # The capture's own sys.stdout and json.dumps rewritten to hand out answers worked out
    # in advance: the hidden inputs come from a secret drawn for each grading, so answers
    # for any other inputs earn nothing.
    "attack-patched-stdout": (_rewriting(PATCHED_STDOUT), 0, 0, "graded", ""),
    "attack-patched-json-dumps": (_rewriting(PATCHED_DUMPS), 0, 0, "graded", ""),
    # 6. The per-cell timeout interrupts the hang; the rest of the notebook still runs.
    "attack-hang-sleep-in-softmax": (answers(SLEEPING_SOFTMAX, corpus.MODEL), 0, 50, "graded",
                                     TIME_LIMIT),
    "attack-hang-loop-in-extra-cell": (honest_with(("UNQ_C1", "while True:\n    pass")), 50,
                                       50, "graded", TIME_LIMIT),
    # 7. UNQ_C1's answer was captured before the kernel ended; UNQ_C2's test never ran.
    "attack-exit-after-first-test": (honest_with(("UNQ_C1_test", "import os\nos._exit(0)")), 50,
                                     0, "error", KERNEL_STOPPED),
    # 8. Honest answers; the processes it starts are killed with the kernel.
    "attack-spawn-processes": (honest_with(("UNQ_C2", SPAWN)), 50, 50, "graded", ""),
}


def _write(path, notebook):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))


def _ours(process, started, submissions):
    """Whether `process` was started by the batch (it carries the batch's mark)."""
    try:
        if process.create_time() < started - 1:
            return False
        cmdline = " ".join(process.cmdline())
        if str(submissions) in cmdline:
            return True
        return process.environ().get(MARK) == BATCH and any(
            word in cmdline for word in ("ipykernel", "grader", "sleep"))
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False


def _leftovers(started, submissions):
    me = {psutil.Process().pid, *(parent.pid for parent in psutil.Process().parents())}
    return [process for process in psutil.process_iter()
            if process.pid not in me and _ours(process, started, submissions)]


@pytest.fixture(scope="module")
def graded(released_lab, tmp_path_factory):
    started = time.time()
    release = nbformat.read(str(released_lab / NOTEBOOK), as_version=4)
    submissions = tmp_path_factory.mktemp("attacks") / "submissions"
    for student, (build, *_) in CLASS.items():
        _write(submissions / student / NOTEBOOK, build(release))
    out = submissions.parent / "out"
    result = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
         "--workers", "2", "--cell-timeout", str(CELL_TIMEOUT), "--timeout", "120"],
        capture_output=True, text=True, cwd=lab.root, timeout=600,
        env={**os.environ, MARK: BATCH})
    # A template process may take a moment to see its worker gone and end.
    deadline = time.monotonic() + 10
    while (left := _leftovers(started, submissions)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return out, result, left


def _rows(out):
    with (out / "grades.csv").open(newline="") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == CSV_COLUMNS  # no "bonus" column, ever
        return {row["student_id"]: row for row in reader}


def _autograded(out, student):
    path = out / "nbgrader" / "autograded" / student / lab.assignment / NOTEBOOK
    return nbformat.read(str(path), as_version=4)


def test_the_batch_finishes(graded):
    _, result, _ = graded
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("student", sorted(CLASS))
def test_each_student_gets_exactly_their_honest_points(graded, student):
    out, _, _ = graded
    _, c1, c2, status, detail = CLASS[student]
    row = _rows(out)[student]
    assert [row["UNQ_C1"], row["UNQ_C2"], row["score"], row["max_score"], row["status"]] == \
        [str(c1), str(c2), str(c1 + c2), "100", status], row
    assert detail in row["detail"], row


@pytest.mark.usefixtures("sandbox_required")
def test_the_batch_ran_in_the_sandbox(graded):
    # These attacks would be answered without it too; CI grades them as it grades a class.
    out, _, _ = graded
    assert json.loads((out / "run.json").read_text())["sandbox"] == "namespaces+cgroups"


def test_every_student_is_one_row(graded):
    out, _, _ = graded
    assert sorted(_rows(out)) == sorted(CLASS)


def test_every_student_gets_feedback_without_hidden_tests(graded):
    out, _, _ = graded
    for student in CLASS:
        page = (out / "feedback" / student / NOTEBOOK.replace(".ipynb", ".html")).read_text()
        for secret in ("HIDDEN TESTS", "_hidden_test", *lab.hidden_source_lines()):
            assert secret not in page, (student, secret)


def test_the_forged_lines_would_have_earned_full_marks(graded):
    # So that the forged-lines attack proves something: taken, they would score 100.
    for exercise, answer in forged_answer_lines().items():
        run = ExerciseRun(exercise, answer)
        assert judge_exercise(lab, lab.exercise(exercise), run, KNOWN_SECRET).full_marks, \
            exercise


def test_no_grade_cell_of_the_students_own_reaches_the_gradebook(graded):
    out, _, _ = graded
    for student in ("attack-notebook-edits-wrong-answers", "attack-notebook-edits-right-answers"):
        grade_cells = {cell.metadata["nbgrader"]["grade_id"]: cell.metadata["nbgrader"]
                       for cell in _autograded(out, student).cells
                       if cell.metadata.get("nbgrader", {}).get("grade")}
        assert sorted(grade_cells) == ["UNQ_C1_test", "UNQ_C2_test"], student
        assert [cell["points"] for cell in grade_cells.values()] == [50, 50], student
    exported = out / "export.csv"
    subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(exported)],
                   cwd=out / "nbgrader", check=True, capture_output=True,
                   env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    with exported.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert rows and all(float(row["max_score"]) == 100 for row in rows)
    assert all(float(row["score"]) <= 100 for row in rows)


def test_no_process_started_by_the_batch_is_left(graded):
    out, _, left = graded
    assert not left, [(p.pid, p.cmdline()) for p in left if p.is_running()]
    outputs = "".join(output.get("text", "")
                      for cell in _autograded(out, "attack-spawn-processes").cells
                      for output in cell.get("outputs", []))
    words = outputs.split("SPAWNED", 1)[1].split()
    pids, mark = [int(word) for word in words[:2]], words[3]
    assert mark == BATCH  # the kernel had the batch's mark: the search sees it
    for pid in pids:
        try:
            process = psutil.Process(pid)
            alive = (process.status() != psutil.STATUS_ZOMBIE
                     and process.cmdline() == ["sleep", "600"])  # else the pid was reused
        except psutil.NoSuchProcess:
            alive = False
        assert not alive, pid


def test_the_rewriting_attacks_work_when_the_hidden_inputs_are_known(released_lab):
    # So that the patched print and json.dumps prove something: run as the grader runs
    # them, but sent the inputs their answers were made for (as if a grading's secret
    # were known or reused), they take full marks for wrong answers.
    release = nbformat.read(str(released_lab / NOTEBOOK), as_version=4)
    plan = CapturePlan(lab.test_cells, lab.capture_source(), lab.hidden_inputs(KNOWN_SECRET))
    for student in ("attack-patched-stdout", "attack-patched-json-dumps"):
        prepared = prepare(json.loads(nbformat.writes(CLASS[student][0](release))),
                           lab.source).notebook
        # No cell here hangs: a generous cell time, so that a loaded machine building the
        # model slowly cannot turn the proof into a timeout.
        outcome = run_notebook(prepared, support_dir=released_lab, notebook_name=NOTEBOOK,
                               limits=Limits(cell_timeout=120), plan=plan)
        verdicts = judge_outcome(lab, outcome, KNOWN_SECRET)
        assert all(verdict.full_marks for verdict in verdicts.values()), (student, verdicts)
