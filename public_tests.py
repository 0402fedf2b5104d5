"""Public tests for the lab "Neural Networks for Handwritten Digit Recognition, Multiclass".

The notebook runs `test_my_softmax(my_softmax)` and `test_model(model, 10, 400)`.
Each prints a green "All tests passed!" or, in red, what is wrong, and returns None:
each call is the last line of its cell, where a returned value would be echoed under
the message. `softmax_problems` and `model_problems` return the messages as a list
(empty when all is well) for code that needs the verdict. The tests never raise and
never write to stderr: a student who runs a half-done notebook should read a clear
message, not a traceback. Points are decided elsewhere, by hidden tests.

What counts as right, and every message, comes from lab_rules.py: the grader's hidden
tests apply the same rules to other inputs, so a message here reads the same there.

`test_model` runs between building the model and training it, so it must leave the
student's model and every random state as it found them; otherwise the student's
training results would depend on whether the test cell ran.
"""

import contextlib
import random
import warnings

import keras
import numpy as np

import lab_rules

__all__ = ["test_my_softmax", "test_model"]

GREEN = "\033[92m"
YELLOW = "\033[93m"
RED = "\033[91m"
RESET = "\033[0m"

# Inputs for my_softmax, in the order a student meets them: the first case catches
# most mistakes; the unsorted one is the only one that can reveal a reordered output.
SOFTMAX_CASES = (
    ("a small example", [1.0, 2.0, 3.0, 4.0]),
    ("all-equal values", [2.0, 2.0, 2.0, 2.0]),
    ("a single element", [5.0]),
    ("negative values", [-1.0, -2.0, -3.0]),
    ("an unsorted vector", [0.5, -1.2, 3.1, 0.0, 2.2, -0.3, 1.7, -2.5, 0.9, 1.1]),
)

# Rows of fake images the model is tried on (each row scaled up by lab_rules.spread_rows).
FORWARD_PROBE_ROWS = len(lab_rules.ROW_SCALES)


# ---------------------------------------------------------------- reporting

def _report(problems):
    """Print the outcome in colour.

    Returns nothing on purpose: the call is the last line of its notebook cell, where a
    returned value would be echoed under the message.
    """
    if not problems:
        print(f"{GREEN}All tests passed!{RESET}")
        return
    for problem in problems:
        print(f"{RED}{problem}{RESET}")


def _describe_exception(error):
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------- my_softmax

def test_my_softmax(target):
    """Check a student's softmax on several inputs and print the outcome."""
    _report(softmax_problems(target))


def softmax_problems(target):
    """What is wrong with a softmax function, as messages; empty when it is right."""
    try:
        if not callable(target):
            return [f"Expected a function, got {type(target).__name__}: pass my_softmax"
                    " itself."]
        cases = lab_rules.softmax_cases(target, SOFTMAX_CASES)
        problems = [problem.text for problem in lab_rules.softmax_problems(cases)]
        warned = next((case.warning for case in cases if case.warning), None)
        if problems and warned:
            # Shown here, on stdout, with the diagnosis rather than on stderr.
            problems.append(f"(Python warned: {warned})")
        return problems
    except Exception as error:  # whatever the student passes, report instead of crashing
        return [f"Could not test my_softmax: {_describe_exception(error)}"]


# ---------------------------------------------------------------- the model

def test_model(target, classes, input_size):
    """Check the student's Keras model and print the outcome."""
    problems = model_problems(target, classes, input_size)
    _report(problems)
    if not problems and _defined_input_shape(target) is None:
        print(f"{YELLOW}Note: without tf.keras.Input(shape=({input_size},)) the model gets "
              "its weights only when it first sees data, so the cells below that print "
              f"the weight shapes cannot run yet. Add the Input line to see them.{RESET}")


def model_problems(target, classes, input_size):
    """What is wrong with a model, as messages; empty when it is right.

    The student's model is never built, called or changed: its facts (layers, weights,
    what each activation computes, its output on a batch) come from a built copy with
    fresh weights, and lab_rules judges them.
    """
    try:
        with _preserved_random_state(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _model_problems(target, classes, input_size)
    except Exception as error:  # whatever the student passes, report instead of crashing
        return [f"Could not test the model: {_describe_exception(error)}"]


@contextlib.contextmanager
def _preserved_random_state():
    """Restore Python's and NumPy's global random states on exit.

    Keras 3 initializers without a seed draw theirs from Python's `random` when a layer
    is created, so copying the model would shift the student's later random numbers.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _model_problems(model, classes, input_size):
    if not isinstance(model, keras.Model):
        return [f"Expected a Keras model, got {type(model).__name__}:"
                " build it with Sequential([...]) and assign it to `model`."]
    # A local generator: the global NumPy state belongs to the student.
    rows = np.random.default_rng(0).uniform(0.0, 1.0, (FORWARD_PROBE_ROWS, input_size))
    batch = lab_rules.spread_rows(rows)
    facts = lab_rules.model_facts(_built_copy(model, input_size), batch)
    # What the student built, not what the copy is.
    facts.update(type=type(model).__name__, sequential=isinstance(model, keras.Sequential))
    problems = lab_rules.model_problems(facts, batch, classes, input_size)
    return [problem.text for problem in problems]


def _defined_input_shape(model):
    """The input shape without the batch axis, or None if the model has none yet."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # Keras 3 raises these for an unbuilt model
        return None
    if not inputs:
        return None
    return tuple(inputs[0].shape[1:])


def _built_copy(model, input_size):
    """A built copy with fresh weights: building or calling the student's model would change it."""
    try:
        copy = keras.models.clone_model(model)
    except Exception:  # e.g. a lambda activation cannot be serialised; the structure is enough
        copy = _structural_copy(model, input_size)
    if not copy.built:
        copy.build((None, input_size))
    return copy


def _structural_copy(model, input_size):
    layers = [keras.layers.Dense(layer.units, activation=layer.activation, name=layer.name,
                                 use_bias=layer.use_bias, trainable=layer.trainable,
                                 dtype=layer.dtype_policy)
              for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return keras.Sequential([keras.Input(shape=(input_size,)), *layers])
