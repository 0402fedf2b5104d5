"""`python -m grader` (or `grader`): a thin command line over the grader's plain functions.

    release    write a lab's student version
    autograde  grade a class into OUT (resumes; adds to what OUT holds)
    publish    write what the journal holds into the gradebook, grades.csv and the report
    report     build OUT/report.html again
    export     the grades for Canvas, Moodle or a plain CSV (after the late penalty)
    feedback   one feedback page per student, named by student id, for an LMS upload
    validate   run a notebook as the grader would, with the public tests only

`--version` says the package's version, its grading ABI and the lab's grading version.
An error that is ours to explain (grader.errors.GraderError) is one line and exit status 1.
"""

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import grader
from grader import logs, process_end
from grader.errors import GraderError
from grader.plugin import DEFAULT_LAB, load_lab
from grader.records import STATUSES
from grader.settings import Limits

log = logging.getLogger("grader.cli")
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def _release(args, lab):
    from grader.course.release import release

    notebook = release(lab=lab, out=args.out, force=args.force)
    print(f"Released the student version: {notebook}")
    return 0


def _autograde(args, lab):
    template = _template_soon(args, lab)  # before the pipeline's imports: a second sooner
    from grader.pipeline import RUNNERS, autograde

    limits = Limits(**{name: getattr(args, name) for name, _, _ in Limits.options()},
                    confine=not args.no_sandbox)
    progress = _progress(sys.stderr, args.verbosity)
    if progress is not None:
        print(f"Grading {args.submissions} into {args.out} ...", file=sys.stderr, flush=True)
    try:
        batch = autograde(submissions=args.submissions, out=args.out, lab=lab, limits=limits,
                          workers=args.workers, scheduler=args.scheduler, db=args.db,
                          secret_key=args.secret_key, regrade=args.regrade,
                          on_progress=progress, runner=_runner(RUNNERS[args.runner], args),
                          late=_late_work(args), template=template)
    finally:
        if template is not None:  # ended by the batch, unless it failed before grading
            template.end()
    for warning in batch.warnings:
        log.warning(warning)
    print(summary(batch, lab, args.scheduler))
    _print_outputs(Path(args.out))
    return _gradebook_exit(batch.gradebook_problem, batch.records, args.out)


def _template_soon(args, lab):
    """The kernel template of a batch of this machine's sandboxed workers, and the server
    its workers are forked from (grader.run.worker_server), started now: their imports go
    on beside this process's. None for any other batch's template (a resumed batch with
    nothing new to grade ends it unused)."""
    if args.scheduler or not Path(args.submissions).is_dir():
        return None
    from grader.run import kept_templates, worker_server

    worker_server.start_soon()
    return (kept_templates.BatchTemplate(lab.preload_modules, args.keep_templates)
            if args.runner == "sandbox" else None)


def _publish(args, lab):
    from grader.pipeline import publish_again

    records, problem = publish_again(out=args.out, lab=lab, db=args.db, late=_late_work(args))
    print(f"Published {len(records)} students from the journal in {args.out}.")
    _print_outputs(Path(args.out))
    return _gradebook_exit(problem, records, args.out)


def _late_work(args):
    from grader.pipeline import LateWork

    return LateWork(due=args.due, penalty=args.late_penalty, extensions=args.extensions,
                    timestamps_csv=args.timestamps)


def _export(args, lab):
    from grader.publish.handback import export_grades

    records, policy = _journal_records(args.out, lab)
    path = export_grades(args.out, records, lab, policy, args.format, args.to)
    print(f"Grades for {args.format}: {path}")
    return 0


def _feedback(args, lab):
    from grader.publish.handback import feedback_pages

    records, _ = _journal_records(args.out, lab)
    pages = feedback_pages(args.out, records, lab, args.to)
    print(f"{len(pages)} feedback pages in {args.to}, one per student: <student_id>.html")
    return 0


def _journal_records(out, lab):
    from grader.lateness import LatePolicy
    from grader.pipeline import LATE_POLICY
    from grader.publish.journal import Journal, JournalError

    if not Journal.exists(out):
        raise JournalError(f"no journal in {out}: grade the class there first")
    with Journal(out) as journal:
        journal.check_lab(lab)
        return journal.records(), LatePolicy.from_json(journal.fact(LATE_POLICY))


