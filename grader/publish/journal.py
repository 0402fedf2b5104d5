"""The journal: every student's result, saved in OUT the moment it exists.

    OUT/journal.sqlite

One row per student, written in one SQLite transaction as each student finishes (with
`synchronous=FULL`: a row committed survives the grader's death, the machine's too), plus
the batch's facts: which lab, the hidden seed, each run's facts. Everything else in OUT is
made from it: grades.csv, verdicts.json, the report, the gradebook rows (each row says
whether it reached the gradebook yet). A coordinator killed at any moment loses at most the
students it was grading; running `autograde` again on the same OUT resumes: a student whose
submission (its file's digest) and grading version are unchanged keeps their result.

Only the coordinating process writes it; a lock makes it safe from its threads.
"""

import json
import secrets
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from grader.records import STATUSES, ExerciseVerdict

FILE = "journal.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS students (
    student_id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,           -- sha256 of the submitted notebook ('' when none)
    version TEXT NOT NULL,          -- the grading version that made this result
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    verdicts TEXT NOT NULL,         -- JSON: exercise -> points, max_points, messages
    seconds REAL NOT NULL,
    sandbox TEXT NOT NULL,
    has_notebook INTEGER NOT NULL,  -- a graded notebook is in the nbgrader course
    feedback TEXT NOT NULL,         -- written, none or refused
    in_gradebook INTEGER NOT NULL,  -- its row reached the gradebook
    batch INTEGER NOT NULL,         -- the last batch whose SUBMISSIONS held this student
    graded_at TEXT NOT NULL
);
"""


class JournalError(ValueError):
    """OUT holds a journal that this batch cannot continue (another lab, another seed)."""


@dataclass(frozen=True)
class StudentRecord:
    """One student's saved result."""

    student_id: str
    status: str
    detail: str = ""
    verdicts: dict = field(default_factory=dict)  # exercise -> ExerciseVerdict
    seconds: float = 0.0
    sandbox: str = ""
    digest: str = ""
    version: str = ""
    has_notebook: bool = False
    feedback: str = "none"
    in_gradebook: bool = False
    batch: int = 0
    graded_at: str = ""

    @property
    def score(self):
        return sum(verdict.points for verdict in self.verdicts.values())


class Journal:
    def __init__(self, out):
        self.path = Path(out) / FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self):
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @classmethod
    def exists(cls, out):
        return (Path(out) / FILE).is_file()

    # ------------------------------------------------------------ the batch's facts

    def fact(self, key, default=None):
        with self._lock:
            row = self._db.execute("SELECT value FROM facts WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_fact(self, key, value):
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO facts VALUES (?, ?)",
                             (key, json.dumps(value)))

    def check_lab(self, lab, advice="give its lab with --lab"):
        """Refuse to write `lab`'s outputs from grades of another lab, or into them."""
        assignment = self.fact("assignment")
        if assignment not in (None, lab.assignment):
            raise JournalError(f"{self.path.parent} holds grades of {assignment}, not of"
                               f" {lab.assignment}: {advice}")

    def begin_batch(self, *, lab, seed, regrade=False):
        """Check that this OUT can take a batch of `lab`; return (batch number, seed).

        The seed of the hidden inputs is the OUT's: kept from its first batch so that a
        resumed or later batch grades on the same inputs. Another seed means grading
        everyone again (`regrade`)."""
        self.check_lab(lab, "grade into another folder")
        kept_seed = self.fact("hidden_seed")
        if kept_seed is not None and seed is not None and seed != kept_seed and not regrade:
            raise JournalError(f"{self.path.parent} was graded with another hidden seed;"
                               " give --regrade to grade everyone again with the new one")
        if seed is None:  # a new secret seed for a new OUT; an OUT's own otherwise
            seed = kept_seed if kept_seed is not None else secrets.randbelow(2**31)
        batch = self.fact("batches", 0) + 1
        self.set_fact("assignment", lab.assignment)
        self.set_fact("hidden_seed", seed)
        self.set_fact("batches", batch)
        return batch, seed

    # ------------------------------------------------------------ students

    def record(self, result, *, version, batch, has_notebook, feedback):
        """Save one student's result (replacing an earlier one), not yet in the gradebook."""
        verdicts = {exercise: verdict.to_json()
                    for exercise, verdict in sorted(result.verdicts.items())}
        row = (result.student_id, result.submission_hash, version, result.status,
               _text(result.detail), json.dumps(verdicts), float(result.seconds),
               _text(result.sandbox), int(has_notebook), feedback, 0, batch,
               datetime.now(UTC).isoformat(timespec="seconds"))
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO students VALUES"
                             " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def mark_in_gradebook(self, student_id):
        with self._lock:
            self._db.execute("UPDATE students SET in_gradebook = 1 WHERE student_id = ?",
                             (student_id,))

    def mark_seen(self, student_ids, batch):
        """Say that this batch's SUBMISSIONS held these students (their results kept)."""
        with self._lock, self._db:
            self._db.executemany("UPDATE students SET batch = ? WHERE student_id = ?",
                                 [(batch, student_id) for student_id in student_ids])

    def records(self):
        """Every student's record, by id."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM students ORDER BY student_id").fetchall()
        return [_record(row) for row in rows]

    def record_of(self, student_id):
        with self._lock:
            row = self._db.execute("SELECT * FROM students WHERE student_id = ?",
                                   (student_id,)).fetchone()
        return _record(row) if row else None


def _text(text):
    """`text` as SQLite can store it: a lone surrogate (a kernel can send one) replaced."""
    return str(text).encode("utf-8", "replace").decode("utf-8")


def _record(row):
    (student_id, digest, version, status, detail, verdicts, seconds, sandbox, has_notebook,
     feedback, in_gradebook, batch, graded_at) = row
    if status not in STATUSES:
        raise JournalError(f"the journal holds an unknown status {status!r}")
    return StudentRecord(
        student_id=student_id, status=status, detail=detail,
        verdicts={exercise: ExerciseVerdict.from_json(exercise, data)
                  for exercise, data in json.loads(verdicts).items()},
        seconds=seconds, sandbox=sandbox, digest=digest, version=version,
        has_notebook=bool(has_notebook), feedback=feedback, in_gradebook=bool(in_gradebook),
        batch=batch, graded_at=graded_at)


def record_as_json(record):
    """A record as plain JSON data (for verdicts.json)."""
    data = asdict(record)
    data["verdicts"] = {exercise: verdict.to_json()
                        for exercise, verdict in record.verdicts.items()}
    return data
