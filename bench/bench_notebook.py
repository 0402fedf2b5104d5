"""Benchmark the lab notebook end to end against the original course's slow patterns.

Usage, from the repository root:

    .venv/bin/python bench/bench_notebook.py [--runs 5] [--notebook PATH] [--goal 8]
                                             [--json OUT] [--timeout 300]

Two variants of the notebook are executed headless, alternately (reference, original
patterns, reference, ...), each run in a fresh kernel on a fresh copy read from disk:

* reference: the notebook as it is;
* original patterns: the same notebook with the course's slow patterns put back, edited in
  memory: `model.compile` without `steps_per_execution`, the 64-digit prediction grid that
  calls `model.predict` once per image (progress bar on), and `display_errors` predicting
  all 5000 rows through Keras' batched `predict` loop (batch size 32, progress bar on).

Absolute times on a shared machine are noisy, so medians (with min and max) are reported,
along with the cells where the time goes. Exit status is 1 if any run shows an error
output, since a failed run's time means nothing; stderr output is reported, not fatal.
"""

import argparse
import copy
import json
import os
import re
import statistics
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run as `python bench/bench_notebook.py`, only bench/ is on sys.path; tools/ lives at the root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools.run_notebook import read_notebook, run_notebook  # noqa: E402

DEFAULT_NOTEBOOK = REPO_ROOT / "C2_W2_Assignment.ipynb"
REFERENCE = "reference"
ORIGINAL = "original patterns"
SLOWEST_CELLS_SHOWN = 5
LABEL_WIDTH = 48
KERNEL_TCP_NOTICE = "Kernel is running over TCP without encryption"

# --- The texts the original-patterns variant edits ---------------------------------------

COMPILE_MARKER = "model.compile("
STEPS_PER_EXECUTION_LINE = re.compile(r"^[ \t]*steps_per_execution\s*=.*\n?", re.MULTILINE)
GRID_MARKER = "random_indices = np.random.randint(m, size=64)"
ERRORS_CALL = re.compile(r"\bdisplay_errors\(\s*model\s*,\s*X\s*,\s*y\s*\)")

# The course's prediction grid: one predict() per image, each drawing its own progress bar.
ORIGINAL_PREDICTION_GRID = """\
import warnings
warnings.simplefilter(action='ignore', category=FutureWarning)
# You do not need to modify anything in this cell

m, n = X.shape

fig, axes = plt.subplots(8,8, figsize=(5,5))
fig.tight_layout(pad=0.13,rect=[0, 0.03, 1, 0.91]) #[left, bottom, right, top]
widgvis(fig)
for i,ax in enumerate(axes.flat):
    # Select random indices
    random_index = np.random.randint(m)

    # Select rows corresponding to the random indices and
    # reshape the image
    X_random_reshaped = X[random_index].reshape((20,20)).T

    # Display the image
    ax.imshow(X_random_reshaped, cmap='gray')

    # Predict using the Neural Network
    prediction = model.predict(X[random_index].reshape(1,400))
    prediction_p = tf.nn.softmax(prediction)
    yhat = np.argmax(prediction_p)

    # Display the label above the image
    ax.set_title(f"{y[random_index,0]},{yhat}",fontsize=10)
    ax.set_axis_off()
fig.suptitle("Label, yhat", fontsize=14)
plt.show()
"""

SLOW_ERRORS_CELL_ID = "bench-display-errors-slow"
SLOW_ERRORS_CALL = "display_errors_slow(model,X,y)"
# The course's autils.display_errors predicted all rows with model.predict(X), then called
# predict once more for each error it drew. The lab's own plotting is reused so that only
# the prediction differs: a function serving the precomputed predictions stands in for the
# model, since the lab's helper calls a callable model directly.
SLOW_ERRORS_DEFINITION = """\
def display_errors_slow(model, X, y):
    predictions = model.predict(X)   # batches of 32 through Keras' loop, with a progress bar
    yhat = np.argmax(predictions, axis=1)
    for j in np.flatnonzero(yhat != y[:, 0])[:8]:
        model.predict(X[j].reshape(1, 400))   # the course re-predicted each error it drew
    return display_errors(lambda rows, training=False: predictions, X, y)
"""


class PatternNotFoundError(LookupError):
    """The notebook no longer contains a text the original-patterns variant must edit."""


# --- Variant construction ----------------------------------------------------------------


def reference_variant(notebook):
    return notebook


