"""`python -m grader`: a thin command line over the grader's plain functions."""

import argparse
import os
import sys
import tempfile
from pathlib import Path

from grader.course.course import NbgraderError
from grader.course.release import ReleaseExistsError, release
from grader.publish.results import count_statuses, mean_score
from grader.records import STATUSES

MAX_SCORE = 100


def _release(args):
    notebook = release(out=args.out, force=args.force)
    print(f"Released the student version: {notebook}")
    return 0


def _autograde(args):
    from grader import pipeline as autograde

    progress = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    run = autograde.main(submissions=args.submissions, out=args.out, workers=args.workers,
                         scheduler=args.scheduler, timeout=args.timeout,
                         cell_timeout=args.cell_timeout, memory_mb=args.memory_mb, db=args.db,
                         hidden_seed=args.hidden_seed, disk_mb=args.disk_mb,
                         sandbox=not args.no_sandbox,
                         on_progress=progress)
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for student in run.summary.missing_feedback:
        print(f"warning: no feedback could be made for {student} (see nbgrader's log in "
              f"{Path(args.out) / 'nbgrader'})", file=sys.stderr)
    print(summary(run.results, run.seconds, args.workers or os.cpu_count(), args.scheduler))
    print(f"Grades: {Path(args.out) / 'grades.csv'}; feedback: {Path(args.out) / 'feedback'}")
    if (Path(args.out) / "report.html").exists():
        print(f"Report: {Path(args.out) / 'report.html'}")
    return 0


def _report(args):
    from grader.publish.report import write_report

    print(f"Report: {write_report(out=args.out)}")
    return 0


def summary(results, seconds, workers, scheduler=None):
    counts, mean = count_statuses(results), mean_score(results)
    statuses = ", ".join(f"{status} {counts[status]}" for status in STATUSES)
    where = f"on the Dask cluster at {scheduler}" if scheduler else f"with {workers} workers"
    return (f"Graded {len(results)} submissions in {seconds:.1f} s {where}: "
            f"{statuses}; mean score {mean:.1f}/{MAX_SCORE}")


class ProgressBar:
    """One line on a terminal, redrawn as each student finishes."""

    WIDTH = 30

    def __init__(self, stream):
        self.stream = stream

    def __call__(self, done, total, result):
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} {result.student_id[:20]}: "
                          f"{result.status}\x1b[K")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def _validate(args):
    from grader import validate
    from grader.course.course import copy_support_files
    from grader.intake.submissions import read_submitted_notebook

    notebook, problem = read_submitted_notebook(Path(args.notebook))
    if problem:
        print(f"{args.notebook}: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="grader-validate-") as support:
        copy_support_files(support)
        checks, notes = validate.validate(notebook, support_dir=support)
    print(validate.report(checks, notes))
    return 0 if all(check.passed for check in checks) else 1


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    release_parser = commands.add_parser(
        "release", help="write the student version of the lab (solutions and hidden tests removed)")
    release_parser.add_argument("--out", required=True, help="folder to write it to")
    release_parser.add_argument("--force", action="store_true",
                                help="replace an existing notebook in --out")
    release_parser.set_defaults(run=_release)

    grade_parser = commands.add_parser(
        "autograde", help="grade a folder (or .zip) of student submissions")
    grade_parser.add_argument("submissions", help="one subfolder per student, nbgrader's "
                              "submitted/<student>/C2_W2/ layout, or a .zip of either")
    grade_parser.add_argument("--out", required=True, help="folder for grades, feedback, "
                              "gradebook")
    where = grade_parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive, default=None,
                       help="worker processes started on this machine, one submission each "
                       "at a time (default: the number of cores)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="grade on the running Dask cluster whose scheduler is at ADDRESS "
                       "(e.g. tcp://host:8786) instead of on this machine")
    grade_parser.add_argument("--timeout", type=_positive, default=600,
                              help="seconds one submission may take (default 600)")
    grade_parser.add_argument("--cell-timeout", type=_positive, default=60,
                              help="seconds one cell may take before it is interrupted "
                              "(default 60)")
    grade_parser.add_argument("--memory-mb", type=_positive, default=4096,
                              help="memory one submission's kernel may use, with all it "
                              "starts (default 4096)")
    grade_parser.add_argument("--disk-mb", type=_positive, default=512,
                              help="size of a kernel's private lab folder and of its /tmp, "
                              "each (default 512)")
    grade_parser.add_argument("--no-sandbox", action="store_true",
                              help="run kernels unconfined, e.g. to debug a submission (a "
                              "warning says what is then not enforced)")
    grade_parser.add_argument("--db", default=None, help="gradebook SQLAlchemy URL, e.g. "
                              "postgresql://user@host:5432/gradebook (default: sqlite in OUT)")
    grade_parser.add_argument("--hidden-seed", type=int, default=None,
                              help="seed of the hidden tests' inputs (default: a new secret "
                              "one per batch; give one only to repeat a batch exactly)")
    grade_parser.set_defaults(run=_autograde)

    report_parser = commands.add_parser(
        "report", help="build OUT/report.html again from a grading output, without grading")
    report_parser.add_argument("out", help="the folder autograde wrote (--out)")
    report_parser.set_defaults(run=_report)

    validate_parser = commands.add_parser(
        "validate", help="run a notebook as the grader would; report the public tests")
    validate_parser.add_argument("notebook")
    validate_parser.set_defaults(run=_validate)
    return parser


def _positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def main(argv=None):
    args = build_parser().parse_args(argv)
    from grader.intake.submissions import IntakeError
    from grader.publish.report import ReportError
    from grader.publish.results import FeedbackLeakError, ResultsError
    from grader.run.cluster import ClusterError

    try:
        return args.run(args)
    except (ReleaseExistsError, NbgraderError, IntakeError, ResultsError, FeedbackLeakError,
            ReportError, ClusterError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
