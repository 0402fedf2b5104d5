"""Profile where grading's core-seconds go, stage by stage: one submission, and a batch.

Usage, from the repository root:

    .venv/bin/python bench/bench_profile.py [--copies 12] [--runs 3] [--workers 2]
                                            [--cells] [--json OUT]

Two classes are built as bench_grading.py builds its class (the released lab with the
corpus's reference answers typed in, student-01 to student-N), one of a single
submission and one of N (--copies), and each is graded in turn (single, batch, single,
...), `--runs` times, by

    python -m grader autograde CLASS --out OUT --workers W

as a subprocess, into a fresh OUT every run. Each run is checked (every student 100/100,
all graded afresh), then its OUT/profile.json is read (grader.publish.batch_profile): the wall
and CPU seconds of each stage, as the grader's stage clock counted them where the work was
done:

    coordinator     the coordinating process's threads: intake, prepare, the cluster's
                    start, judging, the graded notebook, the feedback page's round trip,
                    journal, gradebook, the class files and the report
    renderer        the feedback page renderer process (its start, each page's CPU)
    nbgrader        the nbgrader command the coordinator runs (generate_assignment, for
                    OUT's nbgrader course)
    worker          the Dask worker's thread for each submission, and its start
    worker+kernel   the same, plus the CPU of the submission's kernel (fork, confinement,
                    handshake, each cell, the captures)
    template        the kernel template's imports, once per worker

The whole run's CPU, every process it started included, is measured apart: in a cpuacct
cgroup (v1) of its own where the machine has one (bench_validate.CpuMeter), else from
getrusage of the children waited for (which misses the kernels). The table's last rows
say what no stage counts: the coordinator's start (the interpreter, the imports, before
the batch's clock starts), its CPU outside its stages (Dask's scheduler and client
threads, in-process) and the rest, unaccounted (the Dask nannies, the workers' Dask
threads outside a task, the templates' and kernels' CPU outside a stage, every process's
exit).

The table prints, per stage: where, the count per batch, wall and CPU seconds per batch,
CPU per submission and the stage's share of the run's core-seconds (medians over the
runs, each column on its own). A worker's stages run on the workers in parallel: their
wall seconds add up across workers. Cells are summed into one row; --cells lists each.
For the batch it also prints the start-up (the command's start to its first result) and
the steady wall seconds per submission after it, (last result - first) / (N - 1).
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python bench/bench_profile.py`
    sys.path.insert(0, str(REPO_ROOT))

from bench.bench_grading import (  # noqa: E402
    BenchmarkError,
    build_class,
    check_graded_everyone,
    check_grades_csv,
    student_ids,
)
from bench.bench_validate import CpuMeter  # noqa: E402
from grader.course.release import release  # noqa: E402
from grader.labs.c2_w2 import LAB as lab  # noqa: E402
from grader.publish.batch_profile import PROFILE_JSON  # noqa: E402
from grader.run.execution import CELL_STAGE  # noqa: E402

SINGLE, BATCH = "one submission", "batch"
DEFAULT_COPIES = 12
DEFAULT_WORKERS = 2
LIMIT_PER_SUBMISSION = 60  # seconds: a hung run must fail, not stall the benchmark
LIMIT_MARGIN = 300
CELLS = "notebook cells"  # the row that sums every cell's stage
TEMPLATE_STAGES = {"template import"}
# What a worker's page renderer process spent (grader.publish.on_worker), apart from it.
# The page server (grader.publish.page_server) forks the local workers' renderers.
WORKER_RENDERER_STAGES = {"feedback renderer start", "feedback page render", "page server"}
ONCE_PER_WORKER = {"template import", "worker start", "feedback renderer start",
                   "lab on the worker"}
NAME_WIDTH = 34  # the table's first column
KERNEL_STAGES = {"fork + confinement", "kernel handshake", "capture"}
COORDINATOR_START = "coordinator start (imports)"
COORDINATOR_OTHER = "coordinator, outside any stage"
UNACCOUNTED = "unaccounted"
TOTAL = "total (the whole process tree)"


# --- Runs ------------------------------------------------------------------------------------


def grade(class_dir, out, workers, submissions, meter):
    """Grade `class_dir` into a fresh `out`; (its profile, wall seconds, tree CPU seconds)."""
    shutil.rmtree(out, ignore_errors=True)  # a batch resumes what OUT holds
    command = [sys.executable, "-m", "grader", "autograde", str(class_dir), "--out", str(out),
               "--workers", str(workers)]
    limit = LIMIT_PER_SUBMISSION * submissions + LIMIT_MARGIN
    result, wall, cpu = meter.run(command, REPO_ROOT, None, limit)
    if result.returncode != 0:
        log = (result.stdout + result.stderr).strip().splitlines()
        raise BenchmarkError(f"{' '.join(command)} failed with status {result.returncode}:\n"
                             + "\n".join(log[-20:]))
    check_graded_everyone(result.stdout, submissions)
    check_grades_csv(Path(out) / "grades.csv", student_ids(submissions))
    profile = json.loads((Path(out) / PROFILE_JSON).read_text(encoding="utf-8"))
    shutil.rmtree(out)
    return profile, wall, cpu


def run_all(classes, scratch, runs, workers, meter):
    """{setup: [run, ...]}, the setups in turn (single, batch, single, ...)."""
    measured = {setup: [] for setup in classes}
    for number in range(1, runs + 1):
        for setup, (class_dir, submissions) in classes.items():
            out = Path(scratch) / f"out-{setup.replace(' ', '-')}-{number}"
            profile, wall, cpu = grade(class_dir, out, workers, submissions, meter)
            measured[setup].append({"profile": profile, "wall": wall, "cpu": cpu})
            print(f"  run {number}/{runs}  {setup:<15} {wall:7.2f} s wall, {cpu:7.2f} s CPU"
                  f" ({submissions} submission{'s' if submissions > 1 else ''})", flush=True)
    return measured


# --- The table -------------------------------------------------------------------------------


def where(clock, stage):
    """Where a stage of `clock` (a key of profile.json's stages) ran, for the table."""
    if clock != "workers":
        return clock
    if stage in TEMPLATE_STAGES:
        return "template"
    if stage in WORKER_RENDERER_STAGES:
        return "worker renderer"
    if stage.startswith(CELL_STAGE) or stage in KERNEL_STAGES or stage == CELLS:
        return "worker+kernel"
    return "worker"


def stage_rows(profile, cells=False):
    """{(where, stage): {count, wall, cpu}} of one run's profile; the cells summed into
    one row (and each kept as well, with `cells`, under its own name)."""
    rows = {}
    for clock, stages in profile["stages"].items():
        for stage, numbers in stages.items():
            if stage.startswith(CELL_STAGE):
                total = rows.setdefault((where(clock, CELLS), CELLS),
                                        {"count": 0, "wall": 0.0, "cpu": 0.0})
                for key in total:
                    total[key] += numbers[key]
                if not cells:
                    continue
            rows[(where(clock, stage), stage)] = dict(numbers)
    return rows


def run_rows(run, cells=False):
    """One run's rows, with the coordinator's CPU outside its stages, what nothing
    counts (the tree's CPU less every row) and the total."""
    rows = stage_rows(run["profile"], cells)
    counted = sum(numbers["cpu"] for (_, stage), numbers in rows.items()
                  if not _is_cell(stage))
    coordinator = sum(numbers["cpu"] for (place, _), numbers in rows.items()
                      if place == "coordinator")
    profile = run["profile"]
    outside = max(0.0, profile["coordinator_cpu_seconds"] - coordinator)
    started = profile.get("coordinator_start_cpu_seconds", 0.0)
    rows[("coordinator", COORDINATOR_START)] = {
        "count": 1, "wall": profile.get("process_started_seconds", 0.0), "cpu": started}
    rows[("coordinator", COORDINATOR_OTHER)] = {"count": 0, "wall": 0.0, "cpu": outside}
    rows[("", UNACCOUNTED)] = {"count": 0, "wall": 0.0,
                               "cpu": run["cpu"] - counted - outside - started}
    rows[("", TOTAL)] = {"count": 0, "wall": run["wall"], "cpu": run["cpu"]}
    return rows


def _is_cell(stage):
    return stage.startswith(CELL_STAGE)


def median_rows(runs, cells=False):
    """Each row's count, wall and CPU: the median over `runs` (a row missing from a run
    counts 0 there)."""
    per_run = [run_rows(run, cells) for run in runs]
    keys = list(dict.fromkeys(key for rows in per_run for key in rows))
    empty = {"count": 0, "wall": 0.0, "cpu": 0.0}
    return {key: {column: statistics.median(rows.get(key, empty)[column] for rows in per_run)
                  for column in empty} for key in keys}


def ordered(rows):
    """Stages by CPU, largest first; the cells under their sum, the last three rows last."""
    last = [COORDINATOR_START, COORDINATOR_OTHER, UNACCOUNTED, TOTAL]
    body = sorted((key for key in rows if key[1] not in last and not _is_cell(key[1])),
                  key=lambda key: -rows[key]["cpu"])
    cells = sorted((key for key in rows if _is_cell(key[1])), key=lambda key: key[1])
    result = []
    for key in body:
        result.append(key)
        if key[1] == CELLS:
            result.extend(cells)
    return result + [key for name in last for key in rows if key[1] == name]


def table_lines(rows, submissions):
    total = rows[("", TOTAL)]["cpu"] or 1.0
    lines = [f"{'stage':<{NAME_WIDTH}} {'where':<13} {'count':>5} {'wall s':>8} {'CPU s':>8}"
             f" {'CPU/sub':>8} {'share':>6}"]
    for key in ordered(rows):
        place, stage = key
        numbers = rows[key]
        name = (f"  · {stage}" if _is_cell(stage) else stage)[:NAME_WIDTH]
        count = f"{numbers['count']:g}" if numbers["count"] else ""
        wall = f"{numbers['wall']:8.3f}" if numbers["wall"] else f"{'':>8}"
        lines.append(f"{name:<{NAME_WIDTH}} {place:<13} {count:>5} {wall} {numbers['cpu']:8.3f}"
                     f" {numbers['cpu'] / submissions:8.3f} {numbers['cpu'] / total:6.1%}")
    return lines


def batch_timing(runs):
    """{start-up: the command's start to its first result, steady: wall seconds per
    submission after it}, medians."""
    starts, steady = [], []
    for run in runs:
        profile = run["profile"]
        results = profile["result_seconds"]
        starts.append(profile.get("process_started_seconds", 0.0) + results[0])
        if len(results) > 1:
            steady.append((results[-1] - results[0]) / (len(results) - 1))
    return {"first_result_seconds": statistics.median(starts),
            "steady_seconds_per_submission": statistics.median(steady) if steady else None}


def steady_cpu_per_submission(rows, submissions):
    """CPU seconds per submission of the stages every submission runs (count at least
    one per submission, none of a worker's start), the cells' sum included: the cost once
    the batch is under way."""
    return sum(numbers["cpu"] for (_, stage), numbers in rows.items()
               if numbers["count"] >= submissions and not _is_cell(stage)
               and stage not in ONCE_PER_WORKER and stage != COORDINATOR_START) / submissions


def report(measured, submissions, cells=False):
    """Print each setup's table; return the summary for --json."""
    summary = {}
    for setup, runs in measured.items():
        count = submissions[setup]
        rows = median_rows(runs, cells)
        timing = batch_timing(runs)
        steady_cpu = steady_cpu_per_submission(rows, count)
        print()
        print(f"{setup}: {count} submission{'s' if count > 1 else ''}, medians of"
              f" {len(runs)} run(s)")
        print("\n".join(table_lines(rows, count)))
        steady = timing["steady_seconds_per_submission"]
        print(f"first result {timing['first_result_seconds']:.1f} s after the command's"
              " start" + (f"; per-submission stages {steady_cpu:.2f} CPU s per submission;"
                          f" steady {steady:.2f} wall s per submission after the first result"
                          if steady is not None else ""))
        summary[setup] = {"submissions": count, **timing,
                          "steady_cpu_per_submission": steady_cpu,
                          "rows": [{"where": place, "stage": stage, **rows[(place, stage)]}
                                   for place, stage in ordered(rows)]}
    return summary


# --- Command line ----------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=DEFAULT_COPIES,
                        help=f"submissions in the batch (default {DEFAULT_COPIES})")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"autograde --workers (default {DEFAULT_WORKERS})")
    parser.add_argument("--cells", action="store_true", help="a row for every cell")
    parser.add_argument("--json", metavar="OUT", help="write every run's profile and the"
                        " tables to this file")
    args = parser.parse_args(argv)
    for name in ("copies", "runs", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def benchmark(args, scratch, meter):
    scratch = Path(scratch)
    release_dir = release(lab=lab, out=scratch / "release").parent
    classes = {SINGLE: (build_class(release_dir, scratch / "single", 1), 1),
               BATCH: (build_class(release_dir, scratch / "batch", args.copies), args.copies)}
    print(f"profiling autograde --workers {args.workers}: one submission and a batch of"
          f" {args.copies}, {args.runs} run(s) each, alternating; the process tree's CPU"
          f" from {meter.method}", flush=True)
    return run_all(classes, scratch, args.runs, args.workers, meter), {
        setup: count for setup, (_, count) in classes.items()}


def main(argv=None):
    args = parse_args(argv)
    meter = CpuMeter()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as scratch:
            measured, submissions = benchmark(args, scratch, meter)
    except (BenchmarkError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        meter.close()
    summary = report(measured, submissions, args.cells)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"copies": args.copies, "workers": args.workers, "cpu_method": meter.method,
             "summary": summary, "runs": measured}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
