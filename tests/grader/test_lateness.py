"""Late work without grading: reading times, the policies' arithmetic, the journal's
timestamp column and its migration, grades.csv's late columns and the LMS exports."""

import csv
import io
import sqlite3
from datetime import UTC, datetime

import pytest

from grader.intake import collect_submissions
from grader.labs.c2_w2 import LAB
from grader.lateness import (
    LatenessError,
    LatePolicy,
    late_text,
    nbgrader_text,
    parse_due,
    parse_penalty,
    parse_timestamp,
    policy_from,
)
from grader.publish.grades_csv import csv_columns, write_grades_csv
from grader.publish.handback import grades_for_lms
from grader.publish.journal import (
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    Journal,
    StudentRecord,
)
from grader.records import GRADED, ExerciseVerdict, StudentResult

DUE = "2026-12-01T23:00:00+00:00"
HOUR = 3600


def test_nbgraders_timestamp_format_is_read_as_nbgrader_reads_it():
    assert parse_timestamp("2026-12-01 22:30:00.123456 UTC") == \
        datetime(2026, 12, 1, 22, 30, 0, 123456, tzinfo=UTC)
    assert parse_timestamp("2026-12-02 00:30:00 +0100").isoformat() == \
        "2026-12-01T23:30:00+00:00"
    assert nbgrader_text("2026-12-01T23:30:00+00:00") == "2026-12-01 23:30:00.000000 UTC"
    assert parse_timestamp(nbgrader_text("2026-12-01T23:30:00+00:00")).isoformat() == \
        "2026-12-01T23:30:00+00:00"
    with pytest.raises(LatenessError, match="not a time"):
        parse_timestamp("yesterday-ish")


def test_a_due_date_without_a_zone_is_refused_with_the_fix():
    assert parse_due("2026-12-02T00:00:00+01:00").isoformat() == DUE
    assert parse_due("2026-12-01T23:00Z").isoformat() == DUE
    with pytest.raises(LatenessError, match="has no time zone; add one"):
        parse_due("2026-12-01T23:00:00")
    with pytest.raises(LatenessError, match="not an ISO 8601 time"):
        parse_due("Friday")


@pytest.mark.parametrize("text", ["10", "-5%", "150%", "half", ""])
def test_a_penalty_is_none_zero_or_a_percentage(text):
    with pytest.raises(LatenessError, match="--late-penalty"):
        parse_penalty(text)


@pytest.mark.parametrize(("penalty", "late_hours", "score", "points_off"), [
    ("none", 50, 100, 0), ("zero", 1, 80, 80), ("zero", 0, 80, 0),
    ("10%", 1, 100, 10), ("10%", 24, 100, 10), ("10%", 25, 100, 20), ("10%", 240, 50, 50),
    ("12.5%", 49, 100, 37.5)])
def test_each_policy_takes_off_per_started_day_at_most_the_score(penalty, late_hours, score,
                                                                  points_off):
    policy = LatePolicy(due=DUE, penalty=penalty)
    stamp = datetime.fromtimestamp(datetime.fromisoformat(DUE).timestamp() + late_hours * HOUR,
                                   UTC).isoformat()
    assert policy.lateness("s", stamp, score, 100) == (late_hours * HOUR, points_off)


def test_an_extension_moves_one_students_due_date_and_no_timestamp_is_never_late():
    policy = LatePolicy(due=DUE, penalty="zero",
                        extensions={"slow": "2026-12-03T23:00:00+00:00"})
    stamp = "2026-12-02T23:00:00+00:00"
    assert policy.lateness("slow", stamp, 100, 100) == (0, 0)
    assert policy.lateness("other", stamp, 100, 100) == (24 * HOUR, 100)
    assert policy.lateness("other", "", 100, 100) == (0, 0)
    assert LatePolicy().lateness("other", stamp, 100, 100) == (0, 0)  # no due date


def test_flags_given_replace_the_stored_policy_and_the_rest_is_kept(tmp_path):
    extensions = tmp_path / "extensions.csv"
    extensions.write_text("student_id,due\nslow,2026-12-03T23:00:00Z\n")
    stored = LatePolicy(due=DUE, penalty="10%").to_json()
    assert policy_from(stored) == LatePolicy(due=DUE, penalty="10%")
    assert policy_from(stored, penalty="zero", extensions=extensions) == LatePolicy(
        due=DUE, penalty="zero", extensions={"slow": "2026-12-03T23:00:00+00:00"})
    assert policy_from(stored, due="").due == ""
    extensions.write_text("slow,2026-12-03T23:00:00\n")
    with pytest.raises(LatenessError, match="line 1: .* has no time zone"):
        policy_from(stored, extensions=extensions)


def test_late_text_for_people():
    assert (late_text(0), late_text(61), late_text(26 * HOUR + 1)) == \
        ("", "2 min", "1 d 2 h 1 min")


