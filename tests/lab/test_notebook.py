"""Run the reference notebook top to bottom, twice, and check what a student would check.

The reference solution sits in the source notebook between nbgrader's solution markers,
which are plain comments, so the source notebook itself is the reference run.
"""

import json
import re

import pytest
from nbformat.v4 import new_code_cell

from tools.run_notebook import read_notebook, run_notebook

PROBE_TAG = "PROBE "
# Appended to the executed copy only: facts a student would read off the page, as data.
PROBE_CELL = f"""
import json as _json
import sys as _sys
_predicted = np.argmax(np.asarray(model(X, training=False)), axis=1)
print({PROBE_TAG!r} + _json.dumps({{
    "losses": [float(v) for v in history.history["loss"]],
    "accuracy": float(np.mean(_predicted == y[:, 0])),
    "errors": int(np.sum(_predicted != y[:, 0])),
    "slow_imports": sorted({{"sklearn", "pandas"}} & set(_sys.modules)),
}}))
"""


def _execute(project_root):
    notebook = read_notebook(project_root / "C2_W2_Assignment.ipynb")
    notebook.cells.append(new_code_cell(PROBE_CELL))
    return run_notebook(notebook, project_root)


@pytest.fixture(scope="module")
def runs(project_root):
    return [_execute(project_root), _execute(project_root)]


@pytest.fixture(scope="module")
def run(runs):
    return runs[0]


def _probe(run):
    line = next(line for line in run.stdout().splitlines() if line.startswith(PROBE_TAG))
    return json.loads(line[len(PROBE_TAG):])


def _shown(run, text):
    return run.shown_text(run.cell_containing(text))


def test_no_cell_fails_or_writes_to_stderr(runs):
    for run in runs:
        assert run.errors() == []
        # nbgrader scores a test cell 0 when it writes to stderr, and students read red
        # text as "something broke".
        assert run.stderr_texts() == []


def test_softmax_exercise_matches_tensorflow_and_passes(run):
    shown = _shown(run, "a = my_softmax(z)")
    assert "my_softmax(z):         [0.03 0.09 0.24 0.64]" in shown
    assert "tensorflow softmax(z): [0.03 0.09 0.24 0.64]" in shown
    assert "All tests passed!" in shown


def test_data_is_described_as_the_text_says(run):
    shown = _shown(run, "print ('The first element of X is: ', X[0])")
    assert "The first element of y is:  0" in shown
    assert "The last element of y is:  9" in shown
    shown = _shown(run, "print ('The shape of X is: ' + str(X.shape))")
    assert "The shape of X is: (5000, 400)" in shown
    assert "The shape of y is: (5000, 1)" in shown


def test_model_summary_counts_the_parameters(run):
    shown = _shown(run, "# UNQ_C2")
    assert re.search(r"L1 \(Dense\)\s*│ \(None, 25\)\s*│\s*10,025", shown)
    assert re.search(r"L2 \(Dense\)\s*│ \(None, 15\)\s*│\s*390", shown)
    assert re.search(r"L3 \(Dense\)\s*│ \(None, 10\)\s*│\s*160", shown)
    assert "Total params: 10,575" in shown
    assert "All tests passed!" in _shown(run, "test_model(model, 10, 400)")


def test_weight_shapes_are_printed(run):
    shown = _shown(run, "#### Examine Weights shapes")
    assert "W1 shape = (400, 25), b1 shape = (25,)" in shown
    assert "W2 shape = (25, 15), b2 shape = (15,)" in shown
    assert "W3 shape = (15, 10), b3 shape = (10,)" in shown


def test_training_runs_40_epochs_of_157_batches(run):
    shown = _shown(run, "history = model.fit(")
    assert "Epoch 40/40" in shown
    assert "157/157" in shown
    assert len(_probe(run)["losses"]) == 40


def test_the_trained_model_reads_the_digits(run):
    probe = _probe(run)
    assert probe["accuracy"] >= 0.98
    losses = probe["losses"]
    assert losses[-1] < losses[0] / 10


def test_x1015_is_predicted_as_a_two(run):
    assert "Largest Prediction index: 2" in _shown(run, "image_of_two = X[1015]")
    assert "Total of predictions: 1.000" in _shown(run, "prediction_p = tf.nn.softmax(prediction)")
    assert "np.argmax(prediction_p): 2" in _shown(run, "yhat = np.argmax(prediction_p)")


def test_error_count_is_small_and_matches_the_model(run):
    shown = _shown(run, "display_errors(model,X,y)")
    errors = int(re.search(r"(\d+) errors out of 5000 images", shown).group(1))
    assert errors < 100
    assert errors == _probe(run)["errors"]


def test_keras_does_not_drag_in_scikit_learn_or_pandas(run):
    # Keras imports them at start-up when installed: half a second of every kernel start.
    assert _probe(run)["slow_imports"] == []


def test_two_runs_give_identical_results(runs):
    first, second = (_probe(run) for run in runs)
    assert first["losses"] == second["losses"]
    assert first["errors"] == second["errors"]


@pytest.mark.parametrize("source", [
    "plt_act_trio()",
    "plt_softmax(my_softmax)",
    'fig.suptitle("Label, image", fontsize=14)',
    "plot_loss_tf(history)",
    "display_digit(image_of_two)",
    'fig.suptitle("Label, yhat", fontsize=14)',
    "display_errors(model,X,y)",
])
def test_figures_are_shown_as_live_widgets_with_a_picture(run, source):
    displays = [output.data for output in run.cell_containing(source).outputs
                if output.output_type in ("display_data", "execute_result")]
    assert any("image/png" in data for data in displays)
    assert any("application/vnd.jupyter.widget-view+json" in data for data in displays)
