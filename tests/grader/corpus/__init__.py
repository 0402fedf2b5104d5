"""A class of student submissions, each named by its expected outcome.

Every submission is the released notebook with answers typed between the code markers,
as a student would; the expected grades sit beside this file in expected_grades.csv.
Broken files are kept as they are in files/.
"""

import csv
import json
import re
import shutil
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
EXPECTED_GRADES = HERE / "expected_grades.csv"
BROKEN_FILES = HERE / "files"
NOTEBOOK = "C2_W2_Assignment.ipynb"

LOOP = """
N = len(z)
a = np.zeros(N)
ez_sum = 0
for k in range(N):
    ez_sum += np.exp(z[k])
for j in range(N):
    a[j] = np.exp(z[j])/ez_sum
"""
VECTORISED = "ez = np.exp(z)\na = ez/np.sum(ez)"
STABLE = "ez = np.exp(z - np.max(z))\na = ez / ez.sum()"
MODEL = """
tf.keras.Input(shape=(400,)),
Dense(25, activation='relu', name="L1"),
Dense(15, activation='relu', name="L2"),
Dense(10, activation='linear', name="L3"),
"""


def _model(first="tf.keras.Input(shape=(400,)),", units=(25, 15, 10),
           activations=("'relu'", "'relu'", "'linear'"), extra=""):
    layers = [f"Dense({u}, activation={a})," for u, a in zip(units, activations, strict=True)]
    return "\n".join(filter(None, [first, *layers, extra]))


# student id -> answers typed into UNQ_C1 and UNQ_C2 (None: the stub left as released)
ANSWERS = {
    "ok-loop-softmax-input-model": (LOOP, MODEL),
    "ok-vectorised-softmax-no-input": (VECTORISED, _model(first="")),
    "ok-stable-softmax-relu-function": (STABLE, _model(activations=("relu", "relu", "linear"))),
    "ok-tf-nn-relu-output-none": (STABLE, _model(activations=("tf.nn.relu", "tf.nn.relu",
                                                              "None"))),
    "wrong-softmax-unnormalised": ("a = np.exp(z)", MODEL),
    "wrong-softmax-divides-by-sum-of-z": ("a = np.exp(z) / np.sum(z)", MODEL),
    "wrong-softmax-off-by-one-loop": (LOOP.replace("range(N):\n    ez_sum", "range(N-1):\n"
                                                   "    ez_sum"), MODEL),
    "wrong-softmax-hard-coded-public-answer": (
        "a = np.array([0.0320586, 0.08714432, 0.23688282, 0.64391426])", MODEL),
    "wrong-softmax-sorted-output": ("a = np.sort(np.exp(z) / np.sum(np.exp(z)))", MODEL),
    "wrong-softmax-raises": ("a = np.exp(z) / undefined_total", MODEL),
    "wrong-model-units": (STABLE, _model(units=(20, 15, 10))),
    "wrong-model-units-swapped": (STABLE, _model(units=(15, 25, 10))),
    "wrong-model-sigmoid-hidden": (STABLE, _model(activations=("'sigmoid'", "'sigmoid'",
                                                               "'linear'"))),
    "wrong-model-softmax-output": (STABLE, _model(activations=("'relu'", "'relu'",
                                                               "'softmax'"))),
    "wrong-model-two-layers": (STABLE, "tf.keras.Input(shape=(400,)),\n"
                                       "Dense(25, activation='relu'),\nDense(10),"),
    "wrong-model-four-layers": (STABLE, _model(extra="Dense(10, activation='linear'),")),
    "wrong-model-input-size": (STABLE, _model(first="tf.keras.Input(shape=(40,)),")),
    "wrong-model-no-bias": (STABLE, MODEL.replace("name=\"L1\"", "name=\"L1\", use_bias=False")),
    "wrong-both-untouched-stubs": (None, None),
    "timeout-softmax-infinite-loop": ("while True:\n    pass", MODEL),
    # What real classes hand in, beside the textbook mistakes above.
    "wrong-model-cell-raises": (STABLE, MODEL.replace("Dense(15", "Dens(15")),
    "wrong-model-units-as-strings": (STABLE, MODEL.replace("Dense(25", "Dense('25'")),
    "wrong-softmax-syntax-error": ("a = np.exp(z) / (np.sum(np.exp(z))", MODEL),
    "wrong-softmax-hangs-on-hidden-inputs": (
        "while np.min(z) < -20:  # fine on every public input\n    pass\n" + STABLE, MODEL),
    "wrong-softmax-raises-on-hidden-inputs": (
        "if 0 < np.max(z) < 0.01:\n    raise ValueError('values too small')\n" + STABLE,
        MODEL),
    "wrong-softmax-adds-a-tiny-constant": ("ez = np.exp(z)\na = ez / (np.sum(ez) + 1e-9)",
                                           MODEL),
    "ok-softmax-returns-a-list": ("a = list(np.exp(z) / np.sum(np.exp(z)))", MODEL),
    # Right on the usual values, wrong beyond them or beside the network itself.
    "wrong-model-relu6-hidden": (STABLE, _model(activations=("tf.nn.relu6", "tf.nn.relu6",
                                                             "'linear'"))),
    "wrong-model-frozen-layer": (STABLE, MODEL.replace('name="L1"',
                                                       'name="L1", trainable=False')),
    "wrong-model-separate-activation-layers": (
        STABLE, "tf.keras.Input(shape=(400,)),\n"
                "Dense(25, name='L1'), tf.keras.layers.Activation('relu'),\n"
                "Dense(15, name='L2'), tf.keras.layers.Activation('relu'),\n"
                "Dense(10, name='L3'),"),
}
# Answered right, with a cell of the student's own after the answer cells: each must cost
# nothing, and the feedback must stay clean.
EXTRA_CELLS = {
    "ok-cell-prints-hidden-tests-marker": "print('### BEGIN HIDDEN TESTS')\n"
                                          "print('### END HIDDEN TESTS')",
    "ok-prints-own-notebook-base64": "import base64\n"
                                     "print(base64.b64encode(open('C2_W2_Assignment.ipynb',"
                                     " 'rb').read()).decode())",
    "ok-compile-and-fit-before-the-test": "model.compile(loss=tf.keras.losses."
                                          "SparseCategoricalCrossentropy(from_logits=True),"
                                          " optimizer=tf.keras.optimizers.Adam(0.001))\n"
                                          "model.fit(X, y, epochs=1, verbose=0)",
    "ok-cell-raises-keyboardinterrupt": "raise KeyboardInterrupt",
    "ok-prints-a-lone-surrogate": "print('half a character: \\ud800')",
    "ok-shows-a-script": "from IPython.display import HTML, display\n"
                         "display(HTML('<b>bold</b><script>alert(\"xss\")</script>'))",
}
# An extra cell whose nbgrader metadata is not a dict: nbformat accepts it.
ODD_METADATA = {"ok-null-nbgrader-metadata": None, "ok-string-nbgrader-metadata": "UNQ_C1",
                "ok-list-nbgrader-metadata": ["UNQ_C1_test"]}
