"""What runs in the student's kernel: the hidden inputs and the capture of each exercise.

The grader compiles this file and sends the bytecode to the kernel after each exercise's
test cell (grader.run.captures): the kernel never holds its source. It imports only the
standard library and NumPy, since a student's kernel has nothing of ours, and it decides
nothing: `capture` returns what the student's code did, as JSON data, and the grader judges
that in its own process. The judges (softmax.py, model.py) import the same recipes, so
both sides draw the same hidden inputs from a batch's seed; the hidden tests that plain
nbgrader runs are written from them too (nbgrader_tests.py).

`capture` runs in a namespace of its own and reaches the student's names only through
`namespace` (the notebook's globals), so a student's variable named `numpy` or `print`
changes nothing here.
"""

import builtins

import numpy

DEFAULT_SEED = 20261129
MODEL_BATCH_SHAPE = (6, 400)
# Where activations differ visibly: negatives, zero, positives.
ACTIVATION_PROBE = [[-3.0, -0.5, 0.0, 0.5, 3.0]]
ORDINARY = "ordinary"


def softmax_hidden_inputs(seed):
    """(what is special about it, z) for each z the hidden test passes to my_softmax.

    Ordinary inputs of every length from 1 to 10, and 37; then inputs whose values are
    special. A mistake that depends on the length of z shows among the ordinary ones, one
    that depends on the values only among the special ones.
    """
    rng = numpy.random.default_rng(seed)
    cases = [(ORDINARY, rng.uniform(-8.0, 8.0, size)) for size in (*range(1, 11), 37)]
    cases += [("very negative values", rng.uniform(-30.0, -10.0, 6)),
              ("tiny values", rng.uniform(0.0, 1e-3, 7)),
              ("all values equal", numpy.full(3, 5.0)),
              ("shuffled whole numbers", rng.permutation(numpy.arange(-4.0, 5.0)))]
    return cases


def model_hidden_batch(seed):
    """The batch of fake images the hidden test feeds to the model."""
    rng = numpy.random.default_rng(seed + 1)
    return rng.uniform(0.0, 1.0, MODEL_BATCH_SHAPE).astype("float32")


def capture(exercise, namespace, seed):
    """What the student's answer to `exercise` does on the hidden inputs, as JSON data."""
    if exercise == "UNQ_C1":
        return capture_softmax(namespace, seed)
    if exercise == "UNQ_C2":
        return capture_model(namespace, seed)
    raise builtins.ValueError(f"no capture for {exercise}")


def _error(error):
    return {"error_name": builtins.type(error).__name__, "error_value": builtins.str(error)}


def _numbers(value):
    """`value` as (nested) lists of floats; JSON carries NaN and infinity too."""
    return numpy.asarray(value, dtype=float).tolist()


def capture_softmax(namespace, seed):
    if "my_softmax" not in namespace:
        return {"missing": "my_softmax"}
    my_softmax = namespace["my_softmax"]
    cases = []
    for _label, z in softmax_hidden_inputs(seed):
        case = {"z": z.tolist()}
        try:
            case["a"] = _numbers(my_softmax(z.copy()))
        except builtins.Exception as error:
            case["error"] = _error(error)
        cases.append(case)
    return {"cases": cases}


def capture_model(namespace, seed):
    if "model" not in namespace:
        return {"missing": "model"}
    target = namespace["model"]
    facts = {"type": builtins.type(target).__name__}
    try:
        facts["forward"] = _numbers(target(model_hidden_batch(seed), training=False))
    except builtins.Exception as error:
        facts["forward_error"] = _error(error)
    layers = builtins.getattr(target, "layers", None)
    facts["layers"] = [_layer_facts(layer) for layer in builtins.list(layers or [])]
    return facts


def _layer_facts(layer):
    entry = {"class": builtins.type(layer).__name__,
             "name": builtins.str(builtins.getattr(layer, "name", ""))}
    for key in ("units", "use_bias"):
        value = builtins.getattr(layer, key, None)
        if builtins.isinstance(value, builtins.bool | builtins.int):
            entry[key] = value
    try:
        entry["weights"] = [_numbers(weight) for weight in layer.get_weights()]
    except builtins.Exception as error:
        entry["weights_error"] = _error(error)
    activation = builtins.getattr(layer, "activation", None)
    if activation is not None:
        probe = numpy.array(ACTIVATION_PROBE, dtype="float32")
        try:
            entry["activation_probe"] = _numbers(activation(probe))
        except builtins.Exception as error:
            entry["activation_error"] = _error(error)
    return entry
