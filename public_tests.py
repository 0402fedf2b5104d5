"""Public tests for the lab "Neural Networks for Handwritten Digit Recognition, Multiclass".

The notebook runs `test_my_softmax(my_softmax)` and `test_model(model, 10, 400)`.
Each prints a green "All tests passed!" or, in red, what is wrong, and returns None:
each call is the last line of its cell, where a returned value would be echoed under
the message. `softmax_problems` and `model_problems` return the messages as a list
(empty when all is well) for code that needs the verdict. The tests never raise and
never write to stderr: a student who runs a half-done notebook should read a clear
message, not a traceback. Points are decided elsewhere, by hidden tests.

`test_model` runs between building the model and training it, so it must leave the
student's model and every random state as it found them; otherwise the student's
training results would depend on whether the test cell ran.
"""

import contextlib
import random
import warnings
from itertools import pairwise

import keras
import numpy as np

__all__ = ["test_my_softmax", "test_model"]

GREEN = "\033[92m"
YELLOW = "\033[93m"
RED = "\033[91m"
RESET = "\033[0m"

HIDDEN_UNITS = (25, 15)

# Inputs for my_softmax, in the order a student meets them: the first case catches
# most mistakes; the unsorted one is the only one that can reveal a reordered output.
SOFTMAX_CASES = (
    ("a small example", [1.0, 2.0, 3.0, 4.0]),
    ("all-equal values", [2.0, 2.0, 2.0, 2.0]),
    ("a single element", [5.0]),
    ("negative values", [-1.0, -2.0, -3.0]),
    ("an unsorted vector", [0.5, -1.2, 3.1, 0.0, 2.2, -0.3, 1.7, -2.5, 0.9, 1.1]),
)

# Where activations differ visibly: negatives, zero, positives.
ACTIVATION_PROBE = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0]], dtype="float32")

FORWARD_PROBE_ROWS = 4


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


def _fmt(values):
    return np.array2string(np.asarray(values, dtype=float), precision=3, suppress_small=True)


def _describe_exception(error):
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------- my_softmax

def test_my_softmax(target):
    """Check a student's softmax on several inputs and print the outcome."""
    _report(softmax_problems(target))


def softmax_problems(target):
    """What is wrong with a softmax function, as messages; empty when it is right."""
    try:
        return _softmax_problems(target)
    except Exception as error:  # whatever the student passes, report instead of crashing
        return [f"Could not test my_softmax: {_describe_exception(error)}"]


def _softmax_problems(target):
    if not callable(target):
        return [f"Expected a function, got {type(target).__name__}: pass my_softmax itself."]
    for description, values in SOFTMAX_CASES:
        z = np.array(values)
        problem = _softmax_case_problem(target, z)
        if problem:
            return [f"my_softmax failed on {description}: z = {_fmt(z)}", problem]
    return []


def _softmax_case_problem(target, z):
    # A copy, so that a student who changes z in place does not change our reference.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = target(z.copy())
        except Exception as error:
            return _raised_message(error)
    problem = _softmax_result_problem(z, result)
    if problem and caught:
        # Shown on stdout with the diagnosis rather than on stderr.
        problem += f"\n  (Python warned: {caught[0].message})"
    return problem


def _raised_message(error):
    message = f"It raised {_describe_exception(error)}."
    if isinstance(error, NameError):
        message += (" A name is used before it is defined: did you assign your result to `a`,"
                    " and spell every variable as you defined it?")
    elif isinstance(error, IndexError):
        message += " An index went out of range: loop over range(N), with N = z.shape[0]."
    return message


def _softmax_result_problem(z, result):
    """Diagnose one result, most specific mistake first; None if it is right."""
    if result is None:
        return ("It returned None: compute the softmax of z, assign it to `a` and make sure "
                "the function ends with `return a`.")
    try:
        got = np.asarray(result, dtype=float)
    except (TypeError, ValueError):
        return f"Expected a NumPy array of probabilities, got {type(result).__name__}."
    if got.shape != z.shape:
        return _shape_message(z, got)
    expected = _reference_softmax(z)
    versus = f"\n  expected a = {_fmt(expected)}\n  got      a = {_fmt(got)}"
    if not np.all(np.isfinite(got)):
        return "The output contains NaN or infinity: is a denominator zero?" + versus
    mistake = _known_mistake(z, got)
    if mistake:
        return mistake + versus
    return _property_problem(z, got, expected, versus)


