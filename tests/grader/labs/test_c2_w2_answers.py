"""Answers a careful student or TA writes, right in unusual ways or wrong in subtle ones,
each named by its expected outcome ("ok-..." gets full marks, "wrong-..." none) with the
words its message must hold and the words it must not (a message that points at another
fix is a wrong message).

Each answer is judged as the grader judges it (the lab's capture in a namespace holding
the answer, then the judge), under several secrets: a verdict or a message that changes
with the secret's inputs fails. Then the three checkers of the lab's rules, the grader's
judge, plain nbgrader's hidden test and the students' public test, are shown to agree on
every answer here and every answer of the corpus. Everything runs in this process, with
real NumPy and TensorFlow: no kernel, no notebook.
"""

import contextlib
import io
import json
import math
import re
import warnings

import corpus
import nbformat
import numpy as np
import pytest
import tensorflow as tf
from capture_in_process import captured

import public_tests
from grader.judge.verdicts import judge_exercise
from grader.labs.c2_w2 import LAB
from grader.labs.c2_w2.hidden_inputs import NBGRADER_SEED, softmax_inputs
from grader.labs.c2_w2.nbgrader_tests import hidden_tests
from grader.labs.c2_w2.rules import lab_rules
from grader.records import ExerciseRun

# The secret whose inputs are plain nbgrader's (NBGRADER_SEED), and two others.
NBGRADER_SECRET = NBGRADER_SEED.to_bytes(16, "big")
SECRETS = (NBGRADER_SECRET, bytes.fromhex("5ec2e7c2" * 4), bytes(range(16)))


def graded(exercise, secret, **student_globals):
    answer = captured(exercise, secret, **student_globals)
    return judge_exercise(LAB, LAB.exercise(exercise), ExerciseRun(exercise, answer), secret)


# ================================================================ my_softmax answers

def _loop(z, dtype=float, overwrite=False):
    N = len(z)
    a = np.zeros(N, dtype=dtype)
    ez_sum = 0
    for k in range(N):
        if overwrite:
            ez_sum = np.exp(z[k])
        else:
            ez_sum += np.exp(z[k])
    for j in range(N):
        a[j] = np.exp(z[j]) / ez_sum
    return a


def _stable(z):
    ez = np.exp(z - np.max(z))
    return ez / ez.sum()


def _while_loop(z):
    total, k = 0.0, 0
    while k < len(z):
        total += math.exp(z[k])
        k += 1
    return np.array([math.exp(value) / total for value in z])


def _mutates_z(z):
    z -= z.max()
    z[:] = np.exp(z)
    return z / z.sum()


def _log_sum_exp(z):
    m = np.max(z)
    return np.exp(z - (m + np.log(np.sum(np.exp(z - m)))))


def _divided_in_place(z):
    ez = np.exp(z)
    ez /= ez.sum()
    return ez


def _sum_inside_the_loop(z):
    a = np.zeros(len(z))
    for j in range(len(z)):
        ez_sum = 0
        ez_sum += np.exp(z[j])
        a[j] = np.exp(z[j]) / ez_sum
    return a


def _skipping(z, indices):
    total = sum(np.exp(z[k]) for k in indices)
    return np.exp(z) / total


def _fixed_length(z):
    a = np.zeros(4)
    total = np.sum(np.exp(z))
    for j in range(len(z)):
        a[j] = np.exp(z[j]) / total
    return a


OK_SOFTMAXES = {
    "ok-softmax-loop": _loop,
    "ok-softmax-stable": _stable,
    "ok-softmax-while-loop-with-math-exp": _while_loop,
    "ok-softmax-changes-z-in-place": _mutates_z,
    "ok-softmax-log-sum-exp-then-exp": _log_sum_exp,
    "ok-softmax-divides-in-place": _divided_in_place,
    "ok-softmax-zeros-like-z": lambda z: np.exp(z) / np.exp(z).sum() + np.zeros_like(z),
    "ok-softmax-returns-a-list": lambda z: [float(v) for v in _stable(z)],
    "ok-softmax-returns-a-tuple": lambda z: tuple(_stable(z)),
    "ok-softmax-in-float32": lambda z: _stable(z.astype(np.float32)),
    "ok-softmax-keepdims-sum": lambda z: np.exp(z) / np.sum(np.exp(z), axis=-1, keepdims=True),
    "ok-softmax-tf-nn-softmax": lambda z: tf.nn.softmax(z).numpy(),
    "ok-softmax-times-reciprocal": lambda z: np.exp(z) * (1.0 / np.exp(z).sum()),
}