# A folder name a spreadsheet would read as a formula.
FORMULA_STUDENT = "=1+1"


def build(release_dir, destination):
    """Write the corpus into `destination`, one folder per student; return its path."""
    release = nbformat.read(str(Path(release_dir) / NOTEBOOK), as_version=4)
    for student, (softmax, model) in ANSWERS.items():
        _write(destination / student / NOTEBOOK, answered(release, softmax, model))
    _write(destination / "ok-renamed-notebook" / "C2_W2_Assignment (1).ipynb",
           answered(release, STABLE, MODEL))
    _write(destination / "ok-duplicated-answer-cell" / NOTEBOOK, _duplicated(release))
    _write(destination / "ok-test-cell-deleted" / NOTEBOOK, _test_cell_deleted(release))
    _write(destination / "ok-broken-extra-cell" / NOTEBOOK, _broken_extra_cell(release))
    for student, code in EXTRA_CELLS.items():
        _write(destination / student / NOTEBOOK, _with_extra_cell(release, code))
    for student, metadata in ODD_METADATA.items():
        _write(destination / student / NOTEBOOK,
               _with_extra_cell(release, "print('mine')", {"nbgrader": metadata}))
    _write(destination / FORMULA_STUDENT / NOTEBOOK, answered(release, STABLE, MODEL))
    for broken in sorted(BROKEN_FILES.iterdir()):
        student = "invalid-" + broken.stem.replace("_", "-")
        (destination / student).mkdir(parents=True)
        shutil.copy(broken, destination / student / NOTEBOOK)
    return destination


def answered(release, softmax=None, model=None):
    notebook = nbformat.from_dict(json.loads(json.dumps(release)))
    for grade_id, code in (("UNQ_C1", softmax), ("UNQ_C2", model)):
        if code is not None:
            cell = _cell(notebook, grade_id)
            cell.source = type_answer(cell.source, code)
    return notebook


def type_answer(source, code):
    """Put `code` between the code markers, indented like the START marker."""
    match = re.search(r"^( *)### START CODE HERE ###\n.*?^ *### END CODE HERE ###",
                      source, re.MULTILINE | re.DOTALL)
    indent = match.group(1)
    body = textwrap.indent(code.strip("\n"), indent)
    replacement = f"{indent}### START CODE HERE ###\n{body}\n{indent}### END CODE HERE ###"
    return source[:match.start()] + replacement + source[match.end():]


def _cell(notebook, grade_id):
    return next(c for c in notebook.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _duplicated(release):
    # The student copied the answer cell; the wrong first copy is overridden by the later.
    notebook = answered(release, "a = np.exp(z)", MODEL)
    first = _cell(notebook, "UNQ_C1")
    later = json.loads(json.dumps(first))
    later["source"] = type_answer(first.source, STABLE)
    later["id"] = first.id + "-copy"  # JupyterLab gives a copied cell an id of its own
    notebook.cells.insert(notebook.cells.index(first) + 1, nbformat.from_dict(later))
    return notebook


def _test_cell_deleted(release):
    notebook = answered(release, STABLE, MODEL)
    notebook.cells.remove(_cell(notebook, "UNQ_C1_test"))
    return notebook


def _broken_extra_cell(release):
    # A cell of the student's own that fails must cost nothing.
    notebook = answered(release, STABLE, MODEL)
    index = notebook.cells.index(_cell(notebook, "UNQ_C1"))
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell("1 / 0  # trying things out"))
    return notebook


def _with_extra_cell(release, code, metadata=None):
    """Answered right, with a cell of the student's own right after the model cell."""
    notebook = answered(release, STABLE, MODEL)
    index = notebook.cells.index(_cell(notebook, "UNQ_C2"))
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(code, metadata=metadata or {}))
    return notebook


def _write(path, notebook):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))


def expected_grades():
    with EXPECTED_GRADES.open(newline="") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}