def original_patterns_variant(notebook):
    """A copy of `notebook` with the original course's slow patterns put back.

    Every edit raises PatternNotFoundError if its text is missing, so the benchmark can
    never compare two identical notebooks.
    """
    slow = copy.deepcopy(notebook)
    _compile_without_steps_per_execution(slow)
    _predict_grid_one_image_at_a_time(slow)
    _display_errors_through_predict_loop(slow)
    nbformat.validate(slow)
    return slow


VARIANTS = {REFERENCE: reference_variant, ORIGINAL: original_patterns_variant}


def build_variant(name, notebook_path):
    """A fresh copy of the notebook at `notebook_path`, as variant `name`."""
    return VARIANTS[name](read_notebook(notebook_path))


def _only_code_cell(notebook, matches, description):
    found = [cell for cell in notebook.cells if cell.cell_type == "code" and matches(cell.source)]
    if len(found) != 1:
        raise PatternNotFoundError(
            f"expected exactly one code cell containing {description}, found {len(found)}")
    return found[0]


def _compile_without_steps_per_execution(notebook):
    cell = _only_code_cell(notebook, lambda source: COMPILE_MARKER in source,
                           repr(COMPILE_MARKER))
    source, removed = STEPS_PER_EXECUTION_LINE.subn("", cell.source)
    if removed != 1 or "steps_per_execution" in source:
        raise PatternNotFoundError(
            f"the {COMPILE_MARKER!r} cell has no single 'steps_per_execution=...' line to remove")
    cell.source = source


def _predict_grid_one_image_at_a_time(notebook):
    cell = _only_code_cell(notebook, lambda source: GRID_MARKER in source, repr(GRID_MARKER))
    cell.source = ORIGINAL_PREDICTION_GRID.rstrip("\n")


def _display_errors_through_predict_loop(notebook):
    cell = _only_code_cell(notebook, lambda source: ERRORS_CALL.search(source) is not None,
                           f"a call matching {ERRORS_CALL.pattern!r}")
    cell.source = ERRORS_CALL.sub(SLOW_ERRORS_CALL, cell.source)
    definition = new_code_cell(SLOW_ERRORS_DEFINITION.rstrip("\n"), id=SLOW_ERRORS_CELL_ID)
    notebook.cells.insert(notebook.cells.index(cell), definition)


# --- A timed run ---------------------------------------------------------------------------


@dataclass
class CellTiming:
    cell_id: str
    label: str
    seconds: float


@dataclass
class RunResult:
    variant: str
    run: int
    seconds: float
    cells: list[CellTiming]
    errors: list[str]
    stderr: list[str]


def timed_run(variant, run_number, notebook_path, timeout):
    notebook = build_variant(variant, notebook_path)
    with kernel_noise_filtered():
        executed = run_notebook(notebook, REPO_ROOT, timeout=timeout)
    return RunResult(
        variant=variant,
        run=run_number,
        seconds=executed.seconds,
        cells=cell_timings(executed.notebook),
        errors=executed.errors(),
        stderr=executed.stderr_texts(),
    )


@contextmanager
def kernel_noise_filtered():
    """Drop the warning every headless kernel prints to the terminal on start-up.

    The kernel process inherits this process's stderr; its "running over TCP without
    encryption" notice would split the progress lines. Anything else it writes is passed on.
    """
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines()
            kept = [line for line in lines if KERNEL_TCP_NOTICE not in line]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


def cell_timings(notebook):
    """Per-cell durations from the timestamps nbclient records in each cell's metadata.

    Labels carry the cell's position: two cells of the lab both begin `import warnings`.
    """
    timings = []
    for index, cell in enumerate(notebook.cells):
        stamps = cell.get("metadata", {}).get("execution", {})
        start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
        if cell.cell_type == "code" and start and end:
            seconds = (_parse_stamp(end) - _parse_stamp(start)).total_seconds()
            label = f"#{index} {cell_label(cell.source)}"
            timings.append(CellTiming(cell.get("id", ""), label, seconds))
    return timings


def cell_label(source):
    first_line = next((line.strip() for line in source.splitlines() if line.strip()), "")
    if len(first_line) > LABEL_WIDTH:
        return first_line[:LABEL_WIDTH - 3] + "..."
    return first_line


def _parse_stamp(stamp):
    # nbclient writes UTC ISO 8601 with a trailing "Z", which fromisoformat reads from 3.11.
    return datetime.fromisoformat(stamp)