# name -> (answer, words its messages must hold, words they must not hold)
WRONG_SOFTMAXES = {
    "wrong-softmax-integer-array": (lambda z: _loop(z, dtype=int),
                                    ["whole number", "dtype=int", "np.zeros(N)"],
                                    ["did you divide", "they sum to"]),
    "wrong-softmax-sum-overwritten-in-the-loop": (
        lambda z: _loop(z, overwrite=True), ["overwrites its sum", "ez_sum +="],
        ["without normalising"]),
    "wrong-softmax-wrapped-in-a-list": (lambda z: [_stable(z)],
                                        ["shape (1, ", "wrapped in a list", "1-D array"], []),
    "wrong-softmax-exp-of-abs": (lambda z: np.exp(np.abs(z)) / np.exp(np.abs(z)).sum(),
                                 ["abs(z)"], ["sort"]),
    "wrong-softmax-log-softmax": (lambda z: np.log(_stable(z)),
                                  ["log-probabilities", "without a log"],
                                  ["rather than z"]),
    "wrong-softmax-exp-of-minus-z": (lambda z: _stable(-z), ["softmax of -z"], ["sort"]),
    "wrong-softmax-sum-inside-the-loop": (_sum_inside_the_loop,
                                          ["every output is 1", "divided by itself"], []),
    "wrong-softmax-unnormalised": (np.exp, ["It returned exp(z) without normalising"], []),
    "wrong-softmax-divided-by-the-max": (lambda z: np.exp(z) / np.max(np.exp(z)),
                                         ["exp(z - max(z))", "without normalising"], []),
    "wrong-softmax-divided-by-sum-of-z": (lambda z: np.exp(z) / np.sum(z),
                                          ["divided by the sum of z"], []),
    "wrong-softmax-skips-the-first-term": (lambda z: _skipping(z, range(1, len(z))),
                                           ["skips the first element"], []),
    "wrong-softmax-skips-the-last-term": (lambda z: _skipping(z, range(len(z) - 1)),
                                          ["skips the last element", "range(N)"], []),
    "wrong-softmax-sorted-output": (lambda z: np.sort(_stable(z)), ["did you sort them"],
                                    ["fixed length"]),
    "wrong-softmax-no-return": (lambda z: None, ["returned None", "return a"], []),
    "wrong-softmax-returns-a-string": (lambda z: "a", ["returned a str", "array of numbers"],
                                       ["raised"]),
    "wrong-softmax-raises": (lambda z: np.exp(z) / undefined_total,  # noqa: F821
                             ["NameError", "undefined_total"], []),
    "wrong-softmax-written-for-four-values": (_fixed_length,
                                              ["IndexError", "fixed length"], []),
    "wrong-softmax-adds-a-tiny-constant": (lambda z: np.exp(z) / (np.exp(z).sum() + 1e-9),
                                           ["very negative values", "depends on the values"],
                                           ["fixed length"]),
    "wrong-softmax-twice-the-softmax": (lambda z: 2 * _stable(z), ["they sum to 2"],
                                        ["cannot be above 1"]),
    "wrong-softmax-no-exp": (lambda z: z - np.max(z), ["z - max(z)", "take exp"], []),
    "wrong-softmax-divides-by-zero": (lambda z: np.exp(z) / np.zeros_like(z),
                                      ["NaN or infinity"], []),
    "wrong-softmax-adds-one": (lambda z: _stable(z) + 1.0, ["cannot be above 1"], []),
    "wrong-softmax-of-half-z": (lambda z: _stable(z / 2.0), ["values differ from softmax"],
                                ["sort", "sum to"]),
    "wrong-softmax-returns-a-number": (lambda z: float(np.max(_stable(z))),
                                       ["single number"], []),
}
# Wrong only on inputs the public test does not have: the public test passes them.
HIDDEN_ONLY = {"wrong-softmax-adds-a-tiny-constant"}


