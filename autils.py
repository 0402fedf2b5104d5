"""Helpers for the multiclass handwritten-digit lab: loading the data and plotting.

The notebook does ``from autils import *``, so only the names in ``__all__`` are exported.
Nothing here imports TensorFlow or Keras: a model is only asked for its predictions.
"""

import os
import sys
import tempfile
from collections import deque
from contextlib import contextmanager, suppress
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "load_data",
    "plt_act_trio",
    "widgvis",
    "display_digit",
    "plot_loss_tf",
    "display_errors",
    "native_stderr_hidden",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
DIGIT_SIDE = 20  # each example is a 20x20 image unrolled into 400 values
MAX_ERRORS_SHOWN = 8
# Figures made by these helpers that stay open; older ones are closed so a long
# session stays below matplotlib's 20-open-figures warning.
MAX_OPEN_HELPER_FIGURES = 10

_open_helper_figures = deque()


def load_data():
    """Return (X, y): X is (5000, 400) pixel intensities, y is (5000, 1) digit labels."""
    X = np.load(DATA_DIR / "X.npy")
    y = np.load(DATA_DIR / "y.npy")
    return X, y


@contextmanager
def native_stderr_hidden():
    """Hide what C/C++ code writes straight to file descriptor 2 inside the block.

    TensorFlow 2.21's native core logs start-up notes (oneDNN, CUDA drivers, CPU
    features) before its log level can be set, so TF_CPP_MIN_LOG_LEVEL no longer hides
    them, and Jupyter shows them as red stderr text. If the block fails, whatever was
    hidden is written out after all, so a real error is never lost.
    """
    sys.stderr.flush()
    saved_fd = os.dup(2)
    try:
        with tempfile.TemporaryFile() as hidden:
            os.dup2(hidden.fileno(), 2)
            try:
                yield
            except BaseException:
                os.dup2(saved_fd, 2)
                hidden.seek(0)
                sys.stderr.write(hidden.read().decode(errors="replace"))
                raise
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)


def widgvis(fig):
    """Make an ipympl figure compact by hiding its toolbar, header and footer.

    Other backends' canvases lack these attributes, so this is then a no-op.
    """
    canvas = getattr(fig, "canvas", None)
    # Cosmetic only: a failure here must never stop the lab.
    with suppress(Exception):
        for name in ("toolbar_visible", "header_visible", "footer_visible"):
            if hasattr(canvas, name):
                setattr(canvas, name, False)


def plt_act_trio():
    """Plot the linear, sigmoid and ReLU activations side by side."""
    z = np.linspace(-5, 5, 201)
    activations = [
        ("Linear", r"$g(z) = z$", z),
        ("Sigmoid", r"$g(z) = \frac{1}{1 + e^{-z}}$", 1 / (1 + np.exp(-z))),
        ("ReLU", r"$g(z) = \max(0, z)$", np.maximum(0, z)),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3), layout="constrained")
    for ax, (name, formula, g) in zip(axes, activations, strict=True):
        ax.plot(z, g)
        ax.set_title(f"{name}: {formula}")
        ax.set_xlabel("$z$")
    axes[0].set_ylabel("$g(z)$")
    _show(fig)


def display_digit(x):
    """Show one 400-value example as an upright 20x20 greyscale image."""
    fig, ax = plt.subplots(figsize=(1, 1))
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    _draw_digit(ax, x)
    _show(fig)


def plot_loss_tf(history):
    """Plot training loss per epoch from a Keras History (or a dict holding 'loss')."""
    loss = _loss_values(history)
    epochs = np.arange(1, len(loss) + 1)
    fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
    ax.plot(epochs, loss)
    ax.set_title("Training loss")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss")
    _show(fig)


def display_errors(model, X, y):
    """Show up to 8 misclassified examples as 'label,prediction'; return how many there are."""
    predicted = np.argmax(_predict_all(model, X), axis=1)
    labels = np.asarray(y).reshape(-1).astype(int)
    error_indices = np.flatnonzero(predicted != labels)
    if error_indices.size == 0:
        print("No errors: every example is classified correctly.")
        return 0
    _plot_errors(X, labels, predicted, error_indices[:MAX_ERRORS_SHOWN])
    return int(error_indices.size)


def _plot_errors(X, labels, predicted, indices):
    fig, axes = plt.subplots(1, len(indices), figsize=(len(indices), 1.3), squeeze=False)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.8, wspace=0.1)
    for ax, i in zip(axes[0], indices, strict=True):
        _draw_digit(ax, X[i])
        ax.set_title(f"{labels[i]},{predicted[i]}", fontsize=10)
    _show(fig)


def _draw_digit(ax, x):
    # Rows were unrolled column by column, so the transpose turns the digit upright.
    image = np.asarray(x).reshape((DIGIT_SIDE, DIGIT_SIDE)).T
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()


def _predict_all(model, X):
    # One call over all of X: batching 5000 rows through Keras' predict loop is
    # many times slower, and repeated predict() calls can log retracing warnings.
    if callable(model):
        return np.asarray(model(X, training=False))
    return np.asarray(model.predict(X, verbose=0))


def _loss_values(history):
    record = history.history if hasattr(history, "history") else history
    return np.asarray(record["loss"], dtype=float)


def _show(fig):
    widgvis(fig)
    # Showing now keeps figures in call order and, with ipympl, leaves a closed
    # figure's image in place when _forget_old_figures closes it later.
    plt.show()
    _forget_old_figures(fig)


def _forget_old_figures(fig):
    _open_helper_figures.append(fig)
    while len(_open_helper_figures) > MAX_OPEN_HELPER_FIGURES:
        plt.close(_open_helper_figures.popleft())
