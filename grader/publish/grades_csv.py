"""grades.csv and verdicts.json: the class, one row per student, made from the journal.

    grades.csv      student_id, one column per exercise, score, max_score, status, detail
    verdicts.json   per student and exercise: points, max_points and each message (its kind
                    and text), which grades.csv has no column for

Both are rewritten whole, atomically, from every student the journal holds: a batch that
grades some students into an OUT that holds others updates their rows and keeps the rest.
Text a spreadsheet would read as a formula (a cell starting with =, +, -, @, a tab or a
carriage return) gets a leading apostrophe, as OWASP advises against CSV injection.
"""

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

from grader.plugin import Lab
from grader.publish.files import write_atomically
from grader.publish.journal import StudentRecord, record_as_json

GRADES_CSV = "grades.csv"
VERDICTS_JSON = "verdicts.json"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_columns(lab: Lab) -> tuple[str, ...]:
    return ("student_id", *lab.exercise_ids, "score", "max_score", "status", "detail")


def write_grades_csv(path: str | Path, records: Iterable[StudentRecord],
                     lab: Lab) -> str | Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_columns(lab))
    writer.writerows(grades_row(record, lab) for record in records)
    write_atomically(path, buffer.getvalue())
    return path


def grades_row(record: StudentRecord, lab: Lab) -> list[str]:
    points = [_points(record, exercise) for exercise in lab.exercise_ids]
    return [neutralised(record.student_id), *map(format_number, points),
            format_number(record.score), format_number(lab.max_score), record.status,
            neutralised(record.detail)]


def neutralised(text: str) -> str:
    """`text` as a spreadsheet shows it, never as a formula it runs."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def write_verdicts_json(path: str | Path, records: Iterable[StudentRecord]) -> str | Path:
    data = {record.student_id: record_as_json(record) for record in records}
    write_atomically(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return path


def _points(record, exercise):
    verdict = record.verdicts.get(exercise)
    return verdict.points if verdict else 0


def format_number(value: float) -> str:
    # Whole numbers as integers (50, not 50.0), others without float noise (0.3).
    return f"{value:.10g}"
