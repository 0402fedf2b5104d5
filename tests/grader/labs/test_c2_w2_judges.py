"""The C2_W2 lab's judges (grader/labs/c2_w2: softmax.py, model.py), on data captured by the
lab's real capture code.

Each test sends the capture to a namespace holding a student's `my_softmax` or `model`
exactly as the grader sends it to a kernel (compiled, run in a namespace of its own, one
answer line printed), reads the line back and judges it as the grader does.
"""

import json
import random

import capture_in_process
import numpy as np
import pytest
import tensorflow as tf

from grader.judge import verdicts
from grader.judge.text import fmt
from grader.judge.verdicts import judge_exercise, verdict_text
from grader.labs.c2_w2 import LAB, softmax
from grader.labs.c2_w2.hidden_inputs import softmax_inputs
from grader.labs.c2_w2.rules import lab_rules
from grader.records import ExerciseRun, ExerciseVerdict, Failure, FailureKind, Message

POINTS = 50
# One grading's secret, fixed so that a failure can be repeated.
SECRET = bytes.fromhex("5ec2e7c2" * 4)

# ---------------------------------------------------------------- the capture code


def _captured(exercise, secret=SECRET, **student_globals):
    return capture_in_process.captured(exercise, secret, **student_globals)


def judge(exercise, answer, failure=None, *, secret=SECRET):
    return judge_exercise(LAB, LAB.exercise(exercise), ExerciseRun(exercise, answer, failure),
                          secret)


def softmax_verdict(answer, failure=None, *, secret=SECRET):
    return judge("UNQ_C1", answer, failure, secret=secret)


def model_verdict(answer, failure=None, *, secret=SECRET):
    return judge("UNQ_C2", answer, failure, secret=secret)


def softmax_capture(function):
    return _captured("UNQ_C1", my_softmax=function)


def model_capture(model):
    return _captured("UNQ_C2", model=model)


def assert_full_marks(verdict):
    assert verdict.points == POINTS, verdict.messages
    assert verdict.messages == ()


def texts(verdict):
    return [message.text for message in verdict.messages]


def assert_zero_with(verdict, *key_words):
    assert verdict.points == 0
    assert 1 <= len(verdict.messages) <= 3
    text = " ".join(texts(verdict)).lower()
    for word in key_words:
        assert word.lower() in text, (word, verdict.messages)
    assert "traceback" not in text and "assertionerror" not in text



# ---------------------------------------------------------------- my_softmax variants

def softmax_loop(z):
    N = z.shape[0]
    a = np.zeros(N)
    total = 0
    for k in range(N):
        total += np.exp(z[k])
    for j in range(N):
        a[j] = np.exp(z[j]) / total
    return a


def softmax_vectorised(z):
    return np.exp(z) / np.sum(np.exp(z))


def softmax_stable(z):
    ez = np.exp(z - np.max(z))
    return ez / ez.sum()


def softmax_as_list(z):
    total = sum(np.exp(value) for value in z)
    return [float(np.exp(value) / total) for value in z]


def softmax_in_float32(z):
    ez = np.exp(z.astype(np.float32))
    return ez / ez.sum()


def unnormalised(z):
    return np.exp(z)


def divided_by_sum_of_z(z):
    return np.exp(z) / np.sum(z)


def _skipping(z, indices):
    total = 0
    for k in indices:
        total += np.exp(z[k])
    return np.exp(z) / total


def skips_last_term(z):
    return _skipping(z, range(z.shape[0] - 1))


def skips_first_term(z):
    return _skipping(z, range(1, z.shape[0]))


def hard_coded_public_answer(z):
    return np.array([0.032, 0.087, 0.237, 0.644])


def sorted_output(z):
    return np.sort(softmax_stable(z))


def raises_value_error(z):
    raise ValueError("not implemented yet")


def loops_one_too_far(z):
    N = z.shape[0]
    a = np.zeros(N)
    total = sum(np.exp(z[k]) for k in range(N + 1))
    for j in range(N):
        a[j] = np.exp(z[j]) / total
    return a


