"""What grader.run.execution.GradingExecute takes from nbclient beyond its public hooks,
checked without a kernel: an nbclient upgrade that changes any of it fails here, loudly,
instead of grading wrongly. Update GradingExecute (and the version below) together."""

import inspect

import nbclient
import pytest
from nbclient import NotebookClient

from grader.run.execution import GradingExecute

WRITTEN_AGAINST = "0.11.0"  # requirements.txt pins it


def test_nbclient_is_the_version_the_executor_was_written_against():
    assert nbclient.__version__ == WRITTEN_AGAINST, (
        "nbclient changed: check each internal GradingExecute touches (its docstring lists "
        "them, this file checks them), then update WRITTEN_AGAINST and requirements.txt")


@pytest.mark.parametrize("method, parameters", [
    ("async_execute_cell", ["self", "cell", "cell_index", "execution_count", "store_history"]),
    ("process_message", ["self", "msg", "cell", "cell_index"]),
    ("_async_cleanup_kernel", ["self"]),
    ("async_start_new_kernel", ["self", "kwargs"]),
    ("async_start_new_kernel_client", ["self"]),
    ("preprocess", ["self", "nb", "resources", "km"]),
    ("preprocess_cell", ["self", "cell", "resources", "index"]),
])
def test_the_methods_it_overrides_or_calls_keep_their_signatures(method, parameters):
    assert list(inspect.signature(getattr(GradingExecute.__mro__[1], method)).parameters) \
        == parameters
    for synchronous in ("execute_cell", "_cleanup_kernel", "start_new_kernel"):
        assert callable(getattr(NotebookClient, synchronous))


@pytest.mark.parametrize("hook", ["on_notebook_start", "on_cell_executed", "timeout_func",
                                  "raise_on_iopub_timeout", "store_widget_state",
                                  "resources"])
def test_the_hooks_it_sets_are_still_nbclients_traits(hook):
    assert hook in NotebookClient.class_traits()


def test_a_cell_run_is_counted_and_written_back_at_its_index():
    # The capture runs as a cell appended to `nb` (nbclient writes a cell back at its
    # index) and is taken off `code_cells_executed` (nbclient counts every cell it runs).
    source = inspect.getsource(NotebookClient.async_execute_cell)
    assert "self.code_cells_executed += 1" in source
    assert 'self.nb["cells"][cell_index] = cell' in source
    assert "self.code_cells_executed = 0" in inspect.getsource(
        NotebookClient.reset_execution_trackers)
    assert "self.on_cell_executed" in source


def test_the_kernel_and_client_it_asks_and_frees_are_nbclients():
    source = inspect.getsource(NotebookClient._async_cleanup_kernel)
    assert "self.kc" in source and "stop_channels" in source
    assert "self.km: KernelManager | None = km" in inspect.getsource(NotebookClient.__init__)