def test_intake_reads_timestamp_txt_in_nbgraders_layout(tmp_path):
    submitted = tmp_path / "submitted"
    for student, stamp in (("on_time", "2026-12-01 22:00:00.5 UTC"), ("none", None)):
        folder = submitted / student / LAB.assignment
        folder.mkdir(parents=True)
        (folder / LAB.notebook_name).write_bytes(LAB.source_notebook.read_bytes())
        if stamp:
            (folder / "timestamp.txt").write_text(stamp + "\n")
    intake = collect_submissions(submitted, tmp_path / "scratch", LAB)
    assert {submission.student_id: submission.timestamp for submission in intake.submissions} \
        == {"none": "", "on_time": "2026-12-01T22:00:00.500000+00:00"}


def _result(student, points, timestamp):
    verdicts = {exercise: ExerciseVerdict(exercise, points, 50)
                for exercise in LAB.exercise_ids}
    return StudentResult(student, GRADED, verdicts=verdicts, submission_hash="d",
                         timestamp=timestamp)


def test_a_schema_1_journal_gains_the_timestamp_column_and_keeps_its_rows(tmp_path):
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        for statement in (*SCHEMA, *MIGRATIONS[0]):  # schema 1, as the last release made it
            db.execute(statement)
        db.execute("INSERT INTO students (student_id, digest, version, status, detail,"
                   " verdicts, seconds, sandbox, has_notebook, feedback, in_gradebook, batch,"
                   " graded_at) VALUES ('old', 'd', 'v', 'graded', '', '{}', 1, '', 1,"
                   " 'written', 1, 1, '2026-12-01T10:00:00+00:00')")
        db.execute("PRAGMA user_version = 1")
    with Journal(tmp_path) as journal:
        assert journal.record_of("old").timestamp == ""
        journal.set_timestamps({"old": DUE})
        assert journal.record_of("old").timestamp == DUE
        journal.record(_result("new", 25, "2026-12-02T01:00:00+00:00"), version="v", batch=2,
                       has_notebook=True, feedback="written")
        assert journal.record_of("new").timestamp == "2026-12-02T01:00:00+00:00"
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (2,)


def _records():
    return [StudentRecord("late", GRADED, verdicts=_result("late", 50, "").verdicts,
                          timestamp="2026-12-02T01:00:00+00:00"),
            StudentRecord("=cmd", GRADED, verdicts=_result("x", 20, "").verdicts),
            StudentRecord("on_time", GRADED, verdicts=_result("o", 50, "").verdicts,
                          timestamp="2026-12-01T20:00:00+00:00")]


def test_grades_csv_keeps_its_columns_and_adds_the_late_ones_at_the_end(tmp_path):
    path = write_grades_csv(tmp_path / "grades.csv", _records(), LAB,
                            LatePolicy(due=DUE, penalty="10%"))
    rows = list(csv.reader(path.open()))
    assert rows[0] == list(csv_columns(LAB)) == [
        "student_id", "UNQ_C1", "UNQ_C2", "score", "max_score", "status", "detail",
        "timestamp", "late_seconds", "penalty", "final_score"]
    assert rows[1] == ["late", "50", "50", "100", "100", "graded", "",
                       "2026-12-02T01:00:00+00:00", "7200", "10", "90"]
    assert rows[2][-4:] == ["", "0", "0", "40"]
    assert rows[3][-4:] == ["2026-12-01T20:00:00+00:00", "0", "0", "100"]


def test_canvas_export_column_by_column():
    rows = list(csv.reader(io.StringIO(grades_for_lms(
        _records(), LAB, LatePolicy(due=DUE, penalty="zero"), "canvas"))))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "C2_W2"]
    assert rows[1] == ["    Points Possible", "", "", "", "", "100"]
    assert rows[2] == ["late", "", "late", "late", "", "0"]  # late under zero
    assert rows[3] == ["'=cmd", "", "'=cmd", "'=cmd", "", "40"]  # never a formula
    assert rows[4] == ["on_time", "", "on_time", "on_time", "", "100"]
    assert len(rows) == 5


@pytest.mark.parametrize(("form", "header"), [("moodle", ["username", "C2_W2"]),
                                              ("csv", ["student_id", "C2_W2"])])
def test_moodle_and_plain_exports_column_by_column(form, header):
    rows = list(csv.reader(io.StringIO(grades_for_lms(
        _records(), LAB, LatePolicy(due=DUE, penalty="10%"), form))))
    assert rows == [header, ["late", "90"], ["'=cmd", "40"], ["on_time", "100"]]


def test_autograde_refuses_a_due_date_without_a_zone_before_grading(tmp_path, capsys):
    from grader.cli import main

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    assert main(["autograde", str(submissions), "--out", str(tmp_path / "out"),
                 "--due", "2026-12-01T23:59"]) == 1
    assert "--due: '2026-12-01T23:59' has no time zone; add one, e.g. 2026-12-01T23:59Z" in \
        capsys.readouterr().err
    assert not (tmp_path / "out" / "grades.csv").exists()