def returns_none(z):
    # Computed, but the student forgot `return a`.
    a = softmax_stable(z)  # noqa: F841


def returns_2d(z):
    return softmax_stable(z).reshape(1, -1)


def returns_scalar(z):
    return np.sum(softmax_stable(z))


def misspelled_name(z):
    ez = np.exp(z)
    return ez / np.sum(e_z)  # noqa: F821


def right_only_for_short_inputs(z):
    if z.shape[0] > 8:
        return np.zeros(z.shape[0])
    return softmax_stable(z)


def adds_a_tiny_constant(z):
    # A real answer: a constant "to avoid dividing by zero" that matters only when every
    # exp(z_k) is tiny, so the mistake depends on the values of z, not on its length.
    ez = np.exp(z)
    return ez / (np.sum(ez) + 1e-9)


def max_normalised(z):
    ez = np.exp(z)
    return ez / np.max(ez)


def written_for_four_values(z):
    a = np.zeros(4)
    total = np.sum(np.exp(z))
    for j in range(z.shape[0]):
        a[j] = np.exp(z[j]) / total
    return a


# ---------------------------------------------------------------- UNQ_C1 tests

@pytest.mark.parametrize("function", [softmax_loop, softmax_vectorised, softmax_stable,
                                      softmax_as_list, softmax_in_float32])
def test_every_correct_softmax_gets_full_marks(function):
    assert_full_marks(softmax_verdict(softmax_capture(function)))


@pytest.mark.parametrize(("function", "key_words"), [
    (unnormalised, ["without normalising"]),
    (divided_by_sum_of_z, ["divided by the sum of z"]),
    (skips_last_term, ["skips the last element", "range(N)"]),
    (skips_first_term, ["skips the first element"]),
    (hard_coded_public_answer, ["same values for every input", "public example"]),
    (sorted_output, ["not in the order of z (did you sort them"]),
    (raises_value_error, ["raised ValueError: not implemented yet"]),
    (loops_one_too_far, ["IndexError", "range(N)"]),
    (returns_none, ["returned None", "return a"]),
    (returns_2d, ["2-D array of shape (1, 2)"]),
    (returns_scalar, ["single number", "got a = 1."]),
    (misspelled_name, ["NameError", "spell"]),
    (written_for_four_values, ["IndexError", "returned 4 values instead of 2", "fixed length"]),
    (right_only_for_short_inputs, ["right for inputs of size 2, 3, 4, 5, 6, 7, 8",
                                   "wrong for size 9, 10, 37", "fixed length"]),
    (adds_a_tiny_constant, ["right for ordinary inputs of every length",
                            "very negative values, size 6", "not on its length"]),
    (max_normalised, ["without normalising"]),
])
def test_each_wrong_softmax_loses_the_points_with_a_message_naming_the_mistake(function,
                                                                             key_words):
    assert_zero_with(softmax_verdict(softmax_capture(function)), *key_words)


def test_a_failing_case_shows_its_input_and_the_expected_and_got_answers():
    (message,) = texts(softmax_verdict(softmax_capture(unnormalised)))
    z = softmax_inputs(SECRET)[1][1]  # the smallest input of two values or more
    assert f"On the input z = [{z[0]:.3f}, {z[1]:.3f}] (size 2)" in message
    expected, got = lab_rules.reference_softmax(z), np.exp(z)
    assert f"expected a = [{expected[0]:.3f}, {expected[1]:.3f}]" in message
    assert f"got a = {fmt(got)}" in message  # NumPy pads it to the width of the longest


def test_the_length_hint_comes_only_when_the_length_changes_the_outcome():
    # Every ordinary length fails: the mistake is general, no hint about lengths.
    assert "length" not in " ".join(texts(softmax_verdict(softmax_capture(max_normalised))))
    hinted = " ".join(texts(softmax_verdict(softmax_capture(right_only_for_short_inputs))))
    assert "fixed length" in hinted
    valued = " ".join(texts(softmax_verdict(softmax_capture(adds_a_tiny_constant))))
    assert "fixed length" not in valued and "values in z" in valued


