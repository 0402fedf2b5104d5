"""The hidden tests plain nbgrader runs: written into the notebook from the grader's own
recipes (grader/labs/c2_w2/nbgrader_tests.py), and judging right and wrong answers in the
kernel. (tests/grader/labs/test_c2_w2_nbgrader.py runs them with nbgrader itself.)"""

import contextlib
import io
import sys

import nbformat
import numpy as np
import pytest
import tensorflow as tf

from grader import cells
from grader.labs.c2_w2 import LAB
from grader.labs.c2_w2.hidden_inputs import NBGRADER_SEED, softmax_hidden_inputs
from grader.labs.c2_w2.nbgrader_tests import hidden_tests

sys.path.insert(0, str(LAB.root / "tools"))
from write_hidden_tests import with_hidden_tests  # noqa: E402


def test_the_notebook_holds_the_hidden_tests_written_from_the_recipes():
    notebook = nbformat.read(str(LAB.source_notebook), as_version=4)
    blocks = {cells.grade_id(cell): cells.hidden_text(cell.source).rstrip("\n")
              for cell in notebook.cells
              if cells.grade_id(cell) in LAB.test_cells}
    written = {test_cell: block.rstrip("\n") for test_cell, block in hidden_tests().items()}
    assert blocks == written, "run: .venv/bin/python tools/write_hidden_tests.py"
    rewritten = with_hidden_tests(nbformat.read(str(LAB.source_notebook), as_version=4),
                                  hidden_tests())
    assert nbformat.writes(rewritten) + "\n" == LAB.source_notebook.read_text(encoding="utf-8")


def _run_hidden(test_cell, **student_globals):
    """Run a hidden block among the student's globals, as plain nbgrader does."""
    namespace = dict(student_globals)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(hidden_tests()[test_cell], "<hidden>", "exec"), namespace)
    return namespace


def stable(z):
    ez = np.exp(z - z.max())
    return ez / ez.sum()


@pytest.mark.parametrize("wrong", [np.exp, lambda z: np.exp(z) / np.sum(z),
                                   lambda z: np.sort(stable(z)),
                                   lambda z: np.exp(z) / (np.exp(z).sum() + 1e-9)])
def test_the_softmax_hidden_test_raises_on_a_wrong_answer(wrong):
    with pytest.raises(AssertionError, match="my_softmax is wrong"):
        _run_hidden("UNQ_C1_test", my_softmax=wrong)


def test_the_softmax_hidden_test_passes_a_right_answer_and_leaves_no_name_behind():
    seen = []

    def recording(z):
        seen.append(z.copy())
        return stable(z)

    namespace = _run_hidden("UNQ_C1_test", my_softmax=recording)
    assert [z.tolist() for z in seen] == [z.tolist() for _, z in
                                          softmax_hidden_inputs(NBGRADER_SEED)]
    assert not [name for name in namespace if name.startswith("_hidden")]


Dense = tf.keras.layers.Dense


def _model(*layers, inputs=400):
    tf.keras.utils.set_random_seed(1)
    return tf.keras.Sequential([tf.keras.Input(shape=(inputs,)), *layers])


def test_the_model_hidden_test_passes_right_models():
    _run_hidden("UNQ_C2_test", model=_model(Dense(25, activation="relu"),
                                             Dense(15, activation="relu"), Dense(10)))
    tf.keras.utils.set_random_seed(1)
    no_input = tf.keras.Sequential([Dense(25, activation=tf.nn.relu),
                                    Dense(15, activation="relu"), Dense(10, activation=None)])
    _run_hidden("UNQ_C2_test", model=no_input)


@pytest.mark.parametrize("layers", [
    (Dense(25, activation="relu"), Dense(15, activation="relu"), Dense(10, activation="relu")),
    (Dense(25, activation="relu"), Dense(15, activation="relu"),
     Dense(10, activation="softmax")),
    (Dense(20, activation="relu"), Dense(15, activation="relu"), Dense(10)),
    (Dense(25, activation="sigmoid"), Dense(15, activation="relu"), Dense(10)),
    (Dense(25, activation="relu"), Dense(10)),
    (Dense(25, activation="relu", use_bias=False), Dense(15, activation="relu"), Dense(10)),
])
def test_the_model_hidden_test_raises_on_a_wrong_model(layers):
    with pytest.raises(AssertionError):
        _run_hidden("UNQ_C2_test", model=_model(*[type(layer).from_config(layer.get_config())
                                                  for layer in layers]))


def test_every_grading_reaches_both_ends_of_the_special_ranges():
    # A softmax wrong only below -20 (the corpus's hang) must fail under every secret:
    # with plain uniform draws, one grading in 64 had all six very negative values above.
    for seed in range(2000):
        special = dict(softmax_hidden_inputs(seed)[11:])
        negative, tiny = special["very negative values"], special["tiny values"]
        assert negative.min() < -26.6 and negative.max() > -13.4 and len(negative) == 6
        assert tiny.min() >= 0.0 and tiny.max() > 0.85e-3 and len(tiny) == 7
