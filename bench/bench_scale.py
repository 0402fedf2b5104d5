"""Benchmark how grading scales with the size of the class (issue 11).

Usage, from the repository root:

    .venv/bin/python bench/bench_scale.py [--sizes 20 200 1000] [--runs 1] [--workers 2]
                                          [--json OUT]

For each size N a class of N submissions is built from the corpus (tests/grader/corpus):
the released lab with a handful of the corpus's answers typed in, right and wrong ones in
turn (MIX below), one folder per student, `s0001-ok-loop-softmax-input-model` and so on.
Each class is graded by

    python -m grader autograde CLASS --out OUT --workers W

as a subprocess, into a fresh OUT every run (a resumed OUT would keep earlier results).
That process is the coordinator: intake, judging, publishing, and, with a LocalCluster,
the Dask scheduler, in-process; its workers (Dask nannies, worker processes, their kernel
templates and kernels) are its descendants. Measured per run:

* wall time of the whole command, and seconds per submission (wall time / N);
* the coordinator's peak RSS: VmHWM from /proc/<pid>/status, the kernel's own high-water
  mark of that one process's resident memory (children not included), read every 0.2 s.
  Being a high-water mark, it misses nothing but the last < 0.2 s before the process
  exits;
* for information, the workers' peak: the largest VmHWM of any single descendant, and the
  largest sum of the descendants' RSS seen in a sample (this sum counts pages shared by
  forked kernels once per process, so it overstates);
* the machine's 1-minute load average, sampled along (the machine may be shared);
* from OUT/journal.sqlite, when each student was saved (1 s resolution): the steady
  seconds per submission, (last - first) / (N - 1), free of the start-up and the end.

Every run is checked before it counts: autograde must say it graded all N submissions
(none kept from an earlier batch), and each student must get exactly the grade the corpus
expects for the answer typed in (expected_grades.csv), or the benchmark stops with exit
status 1. With several runs, medians are reported. The sizes run in turn (20, 200, 1000,
20, ...), so that a slow drift of the machine's load hits them alike.

Goals (issue 11): seconds per submission at the largest N at most 10% above the smallest
N's, and the coordinator's peak memory flat in N (at most 10% above the smallest N's,
our reading of "flat") and under 500 MB (10^6 bytes) at the largest.
"""

