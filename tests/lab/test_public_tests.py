"""Tests for public_tests.py: right answers pass, wrong answers fail with a message that
names the mistake, and testing a model leaves the model and every random state alone."""

import contextlib
import random
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.keras.layers import Dense

import public_tests


def check_softmax(target):
    """Run the public check as the notebook does; True when it finds nothing wrong.

    The public functions only print (their result would be echoed in the notebook), so
    the verdict comes from the function they print.
    """
    assert public_tests.test_my_softmax(target) is None
    return not public_tests.softmax_problems(target)


def check_model(target, classes, input_size):
    """Like check_softmax, for the model."""
    assert public_tests.test_model(target, classes, input_size) is None
    return not public_tests.model_problems(target, classes, input_size)

CLASSES = 10
INPUT_SIZE = 400


# ---------------------------------------------------------------- softmax answers

def softmax_loop(z):
    exp_sum = 0.0
    for k in range(z.shape[0]):
        exp_sum += np.exp(z[k])
    a = np.zeros(z.shape[0])
    for j in range(z.shape[0]):
        a[j] = np.exp(z[j]) / exp_sum
    return a


def softmax_vectorised(z):
    exp_z = np.exp(z)
    return exp_z / np.sum(exp_z)


def softmax_stable(z):
    exp_z = np.exp(z - np.max(z))
    return exp_z / exp_z.sum()


def softmax_stable_in_place(z):
    z -= np.max(z)  # changes the caller's array: the test must not depend on it
    return np.exp(z) / np.exp(z).sum()


def unnormalised(z):
    return np.exp(z)


def divided_by_sum_of_z(z):
    return np.exp(z) / np.sum(z)


def loop_skips_last(z):
    exp_sum = 0.0
    for k in range(z.shape[0] - 1):
        exp_sum += np.exp(z[k])
    return np.exp(z) / exp_sum


def sorted_output(z):
    return np.sort(softmax_vectorised(z))


def returns_none(z):
    a = softmax_vectorised(z)  # noqa: F841 - the missing return is the mistake


def raises_name_error(z):
    exp_z = np.exp(z)  # noqa: F841
    return a  # noqa: F821 - the undefined name is the mistake


def returns_row(z):
    return softmax_vectorised(z)[np.newaxis, :]


def returns_sum(z):
    return np.sum(softmax_vectorised(z))


def returns_shifted_z(z):
    return z - np.max(z)


def returns_nan(z):
    return np.full(z.shape, np.nan)


def raises_index_error(z):
    return np.exp(z) / sum(np.exp(z[k]) for k in range(z.shape[0] + 1))


@pytest.mark.parametrize("answer", [softmax_loop, softmax_vectorised, softmax_stable,
                                    softmax_stable_in_place])
def test_correct_softmax_passes(answer, capsys):
    assert check_softmax(answer) is True
    assert "All tests passed!" in capsys.readouterr().out


@pytest.mark.parametrize(("answer", "words"), [
    (unnormalised, ["exp(z)", "sum"]),
    (divided_by_sum_of_z, ["sum of z"]),
    (loop_skips_last, ["skips", "range(N)"]),
    (sorted_output, ["order", "sort"]),
    (returns_none, ["None", "return a"]),
    (raises_name_error, ["NameError", "`a`"]),
    (raises_index_error, ["IndexError", "range(N)"]),
    (returns_row, ["shape", "(4,)", "(1, 4)"]),
    (returns_sum, ["single number"]),
    (returns_shifted_z, ["z - max(z)", "negative", "take exp"]),
    (returns_nan, ["NaN"]),
])
def test_wrong_softmax_fails_and_names_the_mistake(answer, words, capsys):
    assert check_softmax(answer) is False
    out = capsys.readouterr().out
    assert "All tests passed!" not in out
    for word in words:
        assert word in out