def _property_problem(z, got, expected, versus):
    if np.any(got < 0):
        return ("Probabilities cannot be negative: exp(z) is always positive,"
                " so use exp(z) rather than z." + versus)
    if not np.isclose(got.sum(), 1.0):
        return (f"The outputs should sum to 1, they sum to {got.sum():.3f}:"
                " did you divide each exp(z_j) by the sum of exp(z_k) over all k?" + versus)
    if not _follows_order(z, got):
        return ("The order of a does not follow z: the largest z should get the largest"
                f" probability (expected at index {np.argmax(z)}, got index {np.argmax(got)})."
                " Did you sort the values or mix up indices?" + versus)
    if not np.allclose(got, expected):
        return "The values differ from softmax: a_j = exp(z_j) / sum_k exp(z_k)." + versus
    return None


def _shape_message(z, got):
    expected = f"expected shape {z.shape}, got {got.shape}"
    if got.ndim == 0:
        return f"It returned a single number ({expected}): return the whole array a."
    if got.size == z.size:
        return f"The output is not 1-D ({expected}): create a with np.zeros(N)."
    return f"Wrong output length ({expected}): a needs one probability per element of z."


def _reference_softmax(z):
    # Subtracting the max does not change softmax and keeps exp from overflowing.
    exp_z = np.exp(z - np.max(z))
    return exp_z / exp_z.sum()


def _known_mistake(z, got):
    """Recognise frequent wrong formulas by recomputing them."""
    exp_z = np.exp(z)
    # Our own divisions may divide by zero (e.g. z sums to 0); that only means "no match".
    with np.errstate(all="ignore"):
        if np.allclose(got, exp_z):
            return ("It returned exp(z) without normalising: divide each exp(z_j)"
                    " by the sum of exp(z_k) over all k.")
        if np.allclose(got, exp_z / z.sum()):
            return ("It looks like you divided by the sum of z:"
                    " divide by the sum of exp(z_k) instead.")
        if z.size > 1 and (np.allclose(got, exp_z / exp_z[:-1].sum())
                           or np.allclose(got, exp_z / exp_z[1:].sum())):
            return ("The sum in the denominator skips an element (first or last):"
                    " check that your loop runs over all N elements, range(N).")
    return None


def _follows_order(z, got):
    """Whether a larger z always gets a larger probability, and equal z equal ones."""
    z_order = np.sign(z[:, None] - z[None, :])
    differences = got[:, None] - got[None, :]
    got_order = np.where(np.abs(differences) < 1e-9, 0.0, np.sign(differences))
    return np.array_equal(z_order, got_order)


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

    Layer counts, units, activations (judged by what they compute), bias, input size,
    parameter count and output shape. The student's model is never built, called or
    changed: anything that needs weights is done on a copy.
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
    problems = _layer_problems(model, classes)
    if problems:
        return problems
    problems = _input_problems(model, input_size)
    if problems:
        return problems
    return _copy_problems(model, classes, input_size)


def _where(index, layer):
    return f"layers[{index}] ('{layer.name}')"


def _dense_layers(model):
    return [(index, layer) for index, layer in enumerate(model.layers)
            if isinstance(layer, keras.layers.Dense)]


def _layer_problems(model, classes):
    expected_units = (*HIDDEN_UNITS, classes)
    problems = [f"{_where(index, layer)} is a {type(layer).__name__} layer: expected only"
                " Dense layers (an Input is fine)."
                for index, layer in enumerate(model.layers)
                if not isinstance(layer, (keras.layers.Dense, keras.layers.InputLayer))]
    dense = _dense_layers(model)
    if len(dense) != len(expected_units):
        problems.append(_layer_count_message(dense, expected_units))
        return problems
    problems += _units_problems(dense, expected_units)
    problems += _activation_problems(dense)
    problems += [f"{_where(index, layer)} has use_bias=False: expected a bias in every layer"
                 " (the default); remove use_bias=False."
                 for index, layer in dense if not layer.use_bias]
    return problems


def _layer_count_message(dense, expected_units):
    got_units = [layer.units for _, layer in dense]
    hint = "Is a layer missing?" if len(dense) < len(expected_units) else "Remove the extra layer."
    return (f"Expected {len(expected_units)} Dense layers with units {list(expected_units)},"
            f" got {len(dense)} with units {got_units}. {hint}")


def _units_problems(dense, expected_units):
    hidden = dense[:len(HIDDEN_UNITS)]
    got_hidden = tuple(layer.units for _, layer in hidden)
    problems = []
    if got_hidden == HIDDEN_UNITS[::-1]:
        names = ", ".join(_where(index, layer) for index, layer in hidden)
        problems.append(f"The hidden layers' units look swapped ({names}): expected"
                        f" {HIDDEN_UNITS[0]} then {HIDDEN_UNITS[1]},"
                        f" got {got_hidden[0]} then {got_hidden[1]}.")
        dense, expected_units = dense[len(HIDDEN_UNITS):], expected_units[len(HIDDEN_UNITS):]
    problems += [f"{_where(index, layer)}: expected {units} units, got {layer.units}."
                 for (index, layer), units in zip(dense, expected_units, strict=True)
                 if layer.units != units]
    return problems