def test_the_capture_gives_the_verdicts_own_hidden_inputs():
    captured = softmax_capture(softmax_stable)
    expected = softmax_inputs(SECRET)
    assert [case["z"] for case in captured["cases"]] == [z.tolist() for _, z in expected]


FAILURES = {
    FailureKind.CELL_TIMED_OUT: ["time limit", "loop that never ends"],
    FailureKind.NOTEBOOK_TIMED_OUT: ["ran out of time"],
    FailureKind.KERNEL_DIED: ["kernel died", "memory"],
    FailureKind.MEMORY_EXCEEDED: ["more memory"],
    FailureKind.SANDBOX_FAILED: ["not your mistake"],
    FailureKind.GRADING_FAILED: ["grader failed", "not your mistake"],
    FailureKind.IMITATED: ["imitated", "printed more than once"],
    FailureKind.NO_ANSWER: ["returned nothing", "Restart & Run All"],
}


@pytest.mark.parametrize("exercise", ["UNQ_C1", "UNQ_C2"])
@pytest.mark.parametrize("kind", FAILURES)
def test_a_test_that_gave_no_answer_says_why_in_one_clean_sentence(exercise, kind):
    (message,) = judge(exercise, None, Failure(kind)).messages
    assert message.kind == f"run.{kind.value}"
    for word in FAILURES[kind]:
        assert word.lower() in message.text.lower()
    # Made once from the kind: no sentence nested in another, no exception text.
    assert message.text.count(":") <= 1 and "Error" not in message.text


def test_a_capture_that_raised_quotes_the_error_without_colour_codes():
    failure = Failure.raised("\x1b[1mTypeError", "'NoneType' object is not callable\x1b[0m")
    (message,) = texts(softmax_verdict(None, failure))
    assert "TypeError: 'NoneType' object is not callable" in message
    assert "\x1b" not in message


def test_a_missing_my_softmax_is_named():
    assert_zero_with(softmax_verdict(_captured("UNQ_C1")), "my_softmax is not defined")


def _tampered_first_input(captured):
    captured["cases"][0]["z"] = [0.5]
    return captured


@pytest.mark.parametrize("tamper", [
    _tampered_first_input,
    lambda captured: {"cases": captured["cases"][:-1]},
    lambda captured: {"cases": captured["cases"][::-1]},
    lambda captured: {"cases": [{**case, "z": "0.5"} for case in captured["cases"]]},
])
def test_changed_inputs_are_reported_as_tampering(tamper):
    verdict = softmax_verdict(tamper(softmax_capture(softmax_stable)))
    assert_zero_with(verdict, "the hidden test inputs were changed while grading")


# ---------------------------------------------------------------- UNQ_C2 models

Dense = tf.keras.layers.Dense


def _built(build, seed=1234):
    tf.keras.utils.set_random_seed(seed)
    return build()


def model_with_input():
    return tf.keras.Sequential([tf.keras.Input(shape=(400,)), Dense(25, activation="relu"),
                                Dense(15, activation="relu"), Dense(10, activation="linear")])


def model_without_input_keras_relu():
    relu = tf.keras.activations.relu
    return tf.keras.Sequential([Dense(25, activation=relu), Dense(15, activation=relu),
                                Dense(10)])


def model_tf_nn_relu():
    return tf.keras.Sequential([tf.keras.Input(shape=(400,)), Dense(25, activation=tf.nn.relu),
                                Dense(15, activation=tf.nn.relu), Dense(10, activation=None)])


def functional_model():
    inputs = tf.keras.Input(shape=(400,))
    hidden = Dense(15, activation="relu")(Dense(25, activation="relu")(inputs))
    return tf.keras.Model(inputs, Dense(10, activation="linear")(hidden))


def _sequential(*layers, input_size=400):
    return tf.keras.Sequential([tf.keras.Input(shape=(input_size,)), *layers])


def _three(units=(25, 15, 10), hidden="relu", output="linear", **options):
    return [Dense(units[0], activation=hidden, **options),
            Dense(units[1], activation=hidden, **options),
            Dense(units[2], activation=output, **options)]