@pytest.mark.parametrize("answer", [unnormalised, divided_by_sum_of_z, loop_skips_last])
def test_softmax_message_shows_expected_and_got(answer, capsys):
    check_softmax(answer)
    out = capsys.readouterr().out
    assert "On the input z = [1., 2., 3., 4.] (a small example, size 4)" in out
    assert "expected a = [0.032, 0.087, 0.237, 0.644], got a = [" in out


def test_softmax_failure_is_red_and_success_green(capsys):
    check_softmax(unnormalised)
    assert capsys.readouterr().out.startswith("\033[91m")
    check_softmax(softmax_stable)
    assert capsys.readouterr().out == "\033[92mAll tests passed!\033[0m\n"


@pytest.mark.parametrize("target", [None, "my_softmax", 3, lambda: None, lambda z: "text"])
def test_softmax_never_raises(target, capsys):
    assert check_softmax(target) is False
    assert capsys.readouterr().out


def test_softmax_silent_on_stderr(capfd):
    for answer in (softmax_loop, unnormalised, divided_by_sum_of_z, loop_skips_last,
                   returns_none, raises_name_error, returns_nan):
        check_softmax(answer)
    assert capfd.readouterr().err == ""


def test_student_warnings_go_to_stdout(capfd):
    def divides_by_zero(z):
        return np.exp(z) / np.zeros(1)

    assert check_softmax(divides_by_zero) is False
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "divide by zero" in captured.out


# ---------------------------------------------------------------- models

def build_model(units=(25, 15, CLASSES), activations=("relu", "relu", "linear"),
                input_shape=(INPUT_SIZE,), use_bias=True):
    """A Sequential model as a student writes it; input_shape None leaves out the Input."""
    layers = [Dense(n, activation=act, use_bias=use_bias)
              for n, act in zip(units, activations, strict=True)]
    if input_shape is not None:
        layers.insert(0, tf.keras.Input(shape=input_shape))
    return tf.keras.Sequential(layers, name="my_model")


def functional_model():
    inputs = keras.Input(shape=(INPUT_SIZE,))
    hidden = Dense(15, activation="relu")(Dense(25, activation="relu")(inputs))
    return keras.Model(inputs, Dense(CLASSES)(hidden), name="my_model")


CORRECT_MODELS = {
    "with Input": lambda: build_model(),
    "without Input": lambda: build_model(input_shape=None),
    "keras relu": lambda: build_model(activations=(keras.activations.relu,) * 2 + (None,)),
    "tf.nn.relu": lambda: build_model(activations=(tf.nn.relu, tf.nn.relu, "linear")),
    "output None": lambda: build_model(input_shape=None, activations=("relu", "relu", None)),
    "keras linear": lambda: build_model(activations=("relu", "relu", keras.activations.linear)),
    "own relu lambda": lambda: build_model(
        input_shape=None, activations=(lambda x: tf.maximum(x, 0.0), "relu", None)),
}


@pytest.mark.parametrize("name", CORRECT_MODELS)
def test_correct_model_passes(name, capsys):
    model = CORRECT_MODELS[name]()
    assert check_model(model, CLASSES, INPUT_SIZE) is True
    out = capsys.readouterr().out
    assert out.startswith("\033[92mAll tests passed!\033[0m\n")
    # Without an Input layer the weights do not exist before fit, and the notebook's
    # next cells print their shapes: the student is told why, without failing.
    assert ("tf.keras.Input(shape=(400,))" in out) == (not model.built)


def test_model_already_trained_passes(capsys):
    model = build_model(input_shape=None)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(np.zeros((8, INPUT_SIZE)), np.zeros(8), epochs=1, verbose=0)
    assert check_model(model, CLASSES, INPUT_SIZE) is True


@pytest.mark.parametrize(("classes", "input_size"), [(5, 64), (3, 2)])
def test_sizes_come_from_the_arguments(classes, input_size):
    model = build_model(units=(25, 15, classes), input_shape=(input_size,))
    assert check_model(model, classes, input_size) is True
    assert check_model(build_model(units=(25, 15, classes), input_shape=None),
                       classes, input_size) is True


