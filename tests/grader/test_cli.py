"""The command line: a thin layer, so only what it adds is tested here."""

import io
import logging
import subprocess
import sys

from grader import cli, logs
from grader.cli import ProgressBar, ProgressLines, build_parser, summary
from grader.labs.c2_w2 import LAB as lab
from grader.pipeline import BatchResult
from grader.publish.journal import StudentRecord
from grader.records import ExerciseVerdict


def _record(student, status, points=()):
    verdicts = {f"UNQ_C{i + 1}": ExerciseVerdict(f"UNQ_C{i + 1}", p, 50)
                for i, p in enumerate(points)}
    return StudentRecord(student, status, "", verdicts)


def _batch(records, graded, kept=()):
    return BatchResult(records=records, graded=list(graded), kept=list(kept), missing=[],
                       seconds=12.34, workers=2, sandbox="namespaces+cgroups",
                       hidden_inputs="a fresh random 128-bit secret per graded submission")


def test_summary_says_what_the_batch_did_and_what_out_holds():
    records = [_record("a", "graded", (50, 50)), _record("b", "graded", (50, 0)),
               _record("c", "invalid"), _record("d", "timeout", (0, 0))]
    assert summary(_batch(records, ["b", "c", "d"], kept=["a"]), lab) == (
        "Graded 3 submissions in 12.3 s with 2 workers: graded 1, timeout 1, error 0, "
        "invalid 1; kept 1 unchanged result.\n"
        "OUT holds 4 students: graded 2, timeout 1, error 0, invalid 1; mean score 37.5/100")


def test_summary_names_the_cluster():
    text = summary(_batch([_record("a", "graded", (50, 50))], ["a"]), lab,
                   "tcp://10.0.0.1:8786")
    assert "on the Dask cluster at tcp://10.0.0.1:8786 (2 workers)" in text


def test_one_of_a_thing_is_said_in_the_singular():
    batch = BatchResult(records=[_record("a", "graded", (50, 50))], graded=["a"], kept=["b"],
                        missing=[], seconds=1.0, workers=1, sandbox="", hidden_inputs="")
    text = summary(batch, lab)
    assert text.startswith("Graded 1 submission in 1.0 s with 1 worker: ")
    assert "kept 1 unchanged result." in text and "OUT holds 1 student:" in text


def test_without_a_terminal_progress_is_a_line_now_and_then():
    stream, now = io.StringIO(), [0.0]
    lines = ProgressLines(stream, seconds=5, clock=lambda: now[0])
    for done, moment in enumerate((0.0, 1.0, 6.0, 7.0), start=1):
        now[0] = moment
        lines(done, 4, _record(f"s{done}", "graded"))
    assert stream.getvalue().splitlines() == [
        "Graded 1 of 4 (s1: graded)", "Graded 3 of 4 (s3: graded)",
        "Graded 4 of 4 (s4: graded)"]


def test_loudness_is_accepted_before_or_after_the_command():
    assert build_parser().parse_args(["-v", "report", "O"]).verbosity == 1
    assert build_parser().parse_args(["report", "O", "-v"]).verbosity == 1
    assert build_parser().parse_args(["report", "-vv", "O"]).verbosity == 2
    assert build_parser().parse_args(["autograde", "S", "--out", "O", "-q"]).verbosity == -1
    assert build_parser().parse_args(["-q", "validate", "n.ipynb"]).verbosity == -1
    assert build_parser().parse_args(["release", "--out", "O"]).verbosity == 0


def test_a_mistyped_submissions_path_writes_nothing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "grader", "autograde",
                             str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=lab.root)
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert not (tmp_path / "out").exists()


def test_progress_bar_redraws_one_line_and_ends_it():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar(1, 2, _record("alice", "graded"))
    bar(2, 2, _record("bob", "invalid"))
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "1/2 alice: graded" in text and "2/2 bob: invalid" in text
    assert "[" + "#" * ProgressBar.WIDTH + "]" in text


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    result = subprocess.run([sys.executable, "-m", "grader", "autograde", str(tmp_path),
                             "--out", str(tmp_path / "out"), "--workers", "0"],
                            capture_output=True, text=True, cwd=lab.root)
    assert result.returncode == 2 and "must be a positive number" in result.stderr
    assert not (tmp_path / "out").exists()


def test_every_limit_has_its_option_and_default_from_the_settings():
    from grader.cli import build_parser
    from grader.settings import Limits

    args = build_parser().parse_args(["autograde", "S", "--out", "O"])
    for name, default, _ in Limits.options():
        assert getattr(args, name) == default
    args = build_parser().parse_args(["autograde", "S", "--out", "O", "--output-mb", "9"])
    assert args.output_mb == 9


def test_an_unknown_lab_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "grader", "--lab", "no.such.lab", "report",
                             str(tmp_path)], capture_output=True, text=True, cwd=lab.root)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot load the lab 'no.such.lab'")


def test_publish_without_a_journal_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "grader", "publish", str(tmp_path)],
                            capture_output=True, text=True, cwd=lab.root)
    assert result.returncode == 1 and "no journal" in result.stderr


def test_terminal_messages_are_one_line_and_tracebacks_come_with_verbose():
    for verbosity, shows_traceback in ((0, False), (1, True)):
        stream = io.StringIO()
        logs.configure(verbosity, stream)
        try:
            raise RuntimeError("deep inside")
        except RuntimeError:
            logging.getLogger("grader.test").exception("something failed")
        text = stream.getvalue()
        assert text.startswith("ERROR: something failed")
        assert ("Traceback" in text) == shows_traceback
    stream = io.StringIO()
    logs.configure(-1, stream)
    logging.getLogger("grader.test").warning("only said without -q")
    assert stream.getvalue() == ""
    logs.configure(0)


def test_validate_keeps_its_template_from_0_seconds_to_a_day(capsys):
    parse = build_parser().parse_args
    assert parse(["validate", "n.ipynb"]).keep_template == 600
    assert parse(["validate", "--keep-template", "0", "n.ipynb"]).keep_template == 0
    assert parse(["validate", "--keep-template", "90.5", "n.ipynb"]).keep_template == 90.5
    for wrong in ("-1", "nan", "inf", "86401", "ten"):
        try:
            parse(["validate", "--keep-template", wrong, "n.ipynb"])
        except SystemExit:
            pass
        else:
            raise AssertionError(f"--keep-template {wrong} was accepted")
        assert f"must be from 0 to 86400 seconds, got {wrong}" in capsys.readouterr().err


EXIT_NOW = """
import atexit, sys
from grader import process_end
atexit.register(lambda: print("atexit ran"))
sys.stdout.write("the answer, not yet flushed; ")
process_end.exit_now(3)
"""


ALONE = """
import threading
from grader import process_end
print(process_end.alone())
threading.Thread(target=lambda: None, daemon=True).start()
print(process_end.alone())
release = threading.Event()
worker = threading.Thread(target=release.wait)
worker.start()
print(process_end.alone())
release.set()
worker.join()
print(process_end.alone())
"""


def test_a_command_ends_at_once_only_when_no_thread_is_left_at_work():
    # A thread that is not a daemon is waited for by the interpreter's ordinary end: the
    # process is not cut short while one runs.
    result = subprocess.run([sys.executable, "-c", ALONE], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.split() == ["True", "True", "False", "True"]
    assert {"validate", "autograde"} == cli.EXIT_AT_ONCE


def test_a_check_ends_its_process_at_once_after_atexit_and_flushing():
    result = subprocess.run([sys.executable, "-c", EXIT_NOW], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 3
    assert result.stdout == "the answer, not yet flushed; atexit ran\n"