class ZeroModel(tf.keras.Sequential):
    """Its layers say one thing, its call does another."""

    def call(self, inputs, training=None, mask=None):
        return tf.zeros((tf.shape(inputs)[0], 10))


WRONG_MODELS = {
    "wrong units": (lambda: _sequential(*_three(units=(30, 15, 10))),
                    ["layers[0] ('dense", "expected 25 units, got 30"]),
    "swapped units": (lambda: _sequential(*_three(units=(15, 25, 10))), ["swapped"]),
    "sigmoid hidden": (lambda: _sequential(*_three(hidden="sigmoid")),
                       ["expected relu, got sigmoid", "use relu in the hidden layers"]),
    "softmax output": (lambda: _sequential(*_three(output="softmax")),
                       ["(the output layer)", "use a linear output",
                        "the loss applies softmax (from_logits=True)"]),
    "tanh output": (lambda: _sequential(*_three(output="tanh")),
                    ["expected a linear activation, got tanh"]),
    "odd activation": (lambda: _sequential(*_three(hidden=lambda x: 2.0 * x)),
                       ["unexpected activation"]),
    "two layers": (lambda: _sequential(Dense(25, activation="relu"), Dense(10)),
                   ["Expected 3 Dense layers", "got 2", "missing"]),
    "four layers": (lambda: _sequential(*_three(), Dense(10)),
                    ["got 4", "Remove the extra layer"]),
    "extra dropout": (lambda: _sequential(Dense(25, activation="relu"),
                                          tf.keras.layers.Dropout(0.2),
                                          Dense(15, activation="relu"), Dense(10)),
                      ["is a Dropout layer"]),
    "input of 40": (lambda: _sequential(*_three(), input_size=40),
                    ["expects 40 inputs, the images have 400", "10,575"]),
    "no bias": (lambda: _sequential(*_three(use_bias=False)), ["use_bias=False"]),
    "functional": (functional_model, ["is a Functional model, not a Sequential one",
                                      "[layer1, layer2, layer3] = model.layers"]),
    "call overridden": (lambda: ZeroModel([tf.keras.Input(shape=(400,)), *_three()]),
                        ["the model's output does not match its layers"]),
}


@pytest.mark.parametrize("build", [model_with_input, model_without_input_keras_relu,
                                   model_tf_nn_relu])
def test_every_correct_model_gets_full_marks(build):
    assert_full_marks(model_verdict(model_capture(_built(build))))


@pytest.mark.parametrize("name", WRONG_MODELS)
def test_each_wrong_model_loses_the_points_with_a_message_naming_the_mistake(name):
    build, key_words = WRONG_MODELS[name]
    assert_zero_with(model_verdict(model_capture(_built(build))), *key_words)


def test_no_model_at_all_is_explained():
    captured = _captured("UNQ_C2")
    assert_zero_with(model_verdict(captured), "There is no `model`", "Sequential")
    assert model_verdict(captured).messages[0].kind == "model.missing"


def test_a_model_that_is_not_a_keras_model_is_explained():
    assert_zero_with(model_verdict(model_capture(None)), "NoneType with no layers")


def test_a_forward_error_is_reported_in_words():
    captured = model_capture(_built(model_with_input))
    del captured["forward"]
    captured["forward_error"] = {"error_name": "ValueError",
                                 "error_value": "\x1b[1mshapes do not match\x1b[0m\n\nArguments"}
    verdict = model_verdict(captured)
    assert_zero_with(verdict, "could not run on a batch of 6 images of 400 pixels",
                     "shapes do not match")
    assert "\x1b" not in texts(verdict)[0]


def test_a_wrong_output_shape_is_reported():
    captured = model_capture(_built(model_with_input))
    captured["forward"] = [row[:5] for row in captured["forward"]]
    assert_zero_with(model_verdict(captured), "output of shape (6, 10), got (6, 5)")


# ---------------------------------------------------------------- untrusted data

JUNK = (None, "x", "1.5", [], {}, [[]], True, 10**30, float("nan"), float("inf"), -1e308,
        [[1.0], [1.0, 2.0]], [[[[[[[[1.0]]]]]]]], list(range(2000)), {"a": [1.0]},
        json.loads("[" * 100 + "]" * 100))