WRONG_MODELS = {
    "wrong units": (lambda: build_model(units=(20, 15, CLASSES)),
                    ["layers[0]", "expected 25 units, got 20"]),
    "wrong output units": (lambda: build_model(input_shape=None, units=(25, 15, 9)),
                           ["layers[2]", "expected 10 units, got 9"]),
    "units swapped": (lambda: build_model(units=(15, 25, CLASSES)),
                      ["swapped", "expected 25 then 15, got 15 then 25"]),
    "sigmoid hidden": (lambda: build_model(activations=("sigmoid", "sigmoid", "linear")),
                       ["layers[0]", "layers[1]", "expected ReLU, got sigmoid"]),
    "linear hidden": (lambda: build_model(activations=("relu", None, None)),
                      ["layers[1]", "expected ReLU, got linear"]),
    "softmax output": (lambda: build_model(activations=("relu", "relu", "softmax")),
                       ["layers[2]", "softmax", "from_logits", "linear"]),
    "relu output": (lambda: build_model(activations=("relu", "relu", "relu")),
                    ["layers[2]", "expected a linear activation, got relu"]),
    "missing layer": (lambda: build_model(units=(25, CLASSES), activations=("relu", None)),
                      ["Expected 3 Dense layers", "got 2", "missing"]),
    "extra layer": (lambda: build_model(units=(25, 15, 15, CLASSES),
                                        activations=("relu", "relu", "relu", None)),
                    ["Expected 3 Dense layers", "got 4", "extra"]),
    "wrong input size": (lambda: build_model(input_shape=(40,)),
                         ["expects 40 inputs, the images have 400", "Input(shape=(400,))"]),
    # The exercise asks for Sequential, and the next cell unpacks model.layers into three.
    "functional": (functional_model, ["is a Functional model, not a Sequential one",
                                      "[layer1, layer2, layer3] = model.layers"]),
    "no bias": (lambda: build_model(use_bias=False),
                ["layers[0]", "layers[2]", "use_bias=False"]),
}


@pytest.mark.parametrize("name", WRONG_MODELS)
def test_wrong_model_fails_and_names_the_mistake(name, capsys):
    make, words = WRONG_MODELS[name]
    assert check_model(make(), CLASSES, INPUT_SIZE) is False
    out = capsys.readouterr().out
    assert "All tests passed!" not in out
    assert out.startswith("\033[91m")
    for word in words:
        assert word in out


def test_layer_of_another_kind_is_named(capsys):
    model = keras.Sequential([keras.layers.Flatten(), Dense(25, activation="relu"),
                              Dense(15, activation="relu"), Dense(CLASSES)])
    assert check_model(model, CLASSES, INPUT_SIZE) is False
    assert "layers[0]" in capsys.readouterr().out


def test_parameter_count_is_checked(capsys):
    assert check_model(build_model(input_shape=(40,)), CLASSES, INPUT_SIZE) is False
    out = capsys.readouterr().out
    assert "Expected 10,575 parameters in total, got 1,575" in out
    assert "layers[0] ('" in out


@pytest.mark.parametrize("target", [None, "my_model", 42, keras.layers.Dense(3),
                                    keras.Sequential()])
def test_model_never_raises(target, capsys):
    assert check_model(target, CLASSES, INPUT_SIZE) is False
    assert capsys.readouterr().out.startswith("\033[91m")


def test_model_silent_on_stderr(capfd):
    models = [make() for make in CORRECT_MODELS.values()]
    models += [make() for make, _ in WRONG_MODELS.values()]
    capfd.readouterr()
    for model in models:
        check_model(model, CLASSES, INPUT_SIZE)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- side effects

def weights_of(model):
    return [weight.numpy().copy() for weight in model.weights]


