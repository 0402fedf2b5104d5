"""Benchmark the grader's throughput against plain `nbgrader autograde` on one class.

Usage, from the repository root:

    .venv/bin/python bench/bench_grading.py [--copies 20] [--runs 3] [--plain-copies K]
                                            [--plain-runs 1] [--json OUT]

A class of N identical submissions is built: the released lab with the reference answers
(the corpus's STABLE softmax and MODEL) typed in, one folder per student, student-01 to
student-N, each holding C2_W2_Assignment.ipynb. The class is then graded:

* by ours: `python -m grader autograde CLASS --out OUT --workers W` as a subprocess, for
  W = 1 and W = 2, then W = 2 with `--no-sandbox` (what the sandbox costs), then with
  `--scheduler ADDRESS` on a Dask cluster of 2 workers on loopback
  (tools/loopback_cluster.py), in turn (1, 2, 2 unconfined, Dask, 1, ...), `--runs` times
  each, into a fresh OUT every time: OUT keeps a journal, and a batch on an OUT that holds
  results keeps the unchanged ones instead of grading them. The wall time of the whole
  command is what an instructor waits for: intake, grading, gradebook and feedback. The
  Dask cluster is started afresh before each of its runs and its start is not timed: an
  instructor starts a cluster once, not per batch (its workers' warm kernels start within
  the timed run, as local workers' do); and last on a cluster of 2 that stays up for every
  run, warmed by one untimed batch ("warm": an instructor's cluster after its first batch,
  its kernel templates imported); and last with 2 local workers whose kernel templates the
  batch before kept (`--keep-templates 600`, "kept": the next batch on this machine, a late
  student alone; its templates in a cache of the benchmark's own, kept first by one
  untimed batch, ended at the end);
* by plain nbgrader: `nbgrader autograde C2_W2 --force` in a course made from the lab, the
  same notebooks in submitted/<student>/C2_W2/. It runs every cell of every notebook,
  40 epochs of training included, one student after another, so `--plain-copies K` (default
  all N) times it on the first K students only; per-submission times are compared.

Each run is checked before its time counts: ours must say it graded all N submissions
(none kept from an earlier batch) and give every student 100/100, plain nbgrader must
have graded K submissions at full marks; otherwise the benchmark stops with exit status 1.
Absolute times on a shared machine are noisy, so medians (with min and max) are reported,
and the Dask cluster's median against the 2 local workers' (the same number of workers,
the same task graph: the cost of the scheduler and the network path). For ours, each run
also gives the seconds from the command's start to its first result (OUT/profile.json)."""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_PARENT = REPO_ROOT / "tests" / "grader"
# Run as `python bench/bench_grading.py`, only bench/ is on sys.path: the grader lives at the
# root and the corpus of submissions (the reference answers) in tests/grader.
for _path in (REPO_ROOT, CORPUS_PARENT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import corpus  # noqa: E402

from grader.course.course import NbgraderError, create_course, run_nbgrader  # noqa: E402
from grader.course.release import release  # noqa: E402
from grader.labs.c2_w2 import LAB as lab  # noqa: E402
from grader.run.kept_templates import end_all  # noqa: E402
from tools.loopback_cluster import ClusterStartError, loopback_cluster  # noqa: E402

OURS_1 = "ours, 1 worker"
OURS_2 = "ours, 2 workers"
OURS_2_UNCONFINED = "ours, 2, no sandbox"
DASK_2 = "ours, 2 Dask workers"
DASK_2_WARM = "ours, 2 Dask, warm"
KEPT_2 = "ours, 2, kept"
PLAIN = "plain nbgrader"
SETUPS = (OURS_1, OURS_2, OURS_2_UNCONFINED, DASK_2, DASK_2_WARM, KEPT_2, PLAIN)
WORKERS = {OURS_1: 1, OURS_2: 2, OURS_2_UNCONFINED: 2, DASK_2: 2, DASK_2_WARM: 2, KEPT_2: 2}
KEEP_SECONDS = 600  # KEPT_2's --keep-templates
ON_DASK = {DASK_2, DASK_2_WARM}  # graded through --scheduler, on a Dask cluster on loopback
UNCONFINED = {OURS_2_UNCONFINED}  # graded with --no-sandbox: the sandbox's cost
# Setups --skip may leave out; 2 workers and plain nbgrader are the goals' and always run.
SKIPPABLE = {"1-worker": OURS_1, "no-sandbox": OURS_2_UNCONFINED, "dask": DASK_2,
             "warm": DASK_2_WARM, "kept": KEPT_2}

SECONDS_PER_SUBMISSION_GOAL = 3.0  # ours with 2 workers
THROUGHPUT_GOAL = 8.0  # ours with 2 workers against plain nbgrader
CLUSTER_OVERHEAD_GOAL = 0.10  # 2 Dask workers' wall time over 2 local workers', minus 1
WARM_THROUGHPUT_GOAL = 20.0  # issue 22: a batch of 12 on 2 workers against plain nbgrader
FIRST_RESULT_GOAL = 5.0  # issue 22: seconds from the command's start to its first result
FULL_MARKS = 100.0
GRADED = "graded"

# Limits on each timed command, generous: a hung command must fail, not stall the bench.
OURS_LIMIT_PER_SUBMISSION = 60
PLAIN_LIMIT_PER_SUBMISSION = 300
LIMIT_MARGIN = 300


class BenchmarkError(RuntimeError):
    """A run whose numbers mean nothing: the grading it measured went wrong (also
    bench_scale's)."""


# --- The class -----------------------------------------------------------------------------


def student_ids(count):
    return [f"student-{number:02d}" for number in range(1, count + 1)]


def reference_submission(release_dir):
    """The released notebook with the reference answers typed in, as a student would."""
    released = nbformat.read(str(Path(release_dir) / lab.notebook_name), as_version=4)
    return corpus.answered(released, corpus.STABLE, corpus.MODEL)


def build_class(release_dir, class_dir, copies):
    """`copies` student folders in `class_dir`, each holding the reference submission."""
    notebook = reference_submission(release_dir)
    class_dir = Path(class_dir)
    for student in student_ids(copies):
        (class_dir / student).mkdir(parents=True)
        nbformat.write(notebook, str(class_dir / student / lab.notebook_name))
    return class_dir


def submitted_notebook(course_root, student):
    return Path(course_root) / "submitted" / student / lab.assignment / lab.notebook_name


def autograded_notebook(course_root, student):
    return Path(course_root) / "autograded" / student / lab.assignment / lab.notebook_name


def place_for_nbgrader(class_dir, course_root, students):
    """Copy each student's notebook into nbgrader's submitted/<student>/C2_W2/ layout."""
    for student in students:
        destination = submitted_notebook(course_root, student)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(class_dir) / student / lab.notebook_name, destination)