import argparse
import csv
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_PARENT = REPO_ROOT / "tests" / "grader"
# Run as `python bench/bench_scale.py`, only bench/ is on sys.path: the grader lives at the
# root and the corpus of submissions in tests/grader.
for _path in (REPO_ROOT, CORPUS_PARENT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import corpus  # noqa: E402

from bench.bench_grading import BenchmarkError, check_graded_everyone, verdict  # noqa: E402
from grader.course.release import release  # noqa: E402
from grader.labs.c2_w2 import LAB as lab  # noqa: E402

# The answers the class cycles through: corpus students whose grading takes the usual
# time (no timeouts), three right, five wrong in different ways.
MIX = (
    "ok-loop-softmax-input-model",  # 100
    "wrong-softmax-unnormalised",  # 50
    "ok-vectorised-softmax-no-input",  # 100
    "wrong-model-units",  # 50
    "wrong-both-untouched-stubs",  # 0
    "ok-stable-softmax-relu-function",  # 100
    "wrong-model-softmax-output",  # 50
    "wrong-softmax-raises",  # 50
)
DEFAULT_SIZES = (20, 200, 1000)
DEFAULT_WORKERS = 2
SAMPLE_SECONDS = 0.2
TIMELINE_SECONDS = 5.0  # the coordinator's RSS is kept in the JSON every this many seconds
MB = 10**6

TIME_GOAL = 1.10  # s/submission at the largest N over the smallest N's
MEMORY_FLAT_GOAL = 1.10  # coordinator's peak at the largest N over the smallest N's
MEMORY_GOAL_MB = 500  # coordinator's peak at the largest N

LIMIT_PER_SUBMISSION = 60  # seconds: a hung run must fail, not stall the benchmark
LIMIT_MARGIN = 600
STOP_SECONDS = 60  # for a coordinator told to stop
GRADE_COLUMNS = ("UNQ_C1", "UNQ_C2", "score", "status")


# --- The class -----------------------------------------------------------------------------


def student_ids(count):
    """{student id: the corpus answer typed in}, cycling through MIX."""
    width = max(4, len(str(count)))
    return {f"s{number:0{width}d}-{MIX[(number - 1) % len(MIX)]}":
            MIX[(number - 1) % len(MIX)] for number in range(1, count + 1)}


def build_class(release_dir, class_dir, count):
    """`count` student folders in `class_dir`, each holding one of MIX's notebooks;
    return {student id: answer}."""
    released = nbformat.read(str(Path(release_dir) / lab.notebook_name), as_version=4)
    texts = {answer: nbformat.writes(corpus.answered(released, *corpus.ANSWERS[answer]))
             for answer in MIX}
    students = student_ids(count)
    for student, answer in students.items():
        folder = Path(class_dir) / student
        folder.mkdir(parents=True)
        (folder / lab.notebook_name).write_text(texts[answer], encoding="utf-8")
    return students


# --- Checks: numbers of a broken grader mean nothing ---------------------------------------


def check_grades_csv(path, students, expected=None):
    """Raise BenchmarkError unless grades.csv has one row per student, each with the grade
    the corpus expects for that student's answer; return the counts of each score."""
    expected = expected or corpus.expected_grades()
    with open(path, newline="", encoding="utf-8") as file:
        rows = {row["student_id"]: row for row in csv.DictReader(file)}
    if sorted(rows) != sorted(students):
        raise BenchmarkError(f"{path}: expected one row for each of {len(students)} students,"
                             f" found {len(rows)} rows")
    scores = {}
    for student, answer in students.items():
        row, want = rows[student], expected[answer]
        got = [row[column] for column in GRADE_COLUMNS]
        if got != [want[column] for column in GRADE_COLUMNS]:
            raise BenchmarkError(
                f"{path}: {student} got {dict(zip(GRADE_COLUMNS, got, strict=True))}"
                f" ({row['detail']}), the corpus expects"
                f" {({column: want[column] for column in GRADE_COLUMNS})}")
        scores[row["score"]] = scores.get(row["score"], 0) + 1
    return dict(sorted(scores.items()))


def saved_times(out):
    """When each student was saved, from OUT's journal, in order (datetimes)."""
    with sqlite3.connect(f"file:{Path(out) / 'journal.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT graded_at FROM students").fetchall()
    return sorted(datetime.fromisoformat(graded_at) for (graded_at,) in rows)


def steady_seconds(times):
    """Seconds per submission between the first student saved and the last, or None."""
    if len(times) < 2:
        return None
    return (times[-1] - times[0]).total_seconds() / (len(times) - 1)


def quarter_seconds(times):
    """Seconds per submission in each quarter of the batch, in the order students were
    saved (a coordinator that slows down as results pile up shows a rising list), or None
    for fewer than 8 students."""
    if len(times) < 8:
        return None
    bounds = [round(len(times) * part / 4) for part in range(5)]
    # Each quarter from the last save of the one before, so that the quarters add up.
    return [(times[end - 1] - times[max(start - 1, 0)]).total_seconds()
            / (end - max(start, 1)) for start, end in zip(bounds[:-1], bounds[1:], strict=True)]


# --- One measured run ----------------------------------------------------------------------


@dataclass
class Run:
    size: int
    run: int
    seconds: float  # wall time of the whole command
    coordinator_peak_mb: float  # VmHWM of the coordinator process
    workers_peak_mb: float  # the largest VmHWM of any single descendant
    workers_sum_peak_mb: float  # the largest sum of the descendants' RSS in one sample
    load_mean: float  # the 1-minute load average, mean of the samples
    load_max: float
    steady_per_submission: float | None  # from the journal's save times
    quarters: list | None  # s/submission in each quarter of the batch, in save order
    scores: dict  # score -> students, every one as the corpus expects
    timeline: list = field(default_factory=list)  # [seconds, coordinator RSS MB]

    @property
    def per_submission(self):
        return self.seconds / self.size


LOADED_KIB = 1024  # a Python interpreter is never smaller once loaded


def status_kib(pid, names=("VmHWM", "VmRSS")):
    """{name: KiB} from /proc/<pid>/status, {} once the process is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in names:
            values[name] = int(rest.split()[0])
    return values


class Sampler:
    """Peaks of a process and its descendants, read every SAMPLE_SECONDS."""

    def __init__(self, pid):
        self.pid = pid
        self.process = psutil.Process(pid)
        self.started = time.perf_counter()
        self.coordinator_hwm = 0  # KiB
        self.children_hwm = 0  # KiB, one process
        self.children_sum = 0  # bytes, all at once
        self.loads = []
        self.timeline = []
        self._next_point = 0.0

    def sample(self):
        own = status_kib(self.pid)
        if own.get("VmRSS", 0) < LOADED_KIB:
            # Gone, or caught while exec() swaps its memory map or ld.so maps the interpreter:
            # /proc then shows no VmRSS, or a few KiB (a 0.0 MB timeline point, seen in CI).
            # Sampling begins once the interpreter is loaded.
            return
        self.coordinator_hwm = max(self.coordinator_hwm, own.get("VmHWM", 0))
        elapsed = time.perf_counter() - self.started
        if elapsed >= self._next_point:
            self.timeline.append([round(elapsed, 1), round(own.get("VmRSS", 0) * 1024 / MB, 1)])
            self._next_point += TIMELINE_SECONDS
        total = 0
        try:
            children = self.process.children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            values = status_kib(child.pid)
            self.children_hwm = max(self.children_hwm, values.get("VmHWM", 0))
            total += values.get("VmRSS", 0) * 1024
        self.children_sum = max(self.children_sum, total)
        self.loads.append(os.getloadavg()[0])


def measure(command, log_path, limit):
    """Run `command`, sampling it until it exits; (seconds, Sampler). Its output goes to
    `log_path`; a failure or a run past `limit` seconds raises BenchmarkError."""
    with open(log_path, "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
        sampler = Sampler(process.pid)
        try:
            while process.poll() is None:
                sampler.sample()
                if time.perf_counter() - started > limit:
                    raise BenchmarkError(f"{' '.join(command)} ran past {limit} s")
                time.sleep(SAMPLE_SECONDS)
        finally:  # stopped early: let the coordinator stop its cluster, as on Ctrl-C
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        seconds = time.perf_counter() - started
    if process.returncode != 0:
        tail = Path(log_path).read_text(errors="replace").strip().splitlines()[-20:]
        raise BenchmarkError(f"{' '.join(command)} failed with status {process.returncode}:\n"
                             + "\n".join(tail))
    return seconds, sampler


def grade_class(class_dir, out, students, workers, run):
    """Grade `class_dir` into a fresh `out`, check every grade; the Run."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "grader", "autograde", str(class_dir), "--out", str(out),
               "--workers", str(workers)]
    limit = LIMIT_PER_SUBMISSION * len(students) + LIMIT_MARGIN
    log = Path(f"{out}.log")
    seconds, sampler = measure(command, log, limit)
    check_graded_everyone(log.read_text(errors="replace"), len(students))
    scores = check_grades_csv(Path(out) / "grades.csv", students)
    times = saved_times(out)
    shutil.rmtree(out)
    loads = sampler.loads or [os.getloadavg()[0]]
    return Run(size=len(students), run=run, seconds=seconds,
               coordinator_peak_mb=sampler.coordinator_hwm * 1024 / MB,
               workers_peak_mb=sampler.children_hwm * 1024 / MB,
               workers_sum_peak_mb=sampler.children_sum / MB,
               load_mean=statistics.fmean(loads), load_max=max(loads),
               steady_per_submission=steady_seconds(times),
               quarters=quarter_seconds(times), scores=scores, timeline=sampler.timeline)


