"""The tiny lab's hidden matrices: drawn in the grader's process, never in a kernel.

`hidden_inputs(secret)` is what the capture request carries to the kernel for one
grading; the judge draws the same matrices from the same secret to check them. The hidden
block written into the notebook for plain nbgrader runs this recipe from DEFAULT_SEED.
"""

import numpy

from grader.hidden_secrets import secret_number

DEFAULT_SEED = 20261201
# Four of the ten are square: a mean that divides by the wrong dimension is right on those
# only, which the judge turns into partial credit.
HIDDEN_SHAPES = ((3, 3), (4, 2), (2, 5), (1, 4), (6, 1), (5, 5), (7, 3), (4, 4), (2, 2), (3, 6))


def hidden_matrices(seed):
    """The matrices the hidden test passes to column_means, drawn from `seed`."""
    rng = numpy.random.default_rng(seed)
    return [rng.uniform(-10.0, 10.0, shape) for shape in HIDDEN_SHAPES]


def matrices(secret):
    """The hidden matrices of one grading."""
    return hidden_matrices(secret_number(secret))


def hidden_inputs(secret):
    """exercise id -> what its capture receives, as JSON data."""
    return {"EX1": [matrix.tolist() for matrix in matrices(secret)]}
