"""Tests for the softmax explorer: the model's maths without any widget, then the view
driven headless by setting slider values, as a student's mouse would."""

import base64
import html
import re
import warnings
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
from fresh_python import run_python
from ipywidgets.widgets import widget as widget_module

import lab_utils_softmax
from lab_utils_softmax import SoftmaxExplorerView, plt_softmax
from softmax_explorer_model import SoftmaxExplorerModel, evaluate_softmax

PROJECT_ROOT = Path(lab_utils_softmax.__file__).resolve().parent
PNG_SIGNATURE = b"\x89PNG"
# More than matplotlib's figure.max_open_warning (20): a student re-running the cell a lot.
REBUILDS = 25


def softmax(z):
    exp_z = np.exp(z)
    return exp_z / exp_z.sum()


def softmax_in_place(z):
    z[:] = np.exp(z)
    z /= z.sum()
    return z


def raises(z):
    raise ZeroDivisionError("division by zero")


def returns_none(z):
    np.exp(z)


def returns_nan(z):
    return np.exp(z) / 0.0 * 0.0


def returns_wrong_shape(z):
    return softmax(z).reshape(2, 2)


def returns_text(z):
    return "probabilities"


def forgets_to_normalise(z):
    return np.exp(z)


def readout_text(view):
    """The readout as a browser shows it: tags removed, one line per element."""
    return html.unescape(re.sub(r"<[^>]+>", "\n", view.readout.value)).strip()


def readout_probabilities(view):
    match = re.search(r"softmax\(z\) = \[([^\]]*)\], sum = (\S+)", readout_text(view))
    return np.array(match.group(1).split(), dtype=float), float(match.group(2))


def probability_heights(view):
    return np.array([bar.get_height() for bar in view.probability_bars])


@pytest.fixture(autouse=True)
def no_open_figures():
    plt.close("all")
    yield
    plt.close("all")


# ---------------------------------------------------------------- model


def test_model_outputs_sum_to_one_and_follow_the_order_of_z():
    model = SoftmaxExplorerModel(softmax, z=(0.5, -2.0, 4.0, 1.0))
    assert model.error is None
    assert model.probabilities.sum() == pytest.approx(1.0)
    assert np.array_equal(np.argsort(model.probabilities), np.argsort(model.z))


def test_model_starts_at_one_two_three_four():
    model = SoftmaxExplorerModel(softmax)
    assert list(model.z) == [1, 2, 3, 4]
    assert model.softmax_line() == "softmax(z) = [0.032 0.087 0.237 0.644], sum = 1.000"
    assert model.z_line() == "z = [1.000 2.000 3.000 4.000]"


def test_set_z_recomputes_the_probabilities():
    model = SoftmaxExplorerModel(softmax)
    model.set_z(0, 5.0)
    assert model.z[0] == 5.0
    assert np.allclose(model.probabilities, softmax(np.array([5.0, 2, 3, 4])))
    assert np.argmax(model.probability_bar_heights()) == 0


def test_a_function_that_changes_its_argument_cannot_change_z():
    model = SoftmaxExplorerModel(softmax_in_place)
    assert list(model.z) == [1, 2, 3, 4]
    assert model.probabilities.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("broken_fn", "expected_words"),
    [
        (raises, "raised ZeroDivisionError: division by zero"),
        (returns_none, "returned None"),
        (returns_nan, "NaN"),
        (returns_wrong_shape, "shape (2, 2)"),
        (returns_text, "not an array of numbers"),
    ],
)
def test_a_broken_function_gives_a_message_not_an_exception(broken_fn, expected_words):
    model = SoftmaxExplorerModel(broken_fn)
    assert model.probabilities is None
    assert expected_words in model.error
    assert model.error.startswith(f"{broken_fn.__name__}(z)")
    assert model.softmax_line() == model.error
    assert np.array_equal(model.probability_bar_heights(), np.zeros(4))
    model.set_z(2, -1.0)  # moving a slider keeps it safe too
    assert model.error is not None


def test_outputs_that_do_not_sum_to_one_are_pointed_out():
    model = SoftmaxExplorerModel(forgets_to_normalise)
    assert model.error is None
    assert model.softmax_line().endswith("(should be 1)")


def test_evaluate_softmax_accepts_array_likes():
    probabilities, error = evaluate_softmax(lambda z: list(softmax(z)), np.zeros(4))
    assert error is None and np.allclose(probabilities, 0.25)