def _gradebook_exit(problem, records, out):
    if problem is None:
        return 0
    pending = sum(not record.in_gradebook for record in records)
    log.error("%d row(s) did not reach the gradebook (%s); grades.csv, the feedback and the"
              " journal are complete. When the database is back: python -m grader publish %s",
              pending, problem, out)
    return 1


def _print_outputs(out):
    print(f"Grades: {out / 'grades.csv'}; feedback: {out / 'feedback'}")
    if (out / "report.html").exists():
        print(f"Report: {out / 'report.html'}")


def _report(args, lab):
    from grader.publish.report import write_report

    print(f"Report: {write_report(out=args.out, lab=lab)}")
    return 0


def _validate(args, lab):
    from grader import validate

    try:
        checks, notes = validate.validate_file(Path(args.notebook), lab=lab,
                                               keep_seconds=args.keep_template)
    except validate.NotANotebook as problem:
        print(f"{args.notebook}: {problem}", file=sys.stderr)
        return 2
    print(validate.report(checks, notes))
    return 0 if all(check.passed for check in checks) else 1


def summary(batch, lab, scheduler=None):
    """Two lines: what this batch did, and what OUT holds now."""
    workers = plural(batch.workers, "worker")
    where = (f" on the Dask cluster at {scheduler} ({workers})" if scheduler
             else f" with {workers}" if batch.workers else "")
    graded = set(batch.graded)
    this_batch = Counter(record.status for record in batch.records
                         if record.student_id in graded)
    everyone = Counter(record.status for record in batch.records)
    mean = (sum(record.score for record in batch.records) / len(batch.records)
            if batch.records else 0.0)
    kept = (f"; kept {plural(len(batch.kept), 'unchanged result')}" if batch.kept else "")
    return (f"Graded {plural(len(graded), 'submission')} in {batch.seconds:.1f} s{where}: "
            f"{_counts(this_batch)}{kept}.\n"
            f"OUT holds {plural(len(batch.records), 'student')}: {_counts(everyone)}; mean "
            f"score {mean:.1f}/{lab.max_score:g}{other_version_line(batch)}")


def plural(count, noun):
    """'1 submission', '2 submissions'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def other_version_line(batch):
    """One line (with its newline) when kept results were made by another grading version."""
    count = len(batch.other_version)
    if not count:
        return ""
    return (f"\n{plural(count, 'kept result')} {'were' if count > 1 else 'was'} made by another"
            " grading version (the lab's rules or tests, or the engine's grading ABI, changed"
            " since); --regrade grades them again")


def _counts(counter):
    return ", ".join(f"{status} {counter[status]}" for status in STATUSES)


def _progress(stream, verbosity):
    """A bar on a terminal; lines in a log (a job, nohup, CI); nothing with -q."""
    if verbosity < 0:
        return None
    return ProgressBar(stream) if stream.isatty() else ProgressLines(stream)


class ProgressLines:
    """A line for a log each time a student is saved, at most one every `seconds` (and
    the last one always), so that a job's log shows the batch moving."""

    def __init__(self, stream, seconds=5.0, clock=time.monotonic):
        self.stream, self.seconds, self.clock = stream, seconds, clock
        self.last = None

    def __call__(self, done, total, record):
        now = self.clock()
        if done < total and self.last is not None and now - self.last < self.seconds:
            return
        self.last = now
        self.stream.write(f"Graded {done} of {total} ({record.student_id[:40]}: "
                          f"{record.status})\n")
        self.stream.flush()


