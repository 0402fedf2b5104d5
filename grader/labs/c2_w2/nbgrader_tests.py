"""The hidden tests that plain nbgrader runs, written into the source notebook from here.

`python -m grader autograde` never runs the notebook's hidden tests: it strips them and
captures each exercise with in_kernel.py, judging outside the kernel. But the notebook is
an nbgrader source, and an instructor may grade it with nbgrader's own `autograde` or
formgrader's Autograde button. For them the hidden tests must judge in the kernel: run the
student's code on inputs the student never saw (the same recipes as the grader's, with
hidden_inputs.NBGRADER_SEED), judge it by the lab's rules (lab_rules.py, the same rules the
grader's judges and the public tests apply, shipped beside the notebook) and raise on a
wrong answer, so that nbgrader's scores are right (forgeable, as nbgrader's always are:
the kernel decides).

    tools/write_hidden_tests.py     writes them into C2_W2_Assignment.ipynb
    tests/grader/labs/...           fail when the notebook's differ from these
"""

import inspect
import textwrap

from grader.labs.c2_w2 import hidden_inputs

HEADER = """\
### BEGIN HIDDEN TESTS
# Written by grader/labs/c2_w2/nbgrader_tests.py (tools/write_hidden_tests.py): edit there.
# For nbgrader's own autograde: {what} on inputs the student never saw, judged by the
# lab's rules (lab_rules.py); a wrong answer raises. (python -m grader leaves this block
# out and judges outside the kernel, by the same rules.)
"""
FOOTER = "### END HIDDEN TESTS\n"


def _recipe(function):
    """A recipe of hidden_inputs.py as a nested function: the same code, nothing left behind."""
    return textwrap.indent(inspect.getsource(function), "    ")


SOFTMAX_TEST = '''\
def _hidden_test_unq_c1():
    import numpy
    import lab_rules
    ORDINARY = {ordinary!r}
{recipe}
    cases = lab_rules.softmax_cases(my_softmax, softmax_hidden_inputs({seed}))
    problems = lab_rules.softmax_problems(cases)
    assert not problems, "my_softmax is wrong: " + problems[0].text
_hidden_test_unq_c1()
del _hidden_test_unq_c1
'''

MODEL_TEST = '''\
def _hidden_test_unq_c2():
    import numpy
    import lab_rules
    MODEL_BATCH_SHAPE = {batch_shape!r}
    ROW_SCALES = {row_scales!r}
{recipe}
    x = model_hidden_batch({seed})
    problems = lab_rules.model_problems(lab_rules.model_facts(model, x), x)
    assert not problems, "the model is wrong: " + problems[0].text
_hidden_test_unq_c2()
del _hidden_test_unq_c2
'''


def hidden_tests(seed=hidden_inputs.NBGRADER_SEED):
    """test cell grade_id -> the hidden block it ends with (markers included)."""
    softmax = SOFTMAX_TEST.format(
        ordinary=hidden_inputs.ORDINARY, recipe=_recipe(hidden_inputs.softmax_hidden_inputs),
        seed=seed)
    model = MODEL_TEST.format(
        batch_shape=hidden_inputs.MODEL_BATCH_SHAPE, row_scales=hidden_inputs.ROW_SCALES,
        recipe=_recipe(hidden_inputs.model_hidden_batch), seed=seed)
    return {
        "UNQ_C1_test": HEADER.format(what="my_softmax") + softmax + FOOTER,
        "UNQ_C2_test": HEADER.format(what="the model") + model + FOOTER,
    }
