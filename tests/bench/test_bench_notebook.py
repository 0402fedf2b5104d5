"""Tests for the variants bench/bench_notebook.py builds from the real notebook.

Nothing here runs the notebook: the benchmark's numbers are only meaningful if the
original-patterns variant differs from the reference exactly where intended.
"""

import copy
import importlib
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest

from autils import display_errors, load_data


@pytest.fixture(scope="module")
def bench():
    # Imported as tools.run_notebook is: the project root is on sys.path.
    return importlib.import_module("bench.bench_notebook")


@pytest.fixture(scope="module")
def reference(bench):
    return bench.build_variant(bench.REFERENCE, bench.DEFAULT_NOTEBOOK)


@pytest.fixture(scope="module")
def original(bench):
    return bench.build_variant(bench.ORIGINAL, bench.DEFAULT_NOTEBOOK)


def _sources(notebook):
    return {cell.id: cell.source for cell in notebook.cells}


def _cell_with(notebook, text):
    [cell] = [cell for cell in notebook.cells if cell.cell_type == "code" and text in cell.source]
    return cell


class RecordingModel:
    """Stands in for the Keras model: records predict() calls, returns fixed logits."""

    def __init__(self, logits_for):
        self.logits_for = logits_for
        self.calls = []

    def predict(self, rows, **kwargs):
        self.calls.append((np.shape(rows), kwargs))
        return self.logits_for(rows)


def test_reference_is_the_notebook_as_is(bench, reference):
    assert reference == bench.read_notebook(bench.DEFAULT_NOTEBOOK)


def test_original_differs_exactly_in_the_intended_cells(bench, reference, original):
    before, after = _sources(reference), _sources(original)
    changed = {cell_id for cell_id in before if before[cell_id] != after.get(cell_id)}
    intended = {_cell_with(reference, text).id
                for text in (bench.COMPILE_MARKER, bench.GRID_MARKER, "display_errors(")}
    assert changed == intended
    assert set(after) - set(before) == {bench.SLOW_ERRORS_CELL_ID}
    # The slow helper is defined right before the cell that calls it.
    ids = [cell.id for cell in original.cells]
    errors_cell = _cell_with(original, bench.SLOW_ERRORS_CALL)
    assert ids[ids.index(errors_cell.id) - 1] == bench.SLOW_ERRORS_CELL_ID


def test_original_compiles_without_steps_per_execution(bench, original):
    # The markdown may still explain steps_per_execution; only the code must not use it.
    code = [cell.source for cell in original.cells if cell.cell_type == "code"]
    assert not any("steps_per_execution" in source for source in code)
    compile_cell = _cell_with(original, bench.COMPILE_MARKER)
    assert "loss=" in compile_cell.source and "optimizer=" in compile_cell.source


def test_original_grid_predicts_64_images_one_at_a_time(bench, original):
    source = _cell_with(original, "Label, yhat").source
    assert "model.predict(X[random_index].reshape(1,400))" in source
    X, y = load_data()
    model = RecordingModel(lambda rows: np.zeros((len(rows), 10)))
    namespace = {"np": np, "plt": plt, "X": X, "y": y, "model": model,
                 "widgvis": lambda fig: None,
                 "tf": SimpleNamespace(nn=SimpleNamespace(softmax=lambda z: z))}
    try:
        exec(source, namespace)
    finally:
        plt.close("all")
    # One image per call, each with Keras' default progress bar (no verbose argument).
    assert model.calls == [((1, 400), {})] * 64


def test_original_display_errors_predicts_all_rows_through_keras_loop(bench, original):
    X, y = load_data()
    wrong = np.arange(0, len(X), 500)  # 10 rows predicted as the next digit
    labels = y[:, 0].copy()
    labels[wrong] = (labels[wrong] + 1) % 10
    model = RecordingModel(lambda rows: np.eye(10)[labels[: len(rows)]])
    namespace = {"np": np, "display_errors": display_errors}
    exec(_cell_with(original, "def display_errors_slow").source, namespace)
    try:
        assert namespace["display_errors_slow"](model, X, y) == len(wrong)
    finally:
        plt.close("all")
    # All 5000 rows with predict()'s defaults (batch size 32, progress bar), then the
    # course's extra predict() for each of the 8 errors it draws.
    assert model.calls[0] == (X.shape, {})
    assert model.calls[1:] == [((1, 400), {})] * 8


def _drop_steps_per_execution(source):
    return "\n".join(line for line in source.splitlines() if "steps_per_execution" not in line)


# Each edit breaks one text the variant must find, as a rewrite of the notebook might.
BREAKAGES = {
    "already compiled without steps_per_execution": ("model.compile(", _drop_steps_per_execution),
    "compile moved into a helper": ("model.compile(",
                                    lambda source: source.replace("model.compile(", "compile(")),
    "grid sampled differently": ("size=64)", lambda source: source.replace("size=64)", "64)")),
    "errors shown for other data": ("display_errors(",
                                    lambda source: source.replace(",X,y)", ",X_test,y_test)")),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_missing_pattern_raises(bench, reference, breakage):
    text, edit = BREAKAGES[breakage]
    notebook = copy.deepcopy(reference)
    cell = _cell_with(notebook, text)
    cell.source = edit(cell.source)
    with pytest.raises(bench.PatternNotFoundError, match="expected exactly one|no single"):
        bench.original_patterns_variant(notebook)


def test_pattern_in_two_cells_raises(bench, reference):
    notebook = copy.deepcopy(reference)
    notebook.cells.append(copy.deepcopy(_cell_with(notebook, bench.GRID_MARKER)))
    notebook.cells[-1].id = "a-second-grid"
    with pytest.raises(bench.PatternNotFoundError, match="found 2"):
        bench.original_patterns_variant(notebook)