def _children(node):
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


def _replaced(tree, path, value):
    """A copy of `tree` with the node at `path` replaced; only the path itself is copied."""
    if not path:
        return value
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[path[0]] = _replaced(tree[path[0]], path[1:], value)
    return copy


def _random_path(tree, rng):
    path, node = [], tree
    while _children(node) and (not path or rng.random() < 0.7):
        key = rng.choice(_children(node))
        path.append(key)
        node = node[key]
    return path


def _mutations(captured, count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        path = _random_path(captured, rng)
        if path and rng.random() < 0.2:  # a missing key, or a list cut short
            yield _replaced(captured, path[:-1], _without(_subtree(captured, path[:-1]),
                                                          path[-1]))
        else:
            yield _replaced(captured, path, rng.choice(JUNK))


def _without(container, key):
    if isinstance(container, dict):
        return {name: value for name, value in container.items() if name != key}
    return container[:key]


def _subtree(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def assert_a_sound_verdict(verdict, exercise):
    assert isinstance(verdict, ExerciseVerdict) and verdict.exercise == exercise
    assert verdict.points in (0, POINTS)
    assert (verdict.points == 0) == bool(verdict.messages)
    assert len(verdict.messages) <= 3
    assert all(isinstance(message, Message) and message.text and message.kind
               for message in verdict.messages)
    # The safety net is for grader bugs: malformed data must be handled on purpose.
    assert not any(message.kind == "grader.judge_failed" for message in verdict.messages), \
        verdict


HAND_MADE_JUNK = [None, [], "cases", 5, {}, {"cases": None}, {"cases": [None] * 9},
                  {"cases": [{}] * 9}, {"layers": "x"}, {"layers": [None]}, {"layers": [{}]},
                  {"error": 3}, {"missing": 3}, {"cases": [{"error": "x"}] * 15},
                  {"forward_error": "x", "layers": []},
                  {"layers": [{"class": "Dense", "units": True}]},
                  {"layers": [{"class": "Dense", "units": 25, "weights": [[1.0, "a"]]}]},
                  {"layers": [{"class": "Dense", "weights": "x"}] * 3}, {"type": "x"}]


@pytest.mark.parametrize("exercise", ["UNQ_C1", "UNQ_C2"])
def test_hand_made_junk_never_raises(exercise):
    for captured in HAND_MADE_JUNK:
        for failure in (None, Failure.raised("x" * 10_000, 42)):
            assert_a_sound_verdict(judge(exercise, captured, failure), exercise)


@pytest.fixture(scope="module")
def good_captures():
    return {"UNQ_C1": softmax_capture(softmax_stable),
            "UNQ_C2": model_capture(_built(model_with_input))}


@pytest.mark.parametrize("exercise", ["UNQ_C1", "UNQ_C2"])
def test_fuzzed_captures_never_raise(exercise, good_captures):
    for captured in _mutations(good_captures[exercise], count=400, seed=7):
        assert_a_sound_verdict(judge(exercise, captured), exercise)


def test_unreadable_data_is_explained_not_raised(good_captures):
    captured = _replaced(good_captures["UNQ_C1"], ["cases", 2, "a"], "0.5")
    assert_zero_with(softmax_verdict(captured), "could not read")
    captured = _replaced(good_captures["UNQ_C2"], ["layers", 0, "weights", 1], [None])
    assert_zero_with(model_verdict(captured), "could not read")


def test_nan_weights_and_outputs_are_reported(good_captures):
    captured = _replaced(good_captures["UNQ_C2"], ["layers", 1, "weights", 1, 0], float("nan"))
    assert_zero_with(model_verdict(captured), "NaN or infinite weights")
    captured = _replaced(good_captures["UNQ_C2"], ["forward", 0, 0], float("nan"))
    assert_zero_with(model_verdict(captured), "NaN or infinity")


def test_a_grader_bug_costs_one_verdict_not_the_batch(monkeypatch, good_captures):
    def broken(cases):
        raise RuntimeError("bug")

    monkeypatch.setattr(softmax.lab_rules, "softmax_problems", broken)
    assert_zero_with(softmax_verdict(good_captures["UNQ_C1"]), "grader failed", "regrade")
    assert verdicts.judge_outcome  # the stage that gives each exercise its own boundary


def test_the_same_data_always_gives_the_same_verdict(good_captures):
    for exercise, captured in good_captures.items():
        round_trip = json.loads(json.dumps(captured))
        assert judge(exercise, captured) == judge(exercise, round_trip)
    wrong = softmax_capture(sorted_output)
    assert softmax_verdict(wrong) == softmax_verdict(json.loads(json.dumps(wrong)))


# ---------------------------------------------------------------- entry points and feedback

def test_verdict_text_shows_points_then_one_line_per_mistake():
    assert verdict_text(ExerciseVerdict("UNQ_C1", 50, 50)) == \
        "UNQ_C1: 50/50 points. All hidden tests passed."
    verdict = ExerciseVerdict("UNQ_C2", 0, 50, (Message("a", "first problem."),
                                                Message("b", "second problem.")))
    assert verdict_text(verdict) == \
        "UNQ_C2: 0/50 points.\n- first problem.\n- second problem."


def test_the_capture_ignores_what_the_student_shadows():
    # The capture reaches the student's globals only through its namespace; shadowing
    # builtins or names imported with * must neither break it nor change what it reports.
    def stable(z):
        exp_z = np.exp(z - np.max(z))
        return exp_z / exp_z.sum()

    def silent(*args, **kwargs):
        return None

    shadows = {"print": silent, "type": silent, "str": silent, "getattr": silent,
               "hasattr": silent, "Exception": KeyError, "NameError": KeyError,
               "json": None, "numpy": None, "np": None, "test_my_softmax": silent}
    assert judge("UNQ_C1", _captured("UNQ_C1", my_softmax=stable, **shadows)).full_marks
    model = tf.keras.Sequential([tf.keras.Input(shape=(400,)),
                                 tf.keras.layers.Dense(25, activation="relu"),
                                 tf.keras.layers.Dense(15, activation="relu"),
                                 tf.keras.layers.Dense(10)])
    assert judge("UNQ_C2", _captured("UNQ_C2", model=model, **shadows)).full_marks


OTHER_SECRET = bytes(range(16))


def test_hidden_inputs_follow_the_secret_the_grader_passes():
    captured = _captured("UNQ_C1", secret=OTHER_SECRET, my_softmax=softmax_stable)
    seen = [np.array(case["z"]) for case in captured["cases"]]
    expected = [z for _, z in softmax_inputs(OTHER_SECRET)]
    assert all(np.array_equal(a, b) for a, b in zip(seen, expected, strict=True))
    default = [z for _, z in softmax_inputs(SECRET)]
    assert not all(np.array_equal(a, b) for a, b in zip(seen, default, strict=True))
    assert judge("UNQ_C1", captured, secret=OTHER_SECRET).full_marks
    # Answers for another grading's inputs (e.g. one a student saw before) earn nothing.
    assert judge("UNQ_C1", captured).points == 0
    model = _captured("UNQ_C2", secret=OTHER_SECRET, model=_built(model_with_input))
    assert judge("UNQ_C2", model, secret=OTHER_SECRET).full_marks
    assert judge("UNQ_C2", model).points == 0


def test_the_inputs_sent_are_json_data_that_come_back_exactly():
    """What the kernel is sent is plain data: floats (the batch's float32 ones too) come
    back from JSON bit for bit, so the judge's equality check holds for honest runs."""
    inputs = LAB.hidden_inputs(SECRET)
    assert json.loads(json.dumps(inputs)) == inputs
    batch = np.array(inputs["UNQ_C2"]["batch"], dtype="float32")
    assert np.array_equal(batch.astype(float), np.array(inputs["UNQ_C2"]["batch"]))
    assert LAB.hidden_inputs(SECRET) == inputs and LAB.hidden_inputs(OTHER_SECRET) != inputs