# --- Checks: a benchmark of a broken grader means nothing -------------------------------------


def check_grades_csv(path, students):
    """Raise BenchmarkError unless grades.csv has one row per student, each 100/100."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    found = sorted(row["student_id"] for row in rows)
    if found != sorted(students):
        raise BenchmarkError(f"{path}: expected one row for each of {len(students)} students, "
                             f"found {len(rows)} rows")
    for row in rows:
        if not _full_marks(row):
            raise BenchmarkError(
                f"{path}: {row['student_id']} got {row['score']}/{row['max_score']} "
                f"({row['status']}: {row['detail']}); every copy of the reference solution "
                "must get 100/100, or the timing measures a broken grader")


def _full_marks(row):
    return (row["status"] == GRADED and float(row["score"]) == FULL_MARKS
            and float(row["max_score"]) == FULL_MARKS)


def check_plain_graded(course_root, db_url, students):
    """Raise BenchmarkError unless nbgrader graded every student's notebook at full marks."""
    missing = [s for s in students if not autograded_notebook(course_root, s).exists()]
    if missing:
        raise BenchmarkError(f"plain nbgrader graded {len(students) - len(missing)} of "
                             f"{len(students)} submissions; none for {', '.join(missing)}")
    problems = plain_score_problems(read_plain_scores(db_url), students)
    if problems:
        raise BenchmarkError("plain nbgrader did not give the reference solution full marks: "
                             + "; ".join(problems))


def read_plain_scores(db_url):
    """{student: (score, max_score)} for the lab, from nbgrader's gradebook."""
    with warnings.catch_warnings(), Gradebook(db_url) as gradebook:
        warnings.simplefilter("ignore", category=SAWarning)
        return {submission.student.id: (submission.score, submission.max_score)
                for submission in gradebook.assignment_submissions(lab.assignment)}


def plain_score_problems(scores, students):
    """One message for each student without a full-marks submission in `scores`."""
    problems = []
    for student in students:
        score, max_score = scores.get(student, (None, None))
        if score is None:
            problems.append(f"{student} has no submission in the gradebook")
        elif not score == max_score == FULL_MARKS:
            problems.append(f"{student} got {score:g}/{max_score:g}")
    return problems


# --- Timed runs ------------------------------------------------------------------------------


@dataclass
class Timing:
    setup: str  # one of SETUPS
    run: int
    seconds: float  # wall time of the whole batch
    submissions: int
    first_result: float | None = None  # seconds from the command's start (ours only)


