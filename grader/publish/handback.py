"""Handing grades and feedback back: to the school's LMS, and through nbgrader's exchange.

    grader export OUT --format canvas|moodle|csv    the score after the late penalty, one
                                                    column for the assignment
    grader feedback OUT --to DIR                    DIR/<student_id>.html, one page each
    OUT/nbgrader/feedback/<student>/<assignment>/   what `nbgrader release_feedback` reads:
        <notebook>.html, timestamp.txt, submission_secret.txt
    OUT/nbgrader/autograded/<student>/<assignment>/timestamp.txt, submission_secret.txt
                                                    what `nbgrader generate_feedback` copies
                                                    into feedback/ beside its own pages
    OUT/nbgrader/submitted/<student>/<assignment>/timestamp.txt
                                                    formgrader counts a submission by its
                                                    folder there (no notebook: the graded one
                                                    in autograded/ is the one it shows)

release_feedback names each page in the exchange by a hash of the notebook's id and the
submission's secret, which nbgrader's exchange gave the student at submit time; a student
who did not submit through the exchange has none, so one is drawn here and kept (the page
then reaches the exchange, though that student's `fetch_feedback` cannot match it).
"""

import contextlib
import csv
import io
import secrets
import shutil
from pathlib import Path

from grader.lateness import LatePolicy, nbgrader_text
from grader.plugin import Lab
from grader.publish.files import write_atomically
from grader.publish.grades_csv import final_score, format_number, neutralised
from grader.publish.journal import StudentRecord

FORMATS = ("canvas", "moodle", "csv")
SECRET_FILE = "submission_secret.txt"
TIMESTAMP_FILE = "timestamp.txt"
# Canvas's gradebook export, which its import reads back: these five, then the assignments.
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


def grades_for_lms(records: list[StudentRecord], lab: Lab, policy: LatePolicy,
                   form: str) -> str:
    """The CSV text of `form` (canvas, moodle or csv): each student's final score."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = [(neutralised(record.student_id), format_number(final_score(record, lab, policy)))
            for record in records]
    if form == "canvas":
        # The student id is matched as the SIS User ID and the SIS Login ID; Canvas's own
        # ID and the section are left empty, which its import accepts.
        writer.writerow([*CANVAS_COLUMNS, lab.assignment])
        writer.writerow(["    Points Possible", "", "", "", "", format_number(lab.max_score)])
        writer.writerows([student, "", student, student, "", score] for student, score in rows)
    elif form == "moodle":
        writer.writerow(["username", lab.assignment])  # mapped at import: username -> Username
        writer.writerows(rows)
    else:
        writer.writerow(["student_id", lab.assignment])
        writer.writerows(rows)
    return buffer.getvalue()


def export_grades(out: str | Path, records: list[StudentRecord], lab: Lab,
                  policy: LatePolicy, form: str, to: str | Path | None = None) -> Path:
    """Write the grades for an LMS into `to` (default OUT/grades-<form>.csv); its path."""
    path = Path(to) if to else Path(out) / f"grades-{form}.csv"
    write_atomically(path, grades_for_lms(records, lab, policy, form))
    return path


def feedback_pages(out: str | Path, records: list[StudentRecord], lab: Lab,
                   to: str | Path) -> list[Path]:
    """Copy each student's feedback page to `to`/<student_id>.html; the paths written."""
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    written = []
    for record in records:
        page = _page(out, lab, record.student_id)
        if record.feedback == "written" and page.is_file():
            written.append(Path(shutil.copyfile(page, to / f"{record.student_id}.html")))
    return written


def write_course_feedback(out: str | Path, lab: Lab, records: list[StudentRecord],
                          graded_at: str) -> None:
    """Give the nbgrader course in OUT the files release_feedback and generate_feedback
    read, for every student with a feedback page (`graded_at` stands in for a timestamp
    nothing gave)."""
    for record in records:
        write_student_course_feedback(out, lab, record, graded_at)


def write_student_course_feedback(out: str | Path, lab: Lab, record: StudentRecord,
                                  graded_at: str) -> None:
    """write_course_feedback for one student: as each is published, and again (checking,
    rewriting only what differs) for the whole class after the batch."""
    course = Path(out) / "nbgrader"
    stamp = nbgrader_text(record.timestamp or record.graded_at or graded_at)
    _write_submitted(course / "submitted" / record.student_id / lab.assignment,
                     record.has_notebook, stamp)
    folders = [course / "autograded" / record.student_id / lab.assignment,
               course / "feedback" / record.student_id / lab.assignment]
    page = _page(out, lab, record.student_id)
    if record.feedback != "written" or not page.is_file():
        shutil.rmtree(folders[1], ignore_errors=True)
        return
    folders[1].mkdir(parents=True, exist_ok=True)
    _copied(page, folders[1] / page.name)
    secret = _secret(folders)
    for folder in folders:
        if folder.is_dir():
            _written(folder / TIMESTAMP_FILE, stamp + "\n")
            _written(folder / SECRET_FILE, secret)


# Every batch writes these for the whole class, so a file already right is left alone: at
# 100,000 students, copying every page again (half a megabyte each) and rewriting every
# small file was most of the class files' time.

def _copied(page, copy):
    """Copy `page` to `copy` (its time kept) unless `copy` has its size and time already:
    not a hard link, which nbgrader's generate_feedback, writing its own page over the
    file in place, would turn into a change of OUT/feedback's page."""
    source = page.stat()
    with contextlib.suppress(OSError):
        held = copy.stat()
        if (held.st_size, held.st_mtime_ns) == (source.st_size, source.st_mtime_ns):
            return
    shutil.copy2(page, copy)


def _written(path, text):
    """Write `text` to `path` (in one step) unless the file holds it already."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    write_atomically(path, text, durable=False)  # the pass after each batch checks it


def _write_submitted(folder, has_notebook, stamp):
    if not has_notebook:  # not a submission in the gradebook: formgrader must not count it
        shutil.rmtree(folder, ignore_errors=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    _written(folder / TIMESTAMP_FILE, stamp + "\n")


def _secret(folders):
    for folder in folders:
        if (folder / SECRET_FILE).is_file():
            return (folder / SECRET_FILE).read_text().strip()
    return secrets.token_hex(16)


def _page(out, lab, student_id):
    return Path(out) / "feedback" / student_id / f"{Path(lab.notebook_name).stem}.html"