def _texts(verdict):
    return " ".join(message.text for message in verdict.messages)


@pytest.mark.parametrize("name", OK_SOFTMAXES)
def test_each_right_softmax_gets_full_marks_under_every_secret(name):
    for secret in SECRETS:
        verdict = graded("UNQ_C1", secret, my_softmax=OK_SOFTMAXES[name])
        assert verdict.full_marks, (name, verdict.messages)


def assert_the_same_wrong_verdict_under_every_secret(exercise, answers, must, must_not):
    verdicts = [graded(exercise, secret, **answers) for secret in SECRETS]
    for verdict in verdicts:
        assert verdict.points == 0
        text = _texts(verdict)
        for word in must:
            assert word.lower() in text.lower(), (word, verdict.messages)
        for word in must_not:
            assert word.lower() not in text.lower(), (word, verdict.messages)
    kinds = {tuple(message.kind for message in verdict.messages) for verdict in verdicts}
    assert len(kinds) == 1, kinds  # the same mistake named, whatever the inputs drawn


@pytest.mark.parametrize("name", WRONG_SOFTMAXES)
def test_each_wrong_softmax_is_named_by_its_mistake_under_every_secret(name):
    answer, must, must_not = WRONG_SOFTMAXES[name]
    assert_the_same_wrong_verdict_under_every_secret("UNQ_C1", {"my_softmax": answer}, must,
                                                     must_not)


def test_formulas_are_named_only_when_they_hold_on_every_input():
    # exp(z) / exp(z_last) equals exp(z - max(z)) on inputs whose last value is the largest:
    # the overwritten sum must be named for what it is, never for that coincidence.
    answer = WRONG_SOFTMAXES["wrong-softmax-sum-overwritten-in-the-loop"][0]
    kinds = {graded("UNQ_C1", secret, my_softmax=answer).messages[0].kind
             for secret in SECRETS}
    assert kinds == {"softmax.sum_overwritten"}


# ================================================================ models

Dense = tf.keras.layers.Dense


def _built(build, seed=1234):
    tf.keras.utils.set_random_seed(seed)
    return build()


def _sequential(*layers, input_size=400):
    return tf.keras.Sequential([tf.keras.Input(shape=(input_size,)), *layers])


def _three(hidden="relu", output="linear", **options):
    return [Dense(25, activation=hidden, **options), Dense(15, activation=hidden, **options),
            Dense(10, activation=output, **options)]


def _added_one_by_one():
    model = tf.keras.Sequential(name="my_model")
    model.add(tf.keras.Input(shape=(400,)))
    for layer in _three():
        model.add(layer)
    return model


def _functional():
    inputs = tf.keras.Input(shape=(400,))
    hidden = Dense(15, activation="relu")(Dense(25, activation="relu")(inputs))
    return tf.keras.Model(inputs, Dense(10)(hidden))


def _whole_model_frozen():
    model = _sequential(*_three())
    model.trainable = False
    return model


class ZeroModel(tf.keras.Sequential):
    """Its layers say one thing, its call does another."""

    def call(self, inputs, training=None, mask=None):
        return tf.zeros((tf.shape(inputs)[0], 10))