def check_graded_everyone(stdout, submissions):
    """Raise BenchmarkError unless the autograde command says it graded every submission:
    an OUT that held results would keep them (a resumed batch grades only what changed),
    and the timing would measure no grading."""
    said = f"Graded {submissions} submission{'' if submissions == 1 else 's'} in "
    if said not in stdout or " unchanged results" in stdout:
        summary = [line for line in stdout.splitlines() if line.startswith("Graded ")]
        raise BenchmarkError(f"autograde did not grade all {submissions} submissions afresh:"
                             f" {summary[0] if summary else stdout.strip()[-300:]!r}")


def grade_with_ours(class_dir, out, where, submissions, env=None):
    """Run our autograde command on `class_dir` with the options `where` (--workers W or
    --scheduler ADDRESS) into a fresh `out`, with `env` (default: ours); return its wall
    time in seconds and when its first result came (first_result_seconds)."""
    shutil.rmtree(out, ignore_errors=True)  # a batch resumes what OUT holds
    command = [sys.executable, "-m", "grader", "autograde", str(class_dir), "--out", str(out),
               *where]
    limit = OURS_LIMIT_PER_SUBMISSION * submissions + LIMIT_MARGIN
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=limit, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        log = (result.stdout + result.stderr).strip().splitlines()
        raise BenchmarkError(f"{' '.join(command)} failed with status {result.returncode}:\n"
                             + "\n".join(log[-20:]))
    check_graded_everyone(result.stdout, submissions)
    return seconds, first_result_seconds(out)


def first_result_seconds(out):
    """Seconds from the autograde process's start to its first student's result, from
    OUT/profile.json (grader.publish.batch_profile); None without one."""
    try:
        profile = json.loads((Path(out) / "profile.json").read_text())
        return profile["process_started_seconds"] + profile["result_seconds"][0]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def run_ours(class_dir, scratch, students, runs, skip=()):
    """Time ours with 1 and 2 workers and 2 Dask workers in turn (1, 2, Dask, 1, 2, Dask,
    ...), so that slow drifts in the machine's load hit all alike; each run into a fresh
    OUT, checked. The setups in `skip` are left out."""
    timings = []
    with warm_cluster(Path(scratch), class_dir, students, DASK_2_WARM not in skip) as warm, \
            kept_templates(Path(scratch), class_dir, students, KEPT_2 not in skip) as kept:
        for run in range(1, runs + 1):
            for setup, workers in WORKERS.items():
                if setup in skip:
                    continue
                out = Path(scratch) / f"{setup.replace(', ', '-').replace(' ', '-')}-run-{run}"
                with grading_place(setup, workers, Path(scratch) / f"dask-run-{run}",
                                   warm) as where:
                    seconds, first = grade_with_ours(class_dir, out, where, len(students),
                                                     kept if setup == KEPT_2 else None)
                check_grades_csv(out / "grades.csv", students)
                shutil.rmtree(out)
                timings.append(report_run(Timing(setup, run, seconds, len(students), first),
                                          runs))
    return timings


@contextmanager
def warm_cluster(scratch, class_dir, students, wanted):
    """The address of a Dask cluster of 2 workers on loopback that stays up for every run
    (None unless `wanted`), warmed by one untimed batch of the class: as an instructor's
    cluster is after its first batch, its workers' kernel templates already imported."""
    if not wanted:
        yield None
        return
    with loopback_cluster(scratch / "dask-warm", workers=WORKERS[DASK_2_WARM]) as address:
        out = scratch / "warm-up"
        grade_with_ours(class_dir, out, ["--scheduler", address], len(students))
        shutil.rmtree(out)
        yield address


@contextmanager
def kept_templates(scratch, class_dir, students, wanted):
    """The environment of KEPT_2's batches (None unless `wanted`): a grader cache of the
    benchmark's own, whose kept templates one untimed batch starts; they are ended (their
    folder removed) at the end."""
    if not wanted:
        yield None
        return
    cache = scratch / "kept-cache"
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache)}
    try:
        out = scratch / "kept-warm-up"
        grade_with_ours(class_dir, out, keep_options(), len(students), env)
        shutil.rmtree(out, ignore_errors=True)
        yield env
    finally:
        end_all(cache)


def keep_options():
    return ["--workers", str(WORKERS[KEPT_2]), "--keep-templates", str(KEEP_SECONDS)]