def report_run(result, runs):
    steady = ("-" if result.steady_per_submission is None
              else f"{result.steady_per_submission:.2f}")
    print(f"  run {result.run}/{runs}  N={result.size:<5} {result.seconds:8.1f} s"
          f"  {result.per_submission:.2f} s/sub (steady {steady})"
          f"  coordinator peak {result.coordinator_peak_mb:.0f} MB"
          f"  workers peak {result.workers_peak_mb:.0f} MB"
          f"  load {result.load_mean:.1f}", flush=True)
    return result


# --- Statistics ----------------------------------------------------------------------------


def _median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def _median_lists(lists):
    lists = [values for values in lists if values is not None]
    return [statistics.median(column) for column in zip(*lists, strict=True)] or None


def summarize(results):
    """Per size (ascending): medians over its runs."""
    summary = {}
    for size in sorted({result.size for result in results}):
        runs = [result for result in results if result.size == size]
        summary[size] = {
            "runs": len(runs),
            "seconds": _median([r.seconds for r in runs]),
            "per_submission": _median([r.per_submission for r in runs]),
            "steady_per_submission": _median([r.steady_per_submission for r in runs]),
            "coordinator_peak_mb": _median([r.coordinator_peak_mb for r in runs]),
            "workers_peak_mb": _median([r.workers_peak_mb for r in runs]),
            "workers_sum_peak_mb": _median([r.workers_sum_peak_mb for r in runs]),
            "load_mean": _median([r.load_mean for r in runs]),
            "load_max": max(r.load_max for r in runs),
            "quarters": _median_lists([r.quarters for r in runs]),
        }
    return summary


def ratios(summary):
    """The goals' ratios: the largest size against the smallest."""
    smallest, largest = summary[min(summary)], summary[max(summary)]
    return {
        "smallest": min(summary), "largest": max(summary),
        "per_submission": largest["per_submission"] / smallest["per_submission"],
        "coordinator_peak": largest["coordinator_peak_mb"] / smallest["coordinator_peak_mb"],
        "coordinator_peak_mb_at_largest": largest["coordinator_peak_mb"],
    }


