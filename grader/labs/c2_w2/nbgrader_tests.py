"""The hidden tests that plain nbgrader runs, written into the source notebook from here.

`python -m grader autograde` never runs the notebook's hidden tests: it strips them and
captures each exercise with in_kernel.py, judging outside the kernel. But the notebook is
an nbgrader source, and an instructor may grade it with nbgrader's own `autograde` or
formgrader's Autograde button. For them the hidden tests must judge in the kernel: run the
student's code on inputs the student never saw (the same recipes as the grader's, with
hidden_inputs.NBGRADER_SEED) and raise on a wrong answer, so that nbgrader's scores are right
(forgeable, as nbgrader's always are: the kernel decides).

    tools/write_hidden_tests.py     writes them into C2_W2_Assignment.ipynb
    tests/grader/labs/...           fail when the notebook's differ from these
"""

import inspect
import textwrap

from grader.labs.c2_w2 import hidden_inputs, in_kernel
from grader.labs.c2_w2.model import ACTIVATION_ATOL, EXPECTED_UNITS, FORWARD_TOLERANCE, INPUT_SIZE
from grader.labs.c2_w2.softmax import ATOL, RTOL

HEADER = """\
### BEGIN HIDDEN TESTS
# Written by grader/labs/c2_w2/nbgrader_tests.py (tools/write_hidden_tests.py): edit there.
# For nbgrader's own autograde: {what} on inputs the student never saw; a wrong answer
# raises. (python -m grader leaves this block out and judges outside the kernel.)
"""
FOOTER = "### END HIDDEN TESTS\n"


def _recipe(function):
    """A recipe of hidden_inputs.py as a nested function: the same code, nothing left behind."""
    return textwrap.indent(inspect.getsource(function), "    ")


SOFTMAX_TEST = '''\
def _hidden_test_unq_c1():
    import numpy
    ORDINARY = {ordinary!r}
{recipe}
    for label, z in softmax_hidden_inputs({seed}):
        a = numpy.asarray(my_softmax(z.copy()), dtype=float)
        expected = numpy.exp(z - z.max())
        expected = expected / expected.sum()
        assert a.shape == expected.shape and numpy.allclose(a, expected, rtol={rtol},
                                                            atol={atol}), (
            f"my_softmax is wrong on a hidden input of size {{z.size}} ({{label}})")
_hidden_test_unq_c1()
del _hidden_test_unq_c1
'''

MODEL_TEST = '''\
def _hidden_test_unq_c2():
    import numpy
    MODEL_BATCH_SHAPE = {batch_shape!r}
{recipe}
    x = model_hidden_batch({seed})
    got = numpy.asarray(model(x, training=False), dtype=float)  # builds a model without Input
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    assert [layer.units for layer in dense] == {units!r}, "expected Dense units {units!r}"
    probe = numpy.array({probe!r}, dtype="float32")
    relu = numpy.maximum(probe, 0.0)
    for layer, expected in zip(dense, (relu, relu, probe)):
        acted = numpy.asarray(layer.activation(probe), dtype=float)
        assert numpy.allclose(acted, expected, atol={activation_atol}), (
            f"{{layer.name}}: expected ReLU in the hidden layers and a linear output")
    values = x.astype(float)
    for size, layer in zip({sizes!r}, dense):
        weights = [numpy.asarray(w, dtype=float) for w in layer.get_weights()]
        assert len(weights) == 2 and weights[0].shape == (values.shape[1], size), (
            f"{{layer.name}}: expected a kernel and a bias for {{size}} units on"
            f" {{values.shape[1]}} inputs")
        values = values @ weights[0] + weights[1]
        if size != {output_units}:
            values = numpy.maximum(values, 0.0)
    assert x.shape[1] == {input_size} and got.shape == values.shape, "wrong output shape"
    assert numpy.allclose(got, values, rtol={tolerance}, atol={tolerance}), (
        "the model's output does not match its layers")
_hidden_test_unq_c2()
del _hidden_test_unq_c2
'''


def hidden_tests(seed=hidden_inputs.NBGRADER_SEED):
    """test cell grade_id -> the hidden block it ends with (markers included)."""
    softmax = SOFTMAX_TEST.format(
        ordinary=hidden_inputs.ORDINARY, recipe=_recipe(hidden_inputs.softmax_hidden_inputs),
        seed=seed, rtol=RTOL, atol=ATOL)
    model = MODEL_TEST.format(
        batch_shape=hidden_inputs.MODEL_BATCH_SHAPE,
        recipe=_recipe(hidden_inputs.model_hidden_batch),
        seed=seed, units=list(EXPECTED_UNITS), probe=in_kernel.ACTIVATION_PROBE,
        activation_atol=ACTIVATION_ATOL, sizes=list(EXPECTED_UNITS),
        output_units=EXPECTED_UNITS[-1], input_size=INPUT_SIZE, tolerance=FORWARD_TOLERANCE)
    return {
        "UNQ_C1_test": HEADER.format(what="my_softmax") + softmax + FOOTER,
        "UNQ_C2_test": HEADER.format(what="the model") + model + FOOTER,
    }