OK_MODELS = {
    "ok-model-with-input-and-names": lambda: _sequential(
        Dense(25, activation="relu", name="L1"), Dense(15, activation="relu", name="L2"),
        Dense(10, activation="linear", name="L3")),
    "ok-model-without-input": lambda: tf.keras.Sequential(_three()),
    "ok-model-tf-nn-relu-and-none": lambda: _sequential(*_three(hidden=tf.nn.relu,
                                                                output=None)),
    "ok-model-keras-activation-functions": lambda: _sequential(*_three(
        hidden=tf.keras.activations.relu, output=tf.keras.activations.linear)),
    "ok-model-own-relu-lambda": lambda: _sequential(*_three(
        hidden=lambda x: tf.maximum(x, 0.0))),
    "ok-model-added-one-by-one": _added_one_by_one,
    "ok-model-input-layer": lambda: tf.keras.Sequential(
        [tf.keras.layers.InputLayer(shape=(400,)), *_three()]),
    "ok-model-he-initializer": lambda: _sequential(*_three(kernel_initializer="he_normal")),
    "ok-model-l2-regularised": lambda: _sequential(*_three(
        kernel_regularizer=tf.keras.regularizers.l2(0.01))),
    "ok-model-explicit-float32-trainable-bias": lambda: _sequential(*_three(
        dtype="float32", trainable=True, use_bias=True)),
    "ok-model-bias-starts-at-one": lambda: _sequential(*_three(bias_initializer="ones")),
}

WRONG_MODELS = {
    "wrong-model-relu6-hidden": (lambda: _sequential(*_three(hidden=tf.nn.relu6)),
                                 ["expected ReLU, got ReLU6"], ["collapse"]),
    "wrong-model-leaky-relu-hidden": (lambda: _sequential(*_three(hidden=tf.nn.leaky_relu)),
                                      ["expected ReLU, got a leaky ReLU"], []),
    "wrong-model-clipped-logits": (
        lambda: _sequential(*_three(output=lambda x: tf.clip_by_value(x, -5.0, 5.0))),
        ["(the output layer): expected a linear activation", "unexpected activation"], []),
    "wrong-model-scaled-linear-output": (lambda: _sequential(*_three(output=lambda x: 2 * x)),
                                         ["unexpected activation"], []),
    "wrong-model-softplus-hidden": (lambda: _sequential(*_three(hidden="softplus")),
                                    ["expected ReLU, got an unexpected activation"], []),
    "wrong-model-frozen-layer": (lambda: _sequential(
        Dense(25, activation="relu", trainable=False, name="L1"),
        Dense(15, activation="relu"), Dense(10)),
        ["layers[0] ('L1') is frozen (trainable=False)", "Non-trainable params: 0"], []),
    "wrong-model-whole-model-frozen": (_whole_model_frozen, ["trainable=False"], []),
    "wrong-model-float64-weights": (lambda: _sequential(*_three(dtype="float64")),
                                    ["float64", "expected float32"], []),
    "wrong-model-separate-activation-layers": (lambda: _sequential(
        Dense(25), tf.keras.layers.Activation("relu"), Dense(15),
        tf.keras.layers.Activation("relu"), Dense(10)),
        ["separate Activation layer (relu)", "inside the Dense layer"],
        ["collapse", "is a Activation", "got linear"]),
    "wrong-model-relu-layers": (lambda: _sequential(
        Dense(25), tf.keras.layers.ReLU(), Dense(15), tf.keras.layers.ReLU(), Dense(10)),
        ["separate ReLU layer", "inside the Dense layer"], ["collapse"]),
    "wrong-model-functional": (_functional, ["not a Sequential one", "model.layers"], []),
    "wrong-model-linear-hidden": (lambda: _sequential(*_three(hidden=None)),
                                  ["expected ReLU, got linear", "collapse"], []),
    "wrong-model-sigmoid-hidden": (lambda: _sequential(*_three(hidden="sigmoid")),
                                   ["expected ReLU, got sigmoid"], []),
    "wrong-model-softmax-output": (lambda: _sequential(*_three(output="softmax")),
                                   ["from_logits=True"], []),
    "wrong-model-relu-output": (lambda: _sequential(*_three(output="relu")),
                                ["expected a linear activation, got relu"], []),
    "wrong-model-units-swapped": (lambda: _sequential(Dense(15, activation="relu"),
                                                      Dense(25, activation="relu"), Dense(10)),
                                  ["swapped"], []),
    "wrong-model-no-bias": (lambda: _sequential(*_three(use_bias=False)), ["use_bias=False"],
                            []),
    "wrong-model-input-of-40": (lambda: _sequential(*_three(), input_size=40),
                                ["expects 40 inputs"], []),
    "wrong-model-dropout-between": (lambda: _sequential(
        Dense(25, activation="relu"), tf.keras.layers.Dropout(0.2),
        Dense(15, activation="relu"), Dense(10)), ["is a Dropout layer"], []),
    "wrong-model-left-empty": (lambda: tf.keras.Sequential([], name="my_model"),
                               ["Expected 3 Dense layers", "got 0", "missing"], []),
    "wrong-model-call-overridden": (lambda: ZeroModel([tf.keras.Input(shape=(400,)),
                                                       *_three()]),
                                    ["does not match its layers"], []),
}
# What a copy of the model cannot show: the public test works on a copy (it must not
# build or change the student's model), and a copy has Keras's own `call`.
PUBLIC_TEST_MISSES = {"wrong-model-call-overridden"}


