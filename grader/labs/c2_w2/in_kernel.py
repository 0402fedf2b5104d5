"""What runs in the student's kernel: the capture of each exercise.

The grader compiles this file and sends the bytecode to the kernel after each exercise's
test cell (grader.run.captures): the kernel never holds its source. It imports only the
standard library and NumPy, since a student's kernel has nothing of ours, and it decides
nothing: `capture` returns what the student's code did, as JSON data, and the grader judges
that in its own process. The hidden inputs arrive as plain data with the request, drawn in
the grader's process from this grading's secret (hidden_inputs.py): the kernel never sees
the secret or the recipes, only inputs that no other grading uses.

`capture` runs in a namespace of its own and reaches the student's names only through
`namespace` (the notebook's globals), so a student's variable named `numpy` or `print`
changes nothing here.
"""

import builtins

import numpy

# Where activations differ visibly: negatives, zero, positives.
ACTIVATION_PROBE = [[-3.0, -0.5, 0.0, 0.5, 3.0]]


def capture(exercise, namespace, inputs):
    """What the student's answer to `exercise` does on its hidden `inputs` (the JSON data
    of hidden_inputs.hidden_inputs), as JSON data."""
    if exercise == "UNQ_C1":
        return capture_softmax(namespace, inputs)
    if exercise == "UNQ_C2":
        return capture_model(namespace, inputs)
    raise builtins.ValueError(f"no capture for {exercise}")


def _error(error):
    return {"error_name": builtins.type(error).__name__, "error_value": builtins.str(error)}


def _numbers(value):
    """`value` as (nested) lists of floats; JSON carries NaN and infinity too."""
    return numpy.asarray(value, dtype=float).tolist()


def capture_softmax(namespace, inputs):
    if "my_softmax" not in namespace:
        return {"missing": "my_softmax"}
    my_softmax = namespace["my_softmax"]
    cases = []
    for values in inputs:
        z = numpy.array(values, dtype=float)
        case = {"z": z.tolist()}
        try:
            case["a"] = _numbers(my_softmax(z.copy()))
        except builtins.Exception as error:
            case["error"] = _error(error)
        cases.append(case)
    return {"cases": cases}


def capture_model(namespace, inputs):
    if "model" not in namespace:
        return {"missing": "model"}
    target = namespace["model"]
    facts = {"type": builtins.type(target).__name__}
    try:
        # float32 as the recipe drew it: the values are float32's, so nothing is rounded.
        batch = numpy.array(inputs, dtype="float32")
        facts["forward"] = _numbers(target(batch, training=False))
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