def run_alternating(notebook_path, runs, timeout):
    """Run the variants in turn (reference, original, reference, ...) so that slow drifts
    in the machine's load hit both alike."""
    results = []
    for run_number in range(1, runs + 1):
        for variant in VARIANTS:
            result = timed_run(variant, run_number, notebook_path, timeout)
            print(f"  run {run_number}/{runs}  {variant:<18} {result.seconds:6.2f} s", flush=True)
            results.append(result)
    return results


# --- Statistics ----------------------------------------------------------------------------


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def slowest_cells(results, count=SLOWEST_CELLS_SHOWN):
    """The `count` cells with the largest median duration over `results`, slowest first."""
    durations, labels = {}, {}
    for result in results:
        for cell in result.cells:
            durations.setdefault(cell.cell_id, []).append(cell.seconds)
            labels[cell.cell_id] = cell.label
    medians = [(labels[key], statistics.median(values)) for key, values in durations.items()]
    return sorted(medians, key=lambda item: item[1], reverse=True)[:count]


def summarize(results):
    summary = {}
    for variant in VARIANTS:
        runs = [result for result in results if result.variant == variant]
        summary[variant] = {
            **spread([result.seconds for result in runs]),
            "slowest_cells": slowest_cells(runs),
            "runs_with_errors": sum(1 for result in runs if result.errors),
            "runs_with_stderr": sum(1 for result in runs if result.stderr),
        }
    return summary


# --- Printing ------------------------------------------------------------------------------


def print_report(summary, results, goal):
    print()
    print(f"{'variant':<18} {'runs':>4} {'median':>8} {'min':>8} {'max':>8}")
    for variant, stats in summary.items():
        runs = sum(1 for result in results if result.variant == variant)
        print(f"{variant:<18} {runs:>4} {stats['median']:>7.2f}s {stats['min']:>7.2f}s"
              f" {stats['max']:>7.2f}s")
    for variant, stats in summary.items():
        print(f"\n{variant}: {SLOWEST_CELLS_SHOWN} slowest cells (median s)")
        for label, seconds in stats["slowest_cells"]:
            print(f"  {seconds:6.2f}  {label}")
    print()
    print_problems(results)
    print(final_line(summary, goal))


def print_problems(results):
    problems = [(result, kind, texts) for result in results
                for kind, texts in (("error", result.errors), ("stderr", result.stderr)) if texts]
    if not problems:
        print("checks: no error or stderr output in any run")
    for result, kind, texts in problems:
        first = texts[0].strip().splitlines()[0] if texts[0].strip() else ""
        print(f"WARNING {result.variant} run {result.run}: {len(texts)} {kind} output(s),"
              f" first: {first[:100]}")


def final_line(summary, goal):
    fast, slow = summary[REFERENCE]["median"], summary[ORIGINAL]["median"]
    verdict = "met" if fast <= goal else "NOT met"
    return (f"reference median {fast:.2f} s, original patterns median {slow:.2f} s,"
            f" speed-up Y/X = {slow / fast:.2f}x; goal {goal:g} s: {verdict}")


def write_json(path, notebook_path, goal, summary, results):
    report = {
        "notebook": str(notebook_path),
        "goal_seconds": goal,
        "speed_up": summary[ORIGINAL]["median"] / summary[REFERENCE]["median"],
        "summary": summary,
        "runs": [asdict(result) for result in results],
    }
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


# --- Command line --------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per variant (default 5)")
    parser.add_argument("--notebook", type=Path, default=DEFAULT_NOTEBOOK,
                        help="notebook to benchmark (default: the lab at the repo root)")
    parser.add_argument("--goal", type=float, default=8.0,
                        help="target for the reference median, in seconds (default 8)")
    parser.add_argument("--json", metavar="OUT", help="write every raw timing to this file")
    parser.add_argument("--timeout", type=int, default=300, help="per-cell timeout, seconds")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Build both variants once before any run, so a missing pattern fails in a second,
    # not after minutes of reference runs.
    for variant in VARIANTS:
        build_variant(variant, args.notebook)
    print(f"benchmarking {args.notebook} ({args.runs} runs per variant, alternating)")
    results = run_alternating(args.notebook, args.runs, args.timeout)
    summary = summarize(results)
    print_report(summary, results, args.goal)
    if args.json:
        write_json(args.json, args.notebook, args.goal, summary, results)
    return 1 if any(result.errors for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
