"""State and maths of the softmax explorer, kept apart from how it is drawn.

Nothing here imports matplotlib or ipywidgets, so the logic can be tested (and reasoned
about) without a figure or a browser. lab_utils_softmax.py draws what this model holds.
"""

import numpy as np

INITIAL_Z = (1.0, 2.0, 3.0, 4.0)
Z_LIMIT = 5.0  # the sliders run over [-Z_LIMIT, Z_LIMIT]
SUM_TOLERANCE = 1e-3


class SoftmaxExplorerModel:
    """Holds z, applies the student's softmax to it and says what the view should show.

    A broken softmax never raises from here: `error` then holds a message for the student
    and `probabilities` is None.
    """

    def __init__(self, softmax_fn, z=INITIAL_Z):
        self.softmax_fn = softmax_fn
        self.z = np.array(z, dtype=float)
        self.probabilities = None
        self.error = None
        self._recompute()

    @property
    def function_name(self):
        return getattr(self.softmax_fn, "__name__", "softmax_fn")

    def set_z(self, index, value):
        self.z[index] = float(value)
        self._recompute()

    def probability_bar_heights(self):
        """Heights for the output bars: the probabilities, or zeros while in error."""
        if self.probabilities is None:
            return np.zeros_like(self.z)
        return self.probabilities

    def z_line(self):
        return f"z = {_format_vector(self.z)}"

    def softmax_line(self):
        """One line of text with the outputs and their sum, or the error message."""
        if self.error is not None:
            return self.error
        total = self.probabilities.sum()
        line = f"softmax(z) = {_format_vector(self.probabilities)}, sum = {total:.3f}"
        if abs(total - 1) > SUM_TOLERANCE:
            line += " (should be 1)"
        return line

    def _recompute(self):
        self.probabilities, self.error = evaluate_softmax(self.softmax_fn, self.z)


def evaluate_softmax(softmax_fn, z):
    """Return (probabilities, None) when softmax_fn(z) looks usable, else (None, message)."""
    name = getattr(softmax_fn, "__name__", "softmax_fn")
    try:
        # A copy, so a function that modifies its argument cannot change the sliders' state.
        # Numpy's own warnings are silenced: a bad result is reported below, in plain words.
        with np.errstate(all="ignore"):
            result = softmax_fn(z.copy())
    except Exception as exc:  # the student's code may raise anything
        return None, f"{name}(z) raised {type(exc).__name__}: {exc}"
    return _check_result(name, result, z.shape)


def _check_result(name, result, expected_shape):
    if result is None:
        return None, f"{name}(z) returned None: assign the softmax of z to `a` and return it."
    try:
        values = np.asarray(result, dtype=float)
    except (TypeError, ValueError):
        return None, f"{name}(z) returned a {type(result).__name__}, not an array of numbers."
    if values.shape != expected_shape:
        return None, f"{name}(z) returned shape {values.shape}; expected {expected_shape}."
    if not np.all(np.isfinite(values)):
        return None, f"{name}(z) returned NaN or infinite values: {_format_vector(values)}."
    return values, None


def _format_vector(values):
    # Fixed three decimals, space separated: stable text for people and page tests alike.
    return "[" + " ".join(f"{v:.3f}" for v in values) + "]"