def _activation_problems(dense):
    *hidden, (output_index, output_layer) = dense
    problems = [_hidden_activation_problem(index, layer) for index, layer in hidden]
    problems.append(_output_activation_problem(output_index, output_layer))
    return [problem for problem in problems if problem]


def _hidden_activation_problem(index, layer):
    kind = _activation_kind(layer.activation)
    if kind == "relu":
        return None
    message = (f"{_where(index, layer)}: expected ReLU, got {kind}."
               " Use ReLU in the hidden layers (activation='relu').")
    if kind == "linear":
        message += " Without it, the layers collapse into a single linear map."
    return message


def _output_activation_problem(index, layer):
    kind = _activation_kind(layer.activation)
    if kind == "linear":
        return None
    where = f"{_where(index, layer)} (the output layer)"
    if kind == "softmax":
        return (f"{where}: expected a linear activation, got softmax. Use a linear output"
                " (activation='linear'); the softmax is applied inside the loss,"
                " SparseCategoricalCrossentropy(from_logits=True).")
    return (f"{where}: expected a linear activation, got {kind}. The output must be raw"
            " scores (logits): use activation='linear'; the loss applies the softmax"
            " (from_logits=True).")


def _softmax_rows(x):
    exp_x = np.exp(x - x.max(axis=-1, keepdims=True))
    return exp_x / exp_x.sum(axis=-1, keepdims=True)


# What each activation computes on ACTIVATION_PROBE, so that 'relu', keras.activations.relu
# and tf.nn.relu are all recognised as ReLU, and 'linear' and None as linear.
REFERENCE_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "linear": lambda x: x,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "softmax": _softmax_rows,
    "tanh": np.tanh,
}


def _activation_kind(activation):
    """Name an activation by what it computes on a probe, not by how it was spelled."""
    try:
        got = keras.ops.convert_to_numpy(activation(ACTIVATION_PROBE))
    except Exception as error:  # a student's own activation may fail on our probe
        return f"an activation that fails on a test input ({_describe_exception(error)})"
    for kind, reference in REFERENCE_ACTIVATIONS.items():
        expected = reference(ACTIVATION_PROBE)
        if got.shape == expected.shape and np.allclose(got, expected, atol=1e-5):
            return kind
    name = getattr(activation, "__name__", type(activation).__name__)
    return f"an unexpected activation ('{name}')"


def _input_problems(model, input_size):
    # An unbuilt model without an Input is fine: Keras infers the size at fit time.
    shape = _defined_input_shape(model)
    if shape is None or shape == (input_size,):
        return []
    return [f"The model's input shape is {(None, *shape)}, expected {(None, input_size)}:"
            f" use tf.keras.Input(shape=({input_size},)), one value per pixel."]


def _defined_input_shape(model):
    """The input shape without the batch axis, or None if the model has none yet."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # Keras 3 raises these for an unbuilt model
        return None
    if not inputs:
        return None
    return tuple(inputs[0].shape[1:])


def _copy_problems(model, classes, input_size):
    copy = _built_copy(model, input_size)
    problems = _param_count_problems(model, copy, classes, input_size)
    return problems or _forward_problems(copy, classes, input_size)


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
    layers = [keras.layers.Dense(layer.units, use_bias=layer.use_bias)
              for _, layer in _dense_layers(model)]
    return keras.Sequential([keras.Input(shape=(input_size,)), *layers])


def _param_count_problems(model, copy, classes, input_size):
    sizes = (input_size, *HIDDEN_UNITS, classes)
    # Each Dense layer has a weight per (input, unit) pair and a bias per unit.
    expected = [(n_in + 1) * n_out for n_in, n_out in pairwise(sizes)]
    got = [layer.count_params() for _, layer in _dense_layers(copy)]
    if got == expected:
        return []
    names = [_where(index, layer) for index, layer in _dense_layers(model)]
    details = "; ".join(f"{name}: expected {want:,}, got {have:,}"
                        for name, want, have in zip(names, expected, got, strict=True))
    return [f"Expected {sum(expected):,} parameters in total, got {sum(got):,} ({details})."]


def _forward_problems(copy, classes, input_size):
    # A local generator: the global NumPy state belongs to the student.
    probe = np.random.default_rng(0).standard_normal((FORWARD_PROBE_ROWS, input_size))
    output = keras.ops.convert_to_numpy(copy(probe.astype("float32"), training=False))
    expected_shape = (FORWARD_PROBE_ROWS, classes)
    if output.shape != expected_shape:
        return [f"A batch of shape {probe.shape} should give an output of shape"
                f" {expected_shape}, got {output.shape}."]
    if not np.all(np.isfinite(output)):
        return ["The model's output contains NaN or infinity on a test batch."]
    return []