@pytest.mark.parametrize("name", OK_MODELS)
def test_each_right_model_gets_full_marks_under_every_secret(name):
    model = _built(OK_MODELS[name])
    for secret in SECRETS:
        verdict = graded("UNQ_C2", secret, model=model)
        assert verdict.full_marks, (name, verdict.messages)


@pytest.mark.parametrize("name", WRONG_MODELS)
def test_each_wrong_model_is_named_by_its_mistake_under_every_secret(name):
    build, must, must_not = WRONG_MODELS[name]
    assert_the_same_wrong_verdict_under_every_secret("UNQ_C2", {"model": _built(build)}, must,
                                                     must_not)


def test_relu6_gives_other_outputs_on_the_hidden_batch():
    """The hidden batch reaches values far above 6, so the forward pass alone tells ReLU6
    from ReLU (the probe aside): a capture that hid the probe would still be caught."""
    model = _built(WRONG_MODELS["wrong-model-relu6-hidden"][0])
    answer = captured("UNQ_C2", NBGRADER_SECRET, model=model)
    for layer in answer["layers"]:
        layer["activation_probe"] = [list(np.maximum(lab_rules.ACTIVATION_PROBE, 0.0))]
    answer["layers"][-1]["activation_probe"] = [list(lab_rules.ACTIVATION_PROBE)]
    verdict = judge_exercise(LAB, LAB.exercise("UNQ_C2"), ExerciseRun("UNQ_C2", answer),
                             NBGRADER_SECRET)
    assert [message.kind for message in verdict.messages] == ["model.forward_mismatch"]


def test_the_capture_reports_trainable_and_dtypes_as_plain_data():
    model = _built(WRONG_MODELS["wrong-model-frozen-layer"][0])
    layers = captured("UNQ_C2", NBGRADER_SECRET, model=model)["layers"]
    assert [layer["trainable"] for layer in layers] == [False, True, True]
    assert {dtype for layer in layers for dtype in layer["weight_dtypes"]} == {"float32"}
    assert json.loads(json.dumps(layers)) == layers


# ================================================================ the three agree

def hidden_test_says(test_cell, **student_globals):
    """What plain nbgrader's hidden test says: None when it passes, else its assertion."""
    namespace = dict(student_globals)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(hidden_tests()[test_cell], "<hidden>", "exec"), namespace)
    except AssertionError as error:
        return str(error)
    return None


def _without_numbers(text):
    # Keras names an unnamed layer by a counter of the whole process ('dropout', then
    # 'dropout_1'): which one a checker sees depends on the tests run before it.
    text = re.sub(r"'([a-z][a-z_]*?)(?:_\d+)?'", r"'\1_#'", text)
    return re.sub(r"[-+]?\d[\d.,e+-]*", "#", text)


def assert_softmax_checkers_agree(name, function, *, public_passes, right=None):
    verdict = graded("UNQ_C1", NBGRADER_SECRET, my_softmax=function)
    assert right is None or verdict.full_marks == right, (name, verdict)
    hidden = hidden_test_says("UNQ_C1_test", my_softmax=function)
    # The public test's own checks, on the hidden inputs: the same rules, the same words.
    public_rules = lab_rules.softmax_problems(lab_rules.softmax_cases(
        function, softmax_inputs(NBGRADER_SECRET)))
    if verdict.full_marks:
        assert hidden is None and public_rules == [], name
    else:
        assert hidden == "my_softmax is wrong: " + verdict.messages[0].text, name
        assert [problem.text for problem in public_rules] == \
            [message.text for message in verdict.messages], name
    public = public_tests.softmax_problems(function)
    assert (not public) == public_passes, (name, public)