@pytest.mark.parametrize("input_shape", [(INPUT_SIZE,), None])
def test_student_model_unchanged(input_shape):
    model = build_model(input_shape=input_shape)
    before, names = weights_of(model), [layer.name for layer in model.layers]
    check_model(model, CLASSES, INPUT_SIZE)
    after = weights_of(model)
    assert model.built == (input_shape is not None)
    assert [layer.built for layer in model.layers] == [model.built] * 3
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)
    assert [layer.name for layer in model.layers] == names
    assert not model.compiled


def draws_from_every_generator():
    """One number from each random source a student's training may use."""
    return [random.random(), np.random.rand(), float(tf.random.uniform(())),
            float(keras.random.uniform(()))]


@pytest.mark.parametrize("input_shape", [(INPUT_SIZE,), None])
def test_global_random_state_unchanged(input_shape):
    model = build_model(input_shape=input_shape)
    keras.utils.set_random_seed(3)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    check_model(model, CLASSES, INPUT_SIZE)
    assert random.getstate() == python_state
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state[1])
    after_test = draws_from_every_generator()
    keras.utils.set_random_seed(3)
    assert draws_from_every_generator() == after_test


def first_kernel():
    return build_model(input_shape=(4,), units=(3, 3, 3)).layers[0].kernel.numpy()


def test_keras_initializers_seed_from_python_random():
    # Why _preserved_random_state saves Python's state: it alone fixes Keras 3 weights.
    tf.random.set_seed(5)
    tf_only = first_kernel()
    tf.random.set_seed(5)
    assert not np.array_equal(first_kernel(), tf_only)
    random.seed(5)
    python_only = first_kernel()
    random.seed(5)
    np.testing.assert_array_equal(first_kernel(), python_only)


def test_cloning_would_move_the_python_random_state(monkeypatch):
    # Shows the restore is needed: Keras 3 initializers take their seeds from `random`.
    monkeypatch.setattr(public_tests, "_preserved_random_state", contextlib.nullcontext)
    model = build_model(input_shape=None)
    state = random.getstate()
    check_model(model, CLASSES, INPUT_SIZE)
    assert random.getstate() != state


def train_tiny(input_shape, run_public_test):
    """Seed, build, optionally test, train briefly: weights and later draws to compare."""
    keras.utils.set_random_seed(11)
    model = build_model(input_shape=input_shape)
    if run_public_test:
        check_model(model, CLASSES, INPUT_SIZE)
    features = np.random.rand(32, INPUT_SIZE).astype("float32")
    labels = np.random.randint(0, CLASSES, 32)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=keras.optimizers.Adam(0.01))
    model.fit(features, labels, epochs=2, batch_size=8, verbose=0)
    return weights_of(model), draws_from_every_generator()


@pytest.mark.parametrize("input_shape", [(INPUT_SIZE,), None])
def test_training_identical_with_or_without_test_model(input_shape):
    weights_without, draws_without = train_tiny(input_shape, run_public_test=False)
    weights_with, draws_with = train_tiny(input_shape, run_public_test=True)
    for plain, tested in zip(weights_without, weights_with, strict=True):
        np.testing.assert_array_equal(plain, tested)
    assert draws_without == draws_with


def test_calls_are_fast():
    model = build_model(input_shape=None)
    check_model(model, CLASSES, INPUT_SIZE)  # the first call traces TensorFlow functions
    start = time.perf_counter()
    check_model(model, CLASSES, INPUT_SIZE)
    check_softmax(softmax_loop)
    assert time.perf_counter() - start < 1.0


def test_module_docstring_says_what_the_tests_return(capsys):
    # The notebook echoes a cell's last value: the public tests return None, and say so.
    doc = public_tests.__doc__
    assert "returns None" in doc and "True" not in doc and "False" not in doc
    assert public_tests.test_my_softmax(softmax_vectorised) is None
    assert public_tests.test_my_softmax(unnormalised) is None
    assert public_tests.test_model(build_model(), CLASSES, INPUT_SIZE) is None
    assert public_tests.test_model(build_model(units=(20, 15, CLASSES)), CLASSES,
                                   INPUT_SIZE) is None
    capsys.readouterr()