@contextmanager
def grading_place(setup, workers, folder, warm=None):
    """The autograde options that grade on `setup`'s workers: --workers W here, or
    --scheduler ADDRESS of a Dask cluster started in `folder` for the run (untimed), or of
    the `warm` one (warm_cluster's address)."""
    if setup in UNCONFINED:
        yield ["--workers", str(workers), "--no-sandbox"]
        return
    if setup == KEPT_2:
        yield keep_options()
        return
    if setup not in ON_DASK:
        yield ["--workers", str(workers)]
        return
    if setup == DASK_2_WARM:
        yield ["--scheduler", warm]
        return
    with loopback_cluster(folder, workers=workers) as address:
        yield ["--scheduler", address]


def prepare_plain_course(root, class_dir, students):
    """An nbgrader course made from the lab, assignment generated, submissions in place."""
    course = create_course(root, lab)
    run_nbgrader(course, "generate_assignment", lab.assignment, "--force")
    place_for_nbgrader(class_dir, course.root, students)
    return course


def run_plain(course, students, runs):
    """Time `nbgrader autograde` on the course `runs` times, each checked."""
    db_url = f"sqlite:///{course.root / 'gradebook.db'}"  # create_course's default
    limit = PLAIN_LIMIT_PER_SUBMISSION * len(students) + LIMIT_MARGIN
    timings = []
    for run in range(1, runs + 1):
        shutil.rmtree(course.root / "autograded", ignore_errors=True)
        started = time.perf_counter()
        run_nbgrader(course, "autograde", lab.assignment, "--force", timeout=limit)
        seconds = time.perf_counter() - started
        check_plain_graded(course.root, db_url, students)
        timings.append(report_run(Timing(PLAIN, run, seconds, len(students)), runs))
    return timings


def report_run(timing, runs):
    print(f"  run {timing.run}/{runs}  {timing.setup:<20} {timing.seconds:7.2f} s"
          f"  ({timing.seconds / timing.submissions:.2f} s per submission)", flush=True)
    return timing


# --- Statistics ------------------------------------------------------------------------------


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(timings):
    """Per setup: spread of batch seconds, seconds per submission (median / count), and
    throughput against plain nbgrader (submissions per second over plain's)."""
    summary = {}
    for setup in SETUPS:
        runs = [timing for timing in timings if timing.setup == setup]
        if runs:
            stats = spread([timing.seconds for timing in runs])
            firsts = [timing.first_result for timing in runs if timing.first_result is not None]
            summary[setup] = {**stats, "runs": len(runs), "submissions": runs[0].submissions,
                              "per_submission": stats["median"] / runs[0].submissions,
                              "first_result": statistics.median(firsts) if firsts else None}
    plain = summary[PLAIN]["per_submission"]
    for stats in summary.values():
        stats["throughput_vs_plain"] = plain / stats["per_submission"]
    if DASK_2 in summary:
        summary[DASK_2]["overhead_vs_local"] = (summary[DASK_2]["median"]
                                                / summary[OURS_2]["median"] - 1)
    if OURS_2_UNCONFINED in summary:
        summary[OURS_2]["sandbox_cost"] = (summary[OURS_2]["median"]
                                           / summary[OURS_2_UNCONFINED]["median"] - 1)
    return summary


def verdict_lines(summary, speed_goal=SECONDS_PER_SUBMISSION_GOAL,
                  throughput_goal=THROUGHPUT_GOAL, overhead_goal=CLUSTER_OVERHEAD_GOAL):
    ours = summary[OURS_2]
    per_submission, ratio = ours["per_submission"], ours["throughput_vs_plain"]
    lines = [
        f"ours with 2 workers: {per_submission:.2f} s per submission "
        f"(goal <= {speed_goal:g} s): {verdict(per_submission <= speed_goal)}",
        f"throughput vs plain nbgrader: {ratio:.1f}x with 2 workers "
        f"(goal >= {throughput_goal:g}x): {verdict(ratio >= throughput_goal)}",
    ]
    if "sandbox_cost" in ours:
        lines.append(f"the sandbox's cost with 2 workers: {ours['sandbox_cost']:+.1%} wall "
                     "time against --no-sandbox (no goal: measured)")
    if DASK_2 in summary:
        overhead = summary[DASK_2]["overhead_vs_local"]
        lines.append(f"2 Dask workers vs 2 local workers: {overhead:+.1%} wall time "
                     f"(goal <= +{overhead_goal:.0%}): {verdict(overhead <= overhead_goal)}")
    return lines


