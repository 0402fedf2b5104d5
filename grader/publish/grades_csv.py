"""grades.csv and verdicts.json: the class, one row per student, made from the journal.

    grades.csv      student_id, one column per exercise, score, max_score, status, detail,
                    then the late work's: timestamp (ISO, UTC), late_seconds, penalty
                    (points taken off) and final_score (score - penalty, what counts)
    verdicts.json   per student and exercise: points, max_points and each message (its kind
                    and text), which grades.csv has no column for

Both are rewritten whole, atomically, from every student the journal holds: a batch that
grades some students into an OUT that holds others updates their rows and keeps the rest.
Text a spreadsheet would read as a formula (a cell starting with =, +, -, @, a tab or a
carriage return) gets a leading apostrophe, as OWASP advises against CSV injection.
"""

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from grader.lateness import LatePolicy
from grader.plugin import Lab
from grader.publish.files import atomic_text_file
from grader.publish.journal import StudentRecord, record_as_json

GRADES_CSV = "grades.csv"
VERDICTS_JSON = "verdicts.json"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_columns(lab: Lab) -> tuple[str, ...]:
    # The late work's columns come last: a script reading the first ones by position
    # reads what it always did.
    return ("student_id", *lab.exercise_ids, "score", "max_score", "status", "detail",
            *LATE_COLUMNS)


LATE_COLUMNS = ("timestamp", "late_seconds", "penalty", "final_score")


def write_grades_csv(path: str | Path, records: Iterable[StudentRecord], lab: Lab,
                     policy: LatePolicy | None = None) -> str | Path:
    with atomic_text_file(path) as file:  # a row at a time: 100,000 rows are never held
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(csv_columns(lab))
        writer.writerows(grades_row(record, lab, policy) for record in records)
    return path


def grades_row(record: StudentRecord, lab: Lab, policy: LatePolicy | None = None) -> list[str]:
    points = [_points(record, exercise) for exercise in lab.exercise_ids]
    late, penalty = late_seconds_and_penalty(record, lab, policy)
    return [neutralised(record.student_id), *map(format_number, points),
            format_number(record.score), format_number(lab.max_score), record.status,
            neutralised(record.detail), record.timestamp, str(late), format_number(penalty),
            format_number(record.score - penalty)]


def late_seconds_and_penalty(record: StudentRecord, lab: Lab,
                             policy: LatePolicy | None = None) -> tuple[int, float]:
    """How late the record's submission was, and the points that costs, under `policy`."""
    return (policy or LatePolicy()).lateness(record.student_id, record.timestamp,
                                             record.score, lab.max_score)


def final_score(record: StudentRecord, lab: Lab, policy: LatePolicy | None = None) -> float:
    """The score that counts: the points less the late penalty."""
    return record.score - late_seconds_and_penalty(record, lab, policy)[1]


def neutralised(text: str) -> str:
    """`text` as a spreadsheet shows it, never as a formula it runs."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def write_verdicts_json(path: str | Path, records: Iterable[StudentRecord]) -> str | Path:
    """{student id: the record as JSON}, one student a line: json's C encoder writes each
    (an indented dump goes through its Python encoder, seconds at 100,000 students)."""
    with atomic_text_file(path) as file:  # a student at a time, as grades.csv
        file.write("{")
        separator = "\n"
        for record in records:
            file.write(f"{separator}{json.dumps(record.student_id, ensure_ascii=False)}: "
                       f"{json.dumps(record_as_json(record), ensure_ascii=False)}")
            separator = ",\n"
        file.write("\n}\n" if separator != "\n" else "}\n")
    return path


def _points(record, exercise):
    verdict = record.verdicts.get(exercise)
    return verdict.points if verdict else 0


def format_number(value: float) -> str:
    # Whole numbers as integers (50, not 50.0), others without float noise (0.3).
    return f"{value:.10g}"