def assert_model_checkers_agree(name, build, *, public_catches=True):
    model = _built(build)
    verdict = graded("UNQ_C2", NBGRADER_SECRET, model=model)
    hidden = hidden_test_says("UNQ_C2_test", model=model)
    public = public_tests.model_problems(_built(build), 10, 400)
    if verdict.full_marks:
        assert hidden is None and public == [], (name, hidden, public)
        return
    assert hidden == "the model is wrong: " + verdict.messages[0].text, name
    if public_catches:
        # The public test runs a copy with fresh weights: only the numbers may differ.
        assert [_without_numbers(text) for text in public] == \
            [_without_numbers(message.text) for message in verdict.messages], name
    else:
        assert public == [], name


@pytest.mark.parametrize("name", [*OK_SOFTMAXES, *WRONG_SOFTMAXES])
def test_the_three_checkers_agree_on_each_softmax_answer(name):
    function = OK_SOFTMAXES.get(name) or WRONG_SOFTMAXES[name][0]
    assert_softmax_checkers_agree(name, function, public_passes=name in OK_SOFTMAXES
                                  or name in HIDDEN_ONLY)


@pytest.mark.parametrize("name", [*OK_MODELS, *WRONG_MODELS])
def test_the_three_checkers_agree_on_each_model(name):
    build = OK_MODELS.get(name) or WRONG_MODELS[name][0]
    assert_model_checkers_agree(name, build, public_catches=name not in PUBLIC_TEST_MISSES)


# The corpus's answers are cell code: run here as the notebook runs its cells. Left out:
# answers that never end (a test would hang) and cells that raise (no answer to judge).
NEVER_ENDS = {"timeout-softmax-infinite-loop", "wrong-softmax-hangs-on-hidden-inputs"}


def _answer_cells():
    source = nbformat.read(str(LAB.source_notebook), as_version=4)
    return {cell.metadata.get("nbgrader", {}).get("grade_id"): cell.source
            for cell in source.cells if cell.cell_type == "code"}


def _ran(cell, code, name):
    """The namespace after running the answer cell with `code` typed in; None if it raised."""
    namespace = {"np": np, "tf": tf, "Sequential": tf.keras.Sequential, "Dense": Dense}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(corpus.type_answer(cell, code), name, "exec"), namespace)
    except Exception:
        return None
    return namespace


CORPUS = sorted(name for name, answers in corpus.ANSWERS.items()
                if name not in NEVER_ENDS and None not in answers)


@pytest.mark.parametrize("name", CORPUS)
def test_the_three_checkers_agree_on_each_answer_of_the_corpus(name):
    softmax_code, model_code = corpus.ANSWERS[name]
    grades = corpus.expected_grades()[name]
    cells = _answer_cells()
    softmax = _ran(cells["UNQ_C1"], softmax_code, name)
    if softmax is not None:
        right = grades["UNQ_C1"] == "50"
        public_passes = right or name in {"wrong-softmax-adds-a-tiny-constant",
                                          "wrong-softmax-raises-on-hidden-inputs"}
        assert_softmax_checkers_agree(name, softmax["my_softmax"],
                                      public_passes=public_passes, right=right)
    model = _ran(cells["UNQ_C2"], model_code, name)
    if model is not None:
        verdict = graded("UNQ_C2", NBGRADER_SECRET, model=model["model"])
        assert verdict.full_marks == (grades["UNQ_C2"] == "50"), (name, verdict)
        assert_model_checkers_agree(name, lambda: _ran(cells["UNQ_C2"], model_code,
                                                       name)["model"])


def test_every_corpus_answer_that_runs_is_compared():
    assert len(CORPUS) >= 20
    assert len(OK_SOFTMAXES) + len(OK_MODELS) >= 20
    assert len(WRONG_SOFTMAXES) + len(WRONG_MODELS) >= 20