class ProgressBar:
    """One line on a terminal, redrawn as each student finishes."""

    WIDTH = 30

    def __init__(self, stream):
        self.stream = stream

    def __call__(self, done, total, record):
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} {record.student_id[:20]}: "
                          f"{record.status}\x1b[K")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def _interrupted(interrupt, args):
    """The one line Ctrl-C leaves: what is saved, and how to go on."""
    from grader.pipeline import BatchInterrupted

    if not isinstance(interrupt, BatchInterrupted):
        return "Interrupted."
    return (f"Interrupted: {plural(interrupt.saved, 'student')} of {interrupt.total} saved in"
            f" {args.out}; the same command resumes: python -m grader autograde"
            f" {args.submissions} --out {args.out}")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab", default=DEFAULT_LAB, help="the lab plug-in: a module name or"
                        f" a file (default {DEFAULT_LAB})")
    parser.add_argument("--version", action=_PrintVersion, help="print the grader's version,"
                        " its grading ABI and the lab's grading version, and exit")
    _loudness_options(parser, default=0)
    commands = _Commands(parser.add_subparsers(dest="command", required=True))
    _release_parser(commands)
    _autograde_parser(commands)
    publish = commands.add_parser("publish", help="write the journal's results into the"
                                  " gradebook, grades.csv and the report (after a database"
                                  " outage), without grading")
    publish.add_argument("out", help="the folder autograde wrote (--out)")
    publish.add_argument("--db", default=None, help="the gradebook URL (default: the one"
                         " the batch used)")
    _late_options(publish)
    publish.set_defaults(run=_publish)
    _handback_parsers(commands)
    report = commands.add_parser("report", help="build OUT/report.html again, without grading")
    report.add_argument("out", help="the folder autograde wrote (--out)")
    report.set_defaults(run=_report)
    validate = commands.add_parser(
        "validate", help="run a notebook as the grader would; report the public tests")
    validate.add_argument("notebook", help="the student's .ipynb file")
    validate.add_argument("--keep-template", type=_seconds, default=600, metavar="SECONDS",
                          help="keep the kernel template (TensorFlow imported) this long"
                          " after the check, for the next one; 0: end it with the check"
                          " (default 600)")
    validate.set_defaults(run=_validate)
    return parser


def _loudness_options(parser, default):
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", dest="verbosity", action="count", default=default,
                          help="say more (tracebacks of the grader's own failures; -vv debug)")
    loudness.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                          default=default, help="errors only")


class _Commands:
    """The subcommands, each also taking -v and -q after its name (where they are typed
    last); SUPPRESS keeps the value given before the name when none is given after."""

    def __init__(self, subparsers):
        self.subparsers = subparsers

    def add_parser(self, name, **options):
        command = self.subparsers.add_parser(name, **options)
        _loudness_options(command, default=argparse.SUPPRESS)
        return command


def _release_parser(commands):
    release = commands.add_parser(
        "release", help="write the student version of the lab (solutions and hidden tests removed)")
    release.add_argument("--out", required=True, help="folder to write it to")
    release.add_argument("--force", action="store_true",
                         help="replace an existing notebook in --out")
    release.set_defaults(run=_release)


def _runner(kind, args):
    runner = kind()
    if args.keep_templates:
        runner.keep_templates = args.keep_templates  # the sandbox's: the others have none
    return runner


def _autograde_parser(commands):
    grade = commands.add_parser("autograde", help="grade a folder (or .zip) of student "
                                "submissions into OUT; again on the same OUT, it resumes")
    grade.add_argument("submissions", help="one subfolder per student, nbgrader's "
                       "submitted/<student>/<assignment>/ layout, or a .zip of either")
    grade.add_argument("--out", required=True, help="folder for grades, feedback, gradebook")
    where = grade.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive, default=None,
                       help="worker processes started on this machine, one submission each "
                       "at a time (default: the number of cores)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="grade on the running Dask cluster whose scheduler is at ADDRESS "
                       "(e.g. tcp://host:8786) instead of on this machine")
    for name, default, help_text in Limits.options():
        grade.add_argument(f"--{name.replace('_', '-')}", type=_positive, default=default,
                           help=f"{help_text} (default {default})")
    grade.add_argument("--keep-templates", type=_seconds, default=0, metavar="SECONDS",
                       help="keep the workers' kernel template (TensorFlow imported) this"
                       " long after the batch, for the next batch on this machine, e.g. a"
                       " late student graded alone (default 0: it ends with the batch)")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="run kernels unconfined, e.g. to debug a submission (a "
                       "warning says what is then not enforced)")
    grade.add_argument("--runner", choices=("sandbox", "subprocess"), default="sandbox",
                       help="what runs each notebook: `sandbox`, a confined warm kernel "
                       "(default); `subprocess`, a fresh unconfined kernel, for trusted "
                       "notebooks only (e.g. the reference solution), never students'")
    grade.add_argument("--db", default=None, help="gradebook SQLAlchemy URL, e.g. "
                       "postgresql://user@host:5432/gradebook (default: sqlite in OUT)")
    grade.add_argument("--secret-key", type=_secret_key, default=None, metavar="HEX",
                       help="only to repeat a batch byte for byte (tests, a reproduced "
                       "run): derive each grading's secret from this key (32 hexadecimal "
                       "digits or more) instead of drawing it at random; the key is a secret "
                       "to keep, never to show students (default: a fresh random 128-bit "
                       "secret per graded submission)")
    grade.add_argument("--regrade", action="store_true", help="grade every student again, "
                       "even those whose submission did not change (without it, results of "
                       "another grading version are kept, and counted in the summary)")
    _late_options(grade)
    grade.set_defaults(run=_autograde)