def verdict_lines(summary):
    found = ratios(summary)
    small, large = found["smallest"], found["largest"]
    time_ratio, memory_ratio = found["per_submission"], found["coordinator_peak"]
    peak = found["coordinator_peak_mb_at_largest"]
    return [
        f"seconds per submission, N={large} over N={small}: {time_ratio:.2f}x"
        f" (goal <= {TIME_GOAL:.2f}x): {verdict(time_ratio <= TIME_GOAL)}",
        f"coordinator peak memory, N={large} over N={small}: {memory_ratio:.2f}x"
        f" (goal flat, <= {MEMORY_FLAT_GOAL:.2f}x): {verdict(memory_ratio <= MEMORY_FLAT_GOAL)}",
        f"coordinator peak memory at N={large}: {peak:.0f} MB"
        f" (goal < {MEMORY_GOAL_MB} MB): {verdict(peak < MEMORY_GOAL_MB)}",
    ]


# --- Printing ------------------------------------------------------------------------------


def table_lines(summary):
    lines = [f"{'N':>5} {'runs':>4} {'wall':>9} {'s/sub':>6} {'steady':>6}"
             f" {'coord peak':>10} {'worker peak':>11} {'workers sum':>11} {'load':>5}"]
    for size, stats in summary.items():
        steady = stats["steady_per_submission"]
        lines.append(f"{size:>5} {stats['runs']:>4} {stats['seconds']:>8.1f}s"
                     f" {stats['per_submission']:>6.2f}"
                     f" {'-' if steady is None else f'{steady:.2f}':>6}"
                     f" {stats['coordinator_peak_mb']:>7.0f} MB"
                     f" {stats['workers_peak_mb']:>8.0f} MB"
                     f" {stats['workers_sum_peak_mb']:>8.0f} MB"
                     f" {stats['load_mean']:>5.1f}")
    return lines


def print_report(summary):
    print()
    print("\n".join(table_lines(summary)))
    print("(medians; wall: the whole command; s/sub: wall / N; steady: between the first and"
          " the last student saved; coord peak: the coordinator's VmHWM; worker peak: the"
          " largest single descendant's VmHWM; workers sum: the largest sum of the"
          " descendants' RSS in one sample; load: mean 1-minute load average during the run;"
          " MB = 10^6 bytes)")
    for size, stats in summary.items():
        if stats["quarters"]:
            print(f"N={size}: seconds per submission in each quarter of the batch (save"
                  f" order): {' '.join(f'{value:.2f}' for value in stats['quarters'])}")
    print()
    print("\n".join(verdict_lines(summary)))


def write_json(path, args, summary, results):
    report = {
        "sizes": args.sizes,
        "workers": args.workers,
        "runs_per_size": args.runs,
        "cpu_count": os.cpu_count(),
        "mix": list(MIX),
        "sample_seconds": SAMPLE_SECONDS,
        "goals": {"per_submission_ratio": TIME_GOAL,
                  "coordinator_peak_ratio": MEMORY_FLAT_GOAL,
                  "coordinator_peak_mb": MEMORY_GOAL_MB},
        "summary": {str(size): stats for size, stats in summary.items()},
        "ratios": ratios(summary),
        "runs": [{**asdict(result), "per_submission": result.per_submission}
                 for result in results],
    }
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


# --- Command line --------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        metavar="N", help="class sizes to grade (default 20 200 1000)")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs of each size; medians are reported (default 1)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"autograde --workers (default {DEFAULT_WORKERS})")
    parser.add_argument("--json", metavar="OUT", help="write the summary and every run here")
    args = parser.parse_args(argv)
    if any(size < 1 for size in args.sizes):
        parser.error("every size must be at least 1")
    if len(set(args.sizes)) < 2:
        parser.error("give at least two different sizes: the goals compare them")
    for name in ("runs", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    args.sizes = sorted(set(args.sizes))
    return args


def benchmark(args, scratch):
    scratch = Path(scratch)
    release_dir = release(lab=lab, out=scratch / "release").parent
    classes = {size: (scratch / f"class-{size}",
                      build_class(release_dir, scratch / f"class-{size}", size))
               for size in args.sizes}
    print(f"benchmarking on {os.cpu_count()} cores, {args.workers} workers: classes of"
          f" {', '.join(map(str, args.sizes))} submissions, {args.runs} run(s) each"
          f" (load average now {os.getloadavg()[0]:.1f})", flush=True)
    results = []
    for run in range(1, args.runs + 1):
        for size, (class_dir, students) in classes.items():
            out = scratch / f"out-{size}-run-{run}"
            results.append(report_run(grade_class(class_dir, out, students, args.workers,
                                                  run), args.runs))
    return results


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # a terminated benchmark stops its coordinator too


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        try:
            results = benchmark(args, scratch)
        except BenchmarkError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted: the coordinator was stopped, nothing measured is reported",
                  file=sys.stderr)
            return 130
    summary = summarize(results)
    print_report(summary)
    if args.json:
        write_json(args.json, args, summary, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
