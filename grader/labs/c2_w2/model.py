"""UNQ_C2, the Sequential model: judged from its described layers, weights and output.

Runs in the grader's own process with NumPy only: activations are named by what they
computed on a probe, and the model's output on the hidden batch is recomputed from its
captured weights, so neither the model's own description nor its forward pass is taken
on trust. Checked in three stages, stopping at the first with problems (later ones would
only repeat their consequences): the layers asked for, the weights they hold, what the
model computes.
"""

import functools
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from grader.judge.failures import failure_message
from grader.judge.text import (
    Unreadable,
    answer_cell_stopped,
    captured_error,
    fmt,
    number_array,
    quote,
)
from grader.labs.c2_w2.hidden_inputs import MODEL_BATCH_SHAPE, model_batch
from grader.labs.c2_w2.in_kernel import ACTIVATION_PROBE
from grader.plugin import Judgement
from grader.records import Message

SUBJECT = "the model"
EXPECTED_UNITS = (25, 15, 10)
INPUT_SIZE = 400
# Each Dense layer has a weight per (input, unit) pair and a bias per unit.
LAYER_SIZES = (INPUT_SIZE, *EXPECTED_UNITS)
EXPECTED_PARAMETERS = sum((n_in + 1) * n_out for n_in, n_out in pairwise(LAYER_SIZES))
FORWARD_TOLERANCE = 1e-4
ACTIVATION_ATOL = 1e-5


def _softmax_rows(x):
    exp_x = np.exp(x - x.max(axis=-1, keepdims=True))
    return exp_x / exp_x.sum(axis=-1, keepdims=True)


# What each activation computes, so that an activation is named by its behaviour on the
# probe: 'relu', keras relu and tf.nn.relu are all ReLU, 'linear' and None both linear.
ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "linear": lambda x: x,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "softmax": _softmax_rows,
}


@dataclass(frozen=True)
class _Layer:
    index: int
    kind: str  # the layer's class name, e.g. "Dense"
    name: str
    units: int | None
    use_bias: bool | None
    weights: tuple | None  # of float arrays; None when not captured (see weights_error)
    weights_error: str | None
    activation: str  # what the activation computes: "relu", ... or a description

    @property
    def where(self):
        return f"layers[{self.index}] ('{self.name}')"


def judge_model(run, secret):
    messages = _messages(run, secret)
    return Judgement(0.0 if messages else 1.0, tuple(messages))


def _messages(run, secret):
    if run.answer is None:
        return [failure_message(SUBJECT, run.failure) or _capture_raised(run.failure)]
    captured = run.answer
    if not isinstance(captured, dict):
        raise Unreadable("not a record")
    if captured.get("missing") == "model":
        return [Message("model.missing", f"There is no `model` when the tests run"
                        f"{answer_cell_stopped(run)}: build it with Sequential([...]) in the"
                        " UNQ_C2 cell, assign it to `model`, and run that cell without"
                        " errors.")]
    layers = _model_layers(captured)
    for stage in (_structure_problems, _weight_problems,
                  functools.partial(_forward_problems, secret=secret)):
        problems = stage(captured, layers)
        if problems:
            return problems
    return []


def _capture_raised(failure):
    error = quote(f"{failure.error_name}: {failure.error_value}") if failure else "no reason"
    return Message("model.capture_raised", f"The hidden test of the model stopped with {error}:"
                   " does the notebook replace a built-in name (print, sys.stdout) or a NumPy"
                   " function?")


def _model_layers(facts):
    entries = facts.get("layers")
    if not isinstance(entries, list):
        raise Unreadable("no list of layers")
    return [_model_layer(index, entry) for index, entry in enumerate(entries)]


def _model_layer(index, entry):
    if not isinstance(entry, dict) or not isinstance(entry.get("class"), str):
        raise Unreadable("a layer without a class name")
    units, use_bias = entry.get("units"), entry.get("use_bias")
    if units is not None and (isinstance(units, bool) or not isinstance(units, int)):
        raise Unreadable("units that are not a whole number")
    if use_bias is not None and not isinstance(use_bias, bool):
        raise Unreadable("use_bias that is not True or False")
    return _Layer(index=index, kind=quote(entry["class"], limit=60),
                  name=quote(entry.get("name", ""), limit=60), units=units, use_bias=use_bias,
                  weights=_layer_weights(entry),
                  weights_error=captured_error(entry, "weights_error"),
                  activation=_activation_kind(entry))


def _layer_weights(entry):
    if "weights" not in entry:
        return None
    if not isinstance(entry["weights"], list):
        raise Unreadable("weights that are not a list")
    arrays = tuple(number_array(array) for array in entry["weights"])
    if any(array is None for array in arrays):
        raise Unreadable("weights that are not arrays of numbers")
    return arrays


