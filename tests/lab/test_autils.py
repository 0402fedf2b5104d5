"""Tests for autils.py (data loading and the lab's plots) and for deeplearning.mplstyle."""

import logging
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
from fresh_python import run_python
from matplotlib.image import AxesImage

import autils
from autils import display_digit, display_errors, load_data, plot_loss_tf, plt_act_trio, widgvis

PROJECT_ROOT = Path(autils.__file__).resolve().parent
STYLE_PATH = PROJECT_ROOT / "deeplearning.mplstyle"
DATA_FILES = [PROJECT_ROOT / "data" / "X.npy", PROJECT_ROOT / "data" / "y.npy"]


@pytest.fixture(autouse=True)
def no_open_figures():
    plt.close("all")
    yield
    plt.close("all")


def upright_test_digit():
    """A 20x20 image with a bright top row, so an upside-down or transposed copy differs."""
    image = np.zeros((20, 20))
    image[0, :] = 1.0
    image[:, 3] = 0.5
    return image


def unroll_column_major(image):
    return image.T.reshape(-1)


class LogitStub:
    """Stands in for a model: predict() returns one-hot logits for the labels it was given."""

    def __init__(self, predicted_labels):
        self.predicted_labels = np.asarray(predicted_labels)
        self.calls = 0

    def predict(self, X, verbose=1):
        self.calls += 1
        logits = np.zeros((len(X), 10))
        logits[np.arange(len(X)), self.predicted_labels[: len(X)]] = 1.0
        return logits


def identity_keras_model():
    """A real Keras model whose logits are the first ten inputs, so its predictions are known."""
    model = keras.Sequential([keras.Input((400,)), keras.layers.Dense(10)])
    weights = np.zeros((400, 10), dtype="float32")
    weights[np.arange(10), np.arange(10)] = 1.0
    model.layers[0].set_weights([weights, np.zeros(10, dtype="float32")])
    return model


def one_hot_inputs(predicted_labels):
    X = np.zeros((len(predicted_labels), 400))
    X[np.arange(len(predicted_labels)), predicted_labels] = 1.0
    return X


def wait_for_data(timeout_seconds=600):
    """The data files are built by another step; wait for them rather than skip."""
    deadline = time.monotonic() + timeout_seconds
    while not all(f.exists() for f in DATA_FILES) and time.monotonic() < deadline:
        time.sleep(1)


# ---------------------------------------------------------------- load_data


def test_load_data_has_the_lab_shapes_and_types():
    wait_for_data()
    X, y = load_data()
    assert X.shape == (5000, 400) and X.dtype == np.float64
    assert y.shape == (5000, 1) and y.dtype == np.uint8
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert np.array_equal(np.bincount(y[:, 0]), np.full(10, 500))
    assert np.all(np.diff(y[:, 0].astype(int)) >= 0)  # sorted by label


def test_load_data_works_from_any_working_directory(tmp_path, monkeypatch):
    wait_for_data()
    monkeypatch.chdir(tmp_path)
    X, y = load_data()
    assert len(X) == len(y) == 5000


# ---------------------------------------------------------------- style


def test_style_loads_with_our_colours_and_no_font_warnings(caplog):
    with caplog.at_level(logging.WARNING), plt.style.context(str(STYLE_PATH)):
        assert plt.rcParams["axes.prop_cycle"].by_key()["color"][0].lower() == "#2f6db5"
        assert plt.rcParams["axes.grid"]
        fig, ax = plt.subplots()
        ax.set_title("Title $z_0$")
        fig.suptitle("Figure title")
        fig.canvas.draw()
    # Only matplotlib's own records: objects of earlier tests may log while collected.
    assert [r for r in caplog.records if r.name.startswith("matplotlib")] == []