def test_the_model_module_imports_no_plotting_or_widget_library():
    script = (
        "import sys, softmax_explorer_model\n"
        "assert not {'matplotlib', 'ipywidgets'} & set(sys.modules), sorted(sys.modules)\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- view (Agg)


def test_plt_softmax_builds_four_described_sliders_and_a_readout():
    view = plt_softmax(softmax)
    assert isinstance(view, SoftmaxExplorerView)
    assert [s.description for s in view.sliders] == ["z0", "z1", "z2", "z3"]
    assert [s.value for s in view.sliders] == [1, 2, 3, 4]
    assert all(s.min <= -5 and s.max >= 5 for s in view.sliders)
    assert "softmax-readout" in view.readout._dom_classes
    assert np.allclose(probability_heights(view), softmax(np.array([1.0, 2, 3, 4])))


def test_moving_a_slider_updates_bars_and_readout():
    view = plt_softmax(softmax)
    before_heights = probability_heights(view)
    before_readout = readout_text(view)

    view.sliders[0].value = 4.5

    expected = softmax(np.array([4.5, 2, 3, 4]))
    assert view.z_bars[0].get_height() == 4.5
    assert np.allclose(probability_heights(view), expected)
    assert not np.allclose(probability_heights(view), before_heights)
    assert readout_text(view) != before_readout
    shown, shown_sum = readout_probabilities(view)
    assert np.allclose(shown, expected, atol=5e-4)
    assert shown.sum() == pytest.approx(1.0, abs=2e-3) and shown_sum == 1.0
    labels = [label.get_text() for label in view.probability_labels]
    assert labels == [f"{p:.2f}" for p in expected]


def test_without_ipympl_the_chart_is_a_png_that_follows_the_sliders():
    view = plt_softmax(softmax)
    assert isinstance(view.chart, widgets.Image)
    before = bytes(view.chart.value)  # ipywidgets keeps the bytes as a memoryview
    assert before.startswith(PNG_SIGNATURE)
    view.sliders[3].value = -4.0
    after = bytes(view.chart.value)
    assert after.startswith(PNG_SIGNATURE) and after != before


def test_without_ipympl_pyplot_does_not_hold_the_figure():
    # The inline backend shows every figure pyplot holds; ours is already in the widget.
    plt_softmax(softmax)
    assert plt.get_fignums() == []


def test_a_broken_function_shows_its_message_instead_of_bars():
    view = plt_softmax(raises)
    assert "raised ZeroDivisionError" in readout_text(view)
    assert "ZeroDivisionError" in view.error_text.get_text()
    assert np.array_equal(probability_heights(view), np.zeros(4))
    assert not any(label.get_visible() for label in view.probability_labels)
    view.sliders[1].value = 0.0
    assert view.z_bars[1].get_height() == 0.0
    assert "softmax-error" in view.readout.value


def test_displaying_the_view_gives_the_widget_and_a_picture():
    bundle = plt_softmax(softmax)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_SIGNATURE)


def test_close_frees_the_widgets():
    view = plt_softmax(softmax)
    view.close()
    assert view.sliders[0].comm is None and view.widget.comm is None
    assert view.sliders[0].layout.comm is None and view.sliders[0].style.comm is None


def open_widget_count():
    # ipywidgets' registry of the widgets whose comm is open: what a kernel keeps alive.
    return len(widget_module._instances)


def test_rebuilding_the_explorer_many_times_keeps_one_and_leaks_nothing():
    other = plt.figure()  # another cell's figure, not shown yet
    plt_softmax(softmax)
    widgets_of_one_explorer = open_widget_count()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "More than 20 figures", RuntimeWarning)
        views = [plt_softmax(softmax) for _ in range(REBUILDS)]
    assert plt.get_fignums() == [other.number]  # Agg: the explorer draws PNGs itself
    assert open_widget_count() == widgets_of_one_explorer
    assert all(view.widget.comm is None for view in views[:-1])
    latest = views[-1]
    assert latest.widget.comm is not None
    latest.sliders[0].value = 4.5  # the latest explorer still works
    assert latest.z_bars[0].get_height() == 4.5


# ---------------------------------------------------------------- view (ipympl)


IPYMPL_SCRIPT = """
import matplotlib
matplotlib.use("module://ipympl.backend_nbagg")
import matplotlib.pyplot as plt
import numpy as np
import ipywidgets as widgets
plt.style.use("./deeplearning.mplstyle")
from lab_utils_softmax import plt_softmax

def softmax(z):
    return np.exp(z) / np.exp(z).sum()

view = plt_softmax(softmax)
assert view.chart is view.fig.canvas and isinstance(view.chart, widgets.DOMWidget)
assert view.fig.canvas.toolbar_visible is False
view.sliders[2].value = -3.0
heights = np.array([bar.get_height() for bar in view.probability_bars])
assert np.allclose(heights, softmax(np.array([1.0, 2.0, -3.0, 4.0])))
assert "sum = 1.000" in view.readout.value
plt_softmax(lambda z: None)
"""


def test_under_ipympl_the_chart_is_the_live_canvas():
    result = run_python(IPYMPL_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


IPYMPL_REBUILD_SCRIPT = """
import warnings
import matplotlib
matplotlib.use("module://ipympl.backend_nbagg")
import matplotlib.pyplot as plt
import numpy as np
from ipywidgets.widgets import widget
from lab_utils_softmax import plt_softmax

def softmax(z):
    return np.exp(z) / np.exp(z).sum()

warnings.filterwarnings("error", "More than 20 figures", RuntimeWarning)
relu_fig, _ = plt.subplots()  # another cell's live figure, e.g. the ReLU trio
first = plt_softmax(softmax)
widgets_of_one_explorer = len(widget._instances)
views = [plt_softmax(softmax) for _ in range({rebuilds})]
latest = views[-1]
assert plt.get_fignums() == [relu_fig.number, latest.fig.number], plt.get_fignums()
assert relu_fig.canvas.comm is not None, "another figure was closed"
assert len(widget._instances) == widgets_of_one_explorer, len(widget._instances)
assert all(view.fig.canvas.comm is None for view in [first, *views[:-1]])
assert latest.fig.canvas.comm is not None
latest.sliders[1].value = -2.0
assert latest.z_bars[1].get_height() == -2.0
"""


def test_under_ipympl_rebuilding_the_explorer_closes_only_its_own_previous_figure():
    result = run_python(IPYMPL_REBUILD_SCRIPT.format(rebuilds=REBUILDS))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
