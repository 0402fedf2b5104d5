"""What runs in the student's kernel: the capture of each exercise.

The grader compiles this file and sends the bytecode to the kernel after each exercise's
test cell (grader.run.captures): the kernel never holds its source. It imports only the
standard library and NumPy, since a student's kernel has nothing of ours, and it decides
nothing: `capture` returns what the student's code did, as JSON data, and the grader judges
that in its own process. The hidden inputs arrive as plain data with the request, drawn in
the grader's process from this grading's secret (hidden_inputs.py): the kernel never sees
the secret or the recipes, only inputs that no other grading uses.

It records the facts that lab_rules.softmax_cases and model_facts gather for the public
tests and plain nbgrader's hidden tests, so that the lab's rules judge all three alike; it
is written apart because here the student's code may have changed any name it can reach.

`capture` runs in a namespace of its own and reaches the student's names only through
`namespace` (the notebook's globals), so a student's variable named `numpy` or `print`
changes nothing here.
"""

import builtins

import numpy


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
        cases.append(case)
        try:
            result = my_softmax(z.copy())
        except builtins.Exception as error:
            case["error"] = _error(error)
            continue
        try:
            case["a"] = _numbers(result)
        except builtins.Exception:  # not numbers: what it was is the fact
            case["returned"] = builtins.type(result).__name__
    return {"cases": cases}


def capture_model(namespace, inputs):
    if "model" not in namespace:
        return {"missing": "model"}
    target = namespace["model"]
    model_type = builtins.type(target)
    facts = {"type": model_type.__name__,
             "sequential": builtins.any(cls.__name__ == "Sequential"
                                        for cls in model_type.__mro__)}
    try:
        # float32 as the recipe drew it: the values are float32's, so nothing is rounded.
        batch = numpy.array(inputs["batch"], dtype="float32")
        facts["forward"] = _numbers(target(batch, training=False))
    except builtins.Exception as error:
        facts["forward_error"] = _error(error)
    layers = builtins.getattr(target, "layers", None)
    facts["layers"] = [_layer_facts(layer, inputs) for layer in builtins.list(layers or [])]
    return facts


def _layer_facts(layer, inputs):
    entry = {"class": builtins.type(layer).__name__,
             "name": builtins.str(builtins.getattr(layer, "name", ""))}
    for key in ("units", "use_bias", "trainable"):
        value = builtins.getattr(layer, key, None)
        if builtins.isinstance(value, builtins.bool | builtins.int):
            entry[key] = value
    try:
        weights = layer.get_weights()
        entry["weights"] = [_numbers(weight) for weight in weights]
        entry["weight_dtypes"] = [builtins.str(numpy.asarray(weight).dtype)
                                  for weight in weights]
    except builtins.Exception as error:
        entry["weights_error"] = _error(error)
    activation = builtins.getattr(layer, "activation", None)
    if activation is None and entry["class"] in inputs["activation_layers"]:
        activation = layer  # a layer that only applies an activation: probed the same way
    if activation is not None:
        probe = numpy.array(inputs["probe"], dtype="float32")
        try:
            entry["activation_probe"] = _numbers(activation(probe))
        except builtins.Exception as error:
            entry["activation_error"] = _error(error)
    return entry