def _late_options(command):
    """Late work's options: each given replaces what the journal keeps from before."""
    command.add_argument("--due", default=None, metavar="TIME", help="the due date, ISO 8601"
                         " with a zone, e.g. 2026-12-01T23:59:00+01:00 (default: the one"
                         " given before, if any)")
    command.add_argument("--late-penalty", default=None, metavar="POLICY",
                         help="none (record lateness only), zero (a late submission scores"
                         " 0) or N%% (N percent of the maximum off per started day late,"
                         " at most the score); default: the one given before, else none")
    command.add_argument("--extensions", default=None, metavar="CSV",
                         help="a CSV of student_id,due: each student's own due date")
    command.add_argument("--timestamps", default=None, metavar="CSV",
                         help="a CSV of student_id,timestamp, for submissions without"
                         " nbgrader's timestamp.txt (LMS downloads); it wins over the file")


def _handback_parsers(commands):
    export = commands.add_parser("export", help="write the grades (after the late penalty)"
                                 " in a form Canvas's or Moodle's gradebook import accepts")
    export.add_argument("out", help="the folder autograde wrote (--out)")
    export.add_argument("--format", choices=("canvas", "moodle", "csv"), default="csv",
                        help="canvas: Canvas's gradebook import (SIS ids and a Points"
                        " Possible row); moodle: username and score; csv: student_id and"
                        " score; each the score after the late penalty (default csv)")
    export.add_argument("--to", default=None, metavar="FILE",
                        help="where to write it (default OUT/grades-<format>.csv)")
    export.set_defaults(run=_export)
    feedback = commands.add_parser("feedback", help="copy each student's feedback page to"
                                   " DIR/<student_id>.html, ready for an LMS upload")
    feedback.add_argument("out", help="the folder autograde wrote (--out)")
    feedback.add_argument("--to", required=True, metavar="DIR",
                          help="the folder to write the pages to (made if missing)")
    feedback.set_defaults(run=_feedback)


def _secret_key(text):
    from grader.hidden_secrets import SecretKeyError, parse_secret_key

    try:
        return parse_secret_key(text)
    except SecretKeyError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _seconds(text):
    """A time to keep something: 0 to a day (a template left for weeks holds ~500 MB)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:  # NaN too
        raise argparse.ArgumentTypeError(f"must be from 0 to 86400 seconds, got {text}")
    return value


def main(argv: list[str] | None = None, *, exit_at_once: bool = False) -> int:
    """Run one command; an error that is ours to explain (grader.errors.GraderError) is one
    line on stderr and exit status 1, anything else a traceback. With `exit_at_once` (the
    command line's process), a check ends its process as soon as it has answered."""
    args = build_parser().parse_args(argv)
    logs.configure(args.verbosity)
    code = _run(args)
    if exit_at_once and args.command in EXIT_AT_ONCE and process_end.alone():
        process_end.exit_now(code)
    return code


# Commands whose process ends at once when it has answered (grader.process_end).
EXIT_AT_ONCE = frozenset({"validate", "autograde"})


def _run(args):
    try:
        return args.run(args, load_lab(args.lab))
    except KeyboardInterrupt as interrupt:
        print(_interrupted(interrupt, args), file=sys.stderr, flush=True)
        return INTERRUPTED
    except (GraderError, FileNotFoundError) as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 1


def _one_line(error):
    return " ".join(str(error).split())


class _PrintVersion(argparse.Action):
    """--version: the package, its grading ABI, and the lab's grading version (of --lab when
    it comes before)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            text = version_text(getattr(namespace, "lab", None) or DEFAULT_LAB)
        except GraderError as error:
            parser.exit(1, f"error: {_one_line(error)}\n")
        print(text)
        parser.exit(0)


def version_text(lab_spec: str) -> str:
    from grader.pipeline import grading_version

    lab = load_lab(lab_spec)
    return (f"c2w2-grader {grader.__version__}, grading ABI {grader.GRADING_ABI}; "
            f"lab {lab.assignment} ({lab_spec}): grading version {grading_version(lab)}")
