"""The recipes of the hidden inputs: drawn in the grader's process, never in a kernel.

For `python -m grader autograde`, each grading's secret (grader.hidden_secrets) seeds
them: `hidden_inputs` turns the secret into the plain JSON data that the capture request
carries to the kernel (in_kernel.py receives the inputs, never the secret), and the judges
draw the same inputs again to check that the kernel was given exactly those.

Plain nbgrader's hidden tests run the same recipes from NBGRADER_SEED, written into the
notebook (nbgrader_tests.py): anyone who reads the recipe and the seed knows those inputs,
so that path is forgeable by design, as nbgrader's always is.
"""

import numpy

from grader.hidden_secrets import secret_number
from grader.labs.c2_w2.rules import lab_rules

NBGRADER_SEED = 20261129
ROW_SCALES = lab_rules.ROW_SCALES
MODEL_BATCH_SHAPE = (len(ROW_SCALES), lab_rules.INPUT_SIZE)
ORDINARY = lab_rules.ORDINARY


def softmax_hidden_inputs(seed):
    """(what is special about it, z) for each z the hidden test passes to my_softmax.

    Ordinary inputs of every length from 1 to 10, and 37; then inputs whose values are
    special. A mistake that depends on the length of z shows among the ordinary ones, one
    that depends on the values only among the special ones.
    """
    rng = numpy.random.default_rng(seed)

    def spread(low, high, size):
        # One value drawn in each of `size` equal slices of [low, high), in a random
        # order: every grading reaches both ends of the range (plain uniform draws left
        # all six very negative values above -20 in one grading of 64).
        edges = low + (high - low) * (numpy.arange(size) + rng.uniform(0.0, 1.0, size)) / size
        return rng.permutation(edges)

    cases = [(ORDINARY, rng.uniform(-8.0, 8.0, size)) for size in (*range(1, 11), 37)]
    cases += [("very negative values", spread(-30.0, -10.0, 6)),
              ("tiny values", spread(0.0, 1e-3, 7)),
              ("all values equal", numpy.full(3, 5.0)),
              ("shuffled whole numbers", rng.permutation(numpy.arange(-4.0, 5.0)))]
    return cases


def model_hidden_batch(seed):
    """The batch of fake images the hidden test feeds to the model: row i scaled by
    ROW_SCALES[i], so that its layers compute values from about 1 to about 1000."""
    rng = numpy.random.default_rng(seed + 1)
    rows = rng.uniform(0.0, 1.0, MODEL_BATCH_SHAPE) * numpy.array(ROW_SCALES)[:, None]
    return rows.astype("float32")


def softmax_inputs(secret):
    """(label, z) of each hidden input of my_softmax for one grading's secret."""
    return softmax_hidden_inputs(secret_number(secret))


def model_batch(secret):
    """The model's hidden batch for one grading's secret."""
    return model_hidden_batch(secret_number(secret))


def hidden_inputs(secret):
    """exercise id -> what its capture receives, as JSON data. Floats survive JSON
    exactly (their repr round-trips), the batch's float32 values too. The model's capture
    also gets, as data, the rules' activation probe and the classes of the layers that only
    apply an activation: they are written once, in lab_rules.py."""
    return {"UNQ_C1": [z.tolist() for _, z in softmax_inputs(secret)],
            "UNQ_C2": {"batch": model_batch(secret).astype(float).tolist(),
                       "probe": [list(lab_rules.ACTIVATION_PROBE)],
                       "activation_layers": list(lab_rules.ACTIVATION_LAYERS)}}