def start_up_lines(summary, throughput_goal=WARM_THROUGHPUT_GOAL,
                   first_goal=FIRST_RESULT_GOAL):
    """Issue 22's goals: the first result within `first_goal` seconds of the command's
    start, and `throughput_goal` times plain nbgrader's throughput, for a fresh local
    cluster (2 workers) and for a warm one."""
    lines = []
    for setup in (OURS_2, DASK_2_WARM, KEPT_2):
        stats = summary.get(setup)
        if stats is None:
            continue
        first, ratio = stats["first_result"], stats["throughput_vs_plain"]
        first_text = "unknown" if first is None else f"{first:.1f} s"
        lines.append(f"{setup}: first result after {first_text} (goal <= {first_goal:g} s): "
                     f"{verdict(first is not None and first <= first_goal)}; {ratio:.1f}x "
                     f"plain nbgrader (goal >= {throughput_goal:g}x): "
                     f"{verdict(ratio >= throughput_goal)}")
    return lines


def verdict(met):
    return "met" if met else "NOT met"


# --- Printing --------------------------------------------------------------------------------


def table_lines(summary):
    lines = [f"{'setup':<20} {'runs':>4} {'subs':>4} {'median':>8} {'min':>8} {'max':>8}"
             f" {'s/sub':>6} {'vs plain':>8} {'first':>7}"]
    for setup, stats in summary.items():
        first = stats.get("first_result")
        lines.append(f"{setup:<20} {stats['runs']:>4} {stats['submissions']:>4}"
                     f" {stats['median']:>7.2f}s {stats['min']:>7.2f}s {stats['max']:>7.2f}s"
                     f" {stats['per_submission']:>6.2f} {stats['throughput_vs_plain']:>7.1f}x"
                     f" {'' if first is None else f'{first:.1f}s':>7}")
    return lines


def print_report(summary):
    print()
    print("\n".join(table_lines(summary)))
    print("(wall seconds per batch; s/sub = median / submissions; vs plain = submissions per"
          " second over plain nbgrader's; first = median seconds from the command's start to"
          " its first result)")
    print()
    print("\n".join(verdict_lines(summary) + start_up_lines(summary)))


def write_json(path, args, summary, timings):
    report = {
        "copies": args.copies,
        "plain_copies": args.plain_copies,
        "cpu_count": os.cpu_count(),
        "goals": {"seconds_per_submission": SECONDS_PER_SUBMISSION_GOAL,
                  "throughput_vs_plain": THROUGHPUT_GOAL,
                  "cluster_overhead": CLUSTER_OVERHEAD_GOAL,
                  "warm_throughput_vs_plain": WARM_THROUGHPUT_GOAL,
                  "first_result_seconds": FIRST_RESULT_GOAL},
        "summary": summary,
        "runs": [asdict(timing) for timing in timings],
    }
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


# --- Command line ----------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=20,
                        help="submissions in the class (default 20)")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each of ours' setups (default 3)")
    parser.add_argument("--plain-copies", type=int, default=None, metavar="K",
                        help="grade only the first K students with plain nbgrader "
                        "(default: all)")
    parser.add_argument("--plain-runs", type=int, default=1,
                        help="runs of plain nbgrader (default 1)")
    parser.add_argument("--json", metavar="OUT", help="write every raw timing to this file")
    parser.add_argument("--skip", nargs="+", default=[], choices=sorted(SKIPPABLE),
                        help="leave these setups out (2 workers and plain nbgrader always run)")
    args = parser.parse_args(argv)
    args.skip = {SKIPPABLE[name] for name in args.skip}
    if args.plain_copies is None:
        args.plain_copies = args.copies
    for name in ("copies", "runs", "plain_copies", "plain_runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.plain_copies > args.copies:
        parser.error("--plain-copies cannot exceed --copies")
    return args


def benchmark(args, scratch):
    scratch = Path(scratch)
    students = student_ids(args.copies)
    release_dir = release(lab=lab, out=scratch / "release").parent
    class_dir = build_class(release_dir, scratch / "class", args.copies)
    plain_students = students[:args.plain_copies]
    course = prepare_plain_course(scratch / "plain-course", class_dir, plain_students)
    print(f"benchmarking on {os.cpu_count()} cores: ours on {args.copies} submissions"
          f" ({args.runs} runs per setup, alternating), plain nbgrader on"
          f" {args.plain_copies} ({args.plain_runs} run(s))", flush=True)
    timings = run_ours(class_dir, scratch, students, args.runs, args.skip)
    timings += run_plain(course, plain_students, args.plain_runs)
    return timings


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as scratch:
        try:
            timings = benchmark(args, scratch)
        except (BenchmarkError, NbgraderError, ClusterStartError,
                subprocess.TimeoutExpired) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    summary = summarize(timings)
    print_report(summary)
    if args.json:
        write_json(args.json, args, summary, timings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