def _activation_kind(entry):
    """Name an activation by what it computed on the probe, not by how it was spelled."""
    error = captured_error(entry, "activation_error")
    if error is not None:
        return f"an activation that fails on a test input ({quote(error, limit=120)})"
    if "activation_probe" not in entry:
        return "no activation that could be tested"
    got = number_array(entry["activation_probe"])
    if got is None:
        raise Unreadable("an activation probe that is not an array of numbers")
    probe = np.array(ACTIVATION_PROBE, dtype=float)
    with np.errstate(all="ignore"):
        for kind, reference in ACTIVATIONS.items():
            expected = reference(probe)
            if got.shape == expected.shape and np.allclose(got, expected, atol=ACTIVATION_ATOL):
                return kind
    return f"an unexpected activation (it maps {fmt(probe[0])} to {fmt(got)})"


def _dense(layers):
    return [layer for layer in layers if layer.kind == "Dense"]


# -------------------------------- stage 1: the layers asked for

def _structure_problems(facts, layers):
    if not layers:
        model_type = facts.get("type")
        described = quote(model_type, limit=60) if isinstance(model_type, str) else "value"
        return [Message("model.no_layers", f"`model` is a {described} with no layers: expected"
                        " a Keras Sequential model of three Dense layers,"
                        " Sequential([Dense(25, ...), Dense(15, ...), Dense(10, ...)]).")]
    problems = [Message("model.not_dense", f"{layer.where} is a {layer.kind} layer: expected"
                        " only Dense layers (an Input is fine).")
                for layer in layers if layer.kind not in ("Dense", "InputLayer")]
    dense = _dense(layers)
    if len(dense) != len(EXPECTED_UNITS):
        return problems + [_layer_count_message(dense)]
    problems += _units_problems(dense)
    problems += _activation_problems(dense)
    problems += [Message("model.no_bias", f"{layer.where} has use_bias=False: expected a bias"
                         " in every layer (the default); remove use_bias=False.")
                 for layer in dense if layer.use_bias is False]
    return problems


def _layer_count_message(dense):
    got_units = [layer.units for layer in dense]
    hint = ("Is a layer missing?" if len(dense) < len(EXPECTED_UNITS)
            else "Remove the extra layer.")
    return Message("model.layer_count", f"Expected {len(EXPECTED_UNITS)} Dense layers with"
                   f" units {list(EXPECTED_UNITS)}, got {len(dense)} with units {got_units}."
                   f" {hint}")


def _units_problems(dense):
    hidden = EXPECTED_UNITS[:-1]
    got_hidden = tuple(layer.units for layer in dense[:len(hidden)])
    if got_hidden == hidden[::-1]:
        names = " and ".join(layer.where for layer in dense[:len(hidden)])
        swapped = [Message("model.units_swapped", f"The hidden layers' units look swapped"
                           f" ({names}): expected {hidden[0]} then {hidden[1]}, got"
                           f" {got_hidden[0]} then {got_hidden[1]}.")]
        return swapped + _units_mismatches(dense[len(hidden):], EXPECTED_UNITS[len(hidden):])
    return _units_mismatches(dense, EXPECTED_UNITS)


def _units_mismatches(dense, expected_units):
    return [Message("model.units", f"{layer.where}: expected {units} units, got"
                    f" {layer.units}.")
            for layer, units in zip(dense, expected_units, strict=True) if layer.units != units]


def _activation_problems(dense):
    *hidden, output = dense
    problems = [_hidden_activation_problem(layer) for layer in hidden]
    problems.append(_output_activation_problem(output))
    return [problem for problem in problems if problem]


def _hidden_activation_problem(layer):
    if layer.activation == "relu":
        return None
    text = (f"{layer.where}: expected ReLU, got {layer.activation}. Use ReLU in the hidden"
            " layers (activation='relu').")
    if layer.activation == "linear":
        text += " Without it, the layers collapse into a single linear map."
    return Message("model.hidden_activation", text)


def _output_activation_problem(layer):
    if layer.activation == "linear":
        return None
    where = f"{layer.where} (the output layer)"
    if layer.activation == "softmax":
        return Message("model.softmax_output", f"{where}: expected a linear activation, got"
                       " softmax. Use a linear output (activation='linear'): the loss applies"
                       " softmax (from_logits=True).")
    return Message("model.output_activation", f"{where}: expected a linear activation, got"
                   f" {layer.activation}. The output must be raw scores (logits): use"
                   " activation='linear'; the loss applies softmax (from_logits=True).")