def test_style_loads_by_relative_path_as_the_notebook_does(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    with plt.style.context("./deeplearning.mplstyle"):
        assert tuple(plt.rcParams["figure.figsize"]) == (8.0, 4.0)


# ---------------------------------------------------------------- plots


def test_plt_act_trio_draws_linear_sigmoid_and_relu():
    plt_act_trio()
    axes = plt.gcf().axes
    assert len(axes) == 3
    titles = [ax.get_title() for ax in axes]
    assert [t.split(":")[0] for t in titles] == ["Linear", "Sigmoid", "ReLU"]
    (z, linear), (_, sigmoid), (_, relu) = (ax.lines[0].get_data() for ax in axes)
    assert z.min() == -5 and z.max() == 5
    assert np.allclose(linear, z)
    assert np.all((sigmoid > 0) & (sigmoid < 1))
    assert np.allclose(relu, np.maximum(0, z))


def test_display_digit_shows_the_digit_upright_without_axes():
    upright = upright_test_digit()
    display_digit(unroll_column_major(upright))
    fig = plt.gcf()
    (ax,) = fig.axes
    (image,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    assert np.array_equal(image.get_array(), upright)
    assert not ax.axison
    assert max(fig.get_size_inches()) <= 1.5


def test_plot_loss_tf_accepts_a_keras_history_and_a_dict():
    history = keras.callbacks.History()
    history.history = {"loss": [2.0, 1.0, 0.5]}
    for record in (history, {"loss": [2.0, 1.0, 0.5]}):
        plot_loss_tf(record)
        ax = plt.gcf().axes[0]
        epochs, loss = ax.lines[0].get_data()
        assert list(epochs) == [1, 2, 3] and list(loss) == [2.0, 1.0, 0.5]
        assert ax.get_xlabel() == "Epoch" and ax.get_ylabel() == "Loss" and ax.get_title()


def test_helper_figures_are_not_leaked_in_a_long_session():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "More than 20 figures" warning
        for _ in range(30):
            display_digit(np.zeros(400))
    assert len(plt.get_fignums()) <= autils.MAX_OPEN_HELPER_FIGURES


# ---------------------------------------------------------------- widgvis


def test_widgvis_hides_ipympl_chrome():
    canvas = SimpleNamespace(toolbar_visible=True, header_visible=True, footer_visible=True)
    widgvis(SimpleNamespace(canvas=canvas))
    assert not any(vars(canvas).values())


def test_widgvis_is_a_no_op_elsewhere_and_never_raises():
    fig, _ = plt.subplots()
    widgvis(fig)
    assert not hasattr(fig.canvas, "toolbar_visible")

    class RefusingCanvas:
        header_visible = True

        def __setattr__(self, name, value):
            raise RuntimeError("read-only")

    widgvis(SimpleNamespace(canvas=RefusingCanvas()))
    widgvis(None)


# ---------------------------------------------------------------- display_errors


def test_display_errors_counts_and_shows_the_mistakes_of_a_predict_stub():
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
    predicted = labels.copy()
    predicted[[1, 4, 10]] = [7, 2, 3]
    stub = LogitStub(predicted)
    errors = display_errors(stub, np.zeros((len(labels), 400)), labels.reshape(-1, 1))
    assert errors == 3 and type(errors) is int
    assert stub.calls == 1  # one prediction for all of X
    titles = [ax.get_title() for ax in plt.gcf().axes]
    assert titles == ["1,7", "4,2", "0,3"]


def test_display_errors_shows_at_most_eight():
    labels = np.zeros(20, dtype=int)
    errors = display_errors(LogitStub(np.ones(20, dtype=int)), np.zeros((20, 400)), labels)
    assert errors == 20
    assert len(plt.gcf().axes) == autils.MAX_ERRORS_SHOWN


def test_display_errors_with_no_mistakes_says_so_and_returns_zero(capsys):
    labels = np.arange(10)
    errors = display_errors(LogitStub(labels), np.zeros((10, 400)), labels.reshape(-1, 1))
    assert errors == 0
    assert "No errors" in capsys.readouterr().out
    assert plt.get_fignums() == []


def test_display_errors_with_a_real_keras_model_is_exact_and_quiet(capfd):
    model = identity_keras_model()
    predicted = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    labels = np.array([3, 1, 4, 0, 5, 9, 0, 6]).reshape(-1, 1)
    model(one_hot_inputs(predicted))  # first call builds the graph; only ours is checked
    capfd.readouterr()
    errors = display_errors(model, one_hot_inputs(predicted), labels)
    assert errors == 2
    assert [ax.get_title() for ax in plt.gcf().axes] == ["0,1", "0,2"]
    assert capfd.readouterr().err == ""


def test_display_errors_on_the_lab_sized_model_is_fast():
    model = keras.Sequential(
        [
            keras.Input((400,)),
            keras.layers.Dense(25, activation="relu"),
            keras.layers.Dense(15, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    X = np.random.default_rng(0).random((5000, 400))
    y = np.zeros((5000, 1), dtype=np.uint8)
    display_errors(model, X, y)  # warm-up
    start = time.perf_counter()
    errors = display_errors(model, X, y)
    assert 0 <= errors <= 5000
    assert time.perf_counter() - start < 2.0


# ---------------------------------------------------------------- other backends


HELPERS_SCRIPT = """
import matplotlib
matplotlib.use("{backend}")
import matplotlib.pyplot as plt
import numpy as np
plt.style.use("./deeplearning.mplstyle")
from autils import *

class Stub:
    def predict(self, X, verbose=0):
        return np.eye(10)[np.zeros(len(X), dtype=int)]

plt_act_trio()
display_digit(np.zeros(400))
plot_loss_tf({{"loss": [1.0, 0.5]}})
assert display_errors(Stub(), np.zeros((12, 400)), np.arange(12) % 10) == 10
fig, _ = plt.subplots()
widgvis(fig)
"""

IPYMPL_CANVAS_CHECK = """
assert fig.canvas.toolbar_visible is False and fig.canvas.header_visible is False
"""


def test_helpers_run_quietly_under_ipympl():
    script = HELPERS_SCRIPT.format(backend="module://ipympl.backend_nbagg") + IPYMPL_CANVAS_CHECK
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_helpers_run_quietly_under_inline():
    result = run_python(HELPERS_SCRIPT.format(backend="module://matplotlib_inline.backend_inline"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