# -------------------------------- stage 2: the weights those layers hold

def _weight_problems(facts, layers):
    dense = _dense(layers)
    problems = [_weights_readable_problem(facts, layer) for layer in dense]
    problems = [problem for problem in problems if problem]
    if problems:
        return problems
    kernel = dense[0].weights[0]
    if kernel.ndim == 2 and kernel.shape[0] != INPUT_SIZE:
        return [Message("model.input_size", f"The model expects {kernel.shape[0]} inputs, the"
                        f" images have {INPUT_SIZE}: use tf.keras.Input(shape=({INPUT_SIZE},)),"
                        " one input per pixel."), _parameter_count_problem(layers)]
    problems = _shape_problems(dense)
    problems += [Message("model.not_finite", f"{layer.where} has NaN or infinite weights.")
                 for layer in dense
                 if not all(np.all(np.isfinite(array)) for array in layer.weights)]
    problems.append(_parameter_count_problem(layers))
    return [problem for problem in problems if problem]


def _weights_readable_problem(facts, layer):
    if layer.weights_error is not None:
        return Message("model.weights_error", f"{layer.where}: its weights could not be read"
                       f" ({layer.weights_error}).")
    if not layer.weights:
        forward_error = captured_error(facts, "forward_error")
        if forward_error is not None:
            batch, pixels = MODEL_BATCH_SHAPE
            return Message("model.not_built", f"The model could not run on a batch of {batch}"
                           f" images of {pixels} pixels ({forward_error}), so {layer.where}"
                           " has no weights to check.")
        return Message("model.not_built", f"{layer.where} has no weights: is the model built?")
    if len(layer.weights) != 2:
        return Message("model.weight_arrays", f"{layer.where} has {len(layer.weights)} weight"
                       " arrays, expected 2 (a kernel and a bias).")
    return None


def _shape_problems(dense):
    problems = []
    for layer, (n_in, n_out) in zip(dense, pairwise(LAYER_SIZES), strict=True):
        kernel, bias = layer.weights
        if kernel.shape != (n_in, n_out) or bias.shape != (n_out,):
            problems.append(Message("model.weight_shapes", f"{layer.where}: expected a kernel of"
                                    f" shape {(n_in, n_out)} and a bias of shape {(n_out,)},"
                                    f" got {kernel.shape} and {bias.shape}."))
    return problems


def _parameter_count_problem(layers):
    got = sum(array.size for layer in layers for array in layer.weights or ())
    if got == EXPECTED_PARAMETERS:
        return None
    details = "; ".join(f"{layer.where}: {sum(array.size for array in layer.weights):,}"
                        for layer in _dense(layers))
    return Message("model.parameters", f"Expected {EXPECTED_PARAMETERS:,} parameters in total,"
                   f" got {got:,} ({details}).")


# -------------------------------- stage 3: what the model computes

def _forward_problems(facts, layers, *, secret):
    batch = model_batch(secret)
    expected_shape = (batch.shape[0], EXPECTED_UNITS[-1])
    forward_error = captured_error(facts, "forward_error")
    if forward_error is not None:
        return [Message("model.forward_error", f"The model could not run on a batch of"
                        f" {batch.shape[0]} images of {batch.shape[1]} pixels: it raised"
                        f" {forward_error}.")]
    got = number_array(facts.get("forward"))
    if got is None:
        raise Unreadable("no model output")
    if got.shape != expected_shape:
        return [Message("model.output_shape", f"A batch of {batch.shape[0]} images should give"
                        f" an output of shape {expected_shape}, got {got.shape}.")]
    if not np.all(np.isfinite(got)):
        return [Message("model.output_not_finite", "The model's output contains NaN or infinity"
                        " on a batch of test images.")]
    with np.errstate(all="ignore"):
        expected = numpy_forward(batch, _dense(layers))
        if np.allclose(got, expected, rtol=FORWARD_TOLERANCE, atol=FORWARD_TOLERANCE):
            return []
        largest = float(np.nanmax(np.abs(got - expected)))
    return [Message("model.forward_mismatch", f"The model's output does not match its layers:"
                    f" with its own weights, Dense(25, relu), Dense(15, relu), Dense(10,"
                    f" linear) give other outputs on the same test images (largest difference"
                    f" {largest:.3g}). Does the model override `call`, or skip or repeat a"
                    " layer?")]


def numpy_forward(x, dense):
    """What the Dense layers compute, one after the other, with their own weights."""
    values = np.asarray(x, dtype=float)
    for layer in dense:
        kernel, bias = layer.weights
        values = ACTIVATIONS[layer.activation](values @ kernel + bias)
    return values
