"""The journal: every student's result, saved in OUT the moment it exists.

    OUT/journal.sqlite

One row per student, written in one SQLite transaction as each student finishes (with
`synchronous=FULL`: a row committed survives the grader's death, the machine's too), plus
the batch's facts: which lab, each run's facts. Everything else in OUT is made from it:
grades.csv, verdicts.json, the report, the gradebook rows (each row says whether it
reached the gradebook yet). A coordinator killed at any moment loses at most the students
it was grading; running `autograde` again on the same OUT resumes: a student whose
submission (its file's digest) is unchanged keeps their result, with the grading version
that made it (grader.pipeline says what a batch does with another version's results).

The secret of each grading in progress (grader.hidden_secrets) is saved in `pending`
before its task leaves the coordinator, so that a resumed batch grades that submission on
the same inputs and writes the same bytes. It is deleted once the student's result is
recorded: a result never needs it again (the next grading draws a new one), and OUT then
holds no secret that could leak with a copy of it.

Each row remembers the student's original folder name, so that ids stay unique across
batches (grader.intake.student_ids). The schema's version is SQLite's `user_version`; an
OUT written by an earlier release is migrated when opened.

Only the coordinating process writes it; a lock makes it safe from its threads.
"""

import contextlib
import functools
import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grader.errors import GraderError
from grader.hidden_secrets import grading_secret
from grader.plugin import Lab
from grader.records import STATUSES, ExerciseVerdict, StudentResult

FILE = "journal.sqlite"
SCHEMA_VERSION = 2
# Version 0: the first release's (no user_version); its tables are the first two here.
SCHEMA = (  # version 0, the first release's (it set no user_version)
    "CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS students (
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
)""")
MIGRATIONS = {  # version N -> the statements that make it N + 1
    0: (
        # The folder name a student's id was given to ('' in rows of version 0: the id).
        "ALTER TABLE students ADD COLUMN folder TEXT NOT NULL DEFAULT ''",
        # How many results were recorded for the student: a grading's attempt number.
        "ALTER TABLE students ADD COLUMN gradings INTEGER NOT NULL DEFAULT 1",
        """CREATE TABLE pending (  -- the secret of each grading not yet recorded
    student_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    secret BLOB NOT NULL,
    PRIMARY KEY (student_id, digest)
)"""),
    1: (
        # When the student submitted (ISO 8601, UTC; '' when nothing said): late penalties
        # are computed from it at every publish, under the policy then in force.
        "ALTER TABLE students ADD COLUMN timestamp TEXT NOT NULL DEFAULT ''",),
}
# What record() writes, by name; in_gradebook starts at 0 and gradings counts up.
_RECORDED = ("student_id", "digest", "version", "status", "detail", "verdicts", "seconds",
             "sandbox", "has_notebook", "feedback", "in_gradebook", "batch", "graded_at",
             "folder", "timestamp")
_RECORD_SQL = (f"INSERT INTO students ({', '.join(_RECORDED)}, gradings)"
               f" VALUES ({', '.join(':' + name for name in _RECORDED)}, 1)"
               " ON CONFLICT (student_id) DO UPDATE SET "
               + ", ".join(f"{name} = excluded.{name}" for name in _RECORDED[1:])
               + ", gradings = gradings + 1")


class JournalError(GraderError, ValueError):
    """OUT holds a journal that this batch cannot continue (another lab, a newer schema)."""


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
    folder: str = ""  # the student's folder name as submitted
    timestamp: str = ""  # when the student submitted (ISO, UTC), "" when nothing says

    @property
    def score(self) -> float:
        return sum(verdict.points for verdict in self.verdicts.values())


class Journal:
    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _migrate(self):
        """Bring the tables to SCHEMA_VERSION, each step in one transaction."""
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(f"{self.path} was written by a newer grader (journal"
                                   f" schema {version}, this one knows {SCHEMA_VERSION})")
            steps = [MIGRATIONS[step] for step in range(version, SCHEMA_VERSION)]
            for statement in [*(SCHEMA if version == 0 else ()), *sum(steps, ())]:
                self._db.execute(statement)
            # PRAGMA takes no parameter; the value is our own constant.
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _transaction(self):
        """One SQLite transaction: all its statements are saved, or none."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @classmethod
    def exists(cls, out: str | Path) -> bool:
        return (Path(out) / FILE).is_file()

    # ------------------------------------------------------------ the batch's facts

    def fact(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM facts WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_fact(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO facts VALUES (?, ?)",
                             (key, json.dumps(value)))

    def check_lab(self, lab: Lab, advice: str = "give its lab with --lab") -> None:
        """Refuse to write `lab`'s outputs from grades of another lab, or into them."""
        assignment = self.fact("assignment")
        if assignment not in (None, lab.assignment):
            raise JournalError(f"{self.path.parent} holds grades of {assignment}, not of"
                               f" {lab.assignment}: {advice}")

    def begin_batch(self, *, lab: Lab, regrade: bool = False) -> int:
        """Check that this OUT can take a batch of `lab`; return the batch's number.
        A regrade grades everyone on new secrets: no pending one is reused."""
        self.check_lab(lab, "grade into another folder")
        batch = self.fact("batches", 0) + 1
        self.set_fact("assignment", lab.assignment)
        self.set_fact("batches", batch)
        if regrade:
            with self._lock:
                self._db.execute("DELETE FROM pending")
        return batch

    def secret_for(self, student_id: str, digest: str, key: bytes | None = None) -> bytes:
        """The secret to grade this submission with, saved before it is used: the one
        saved for it if a batch was interrupted while grading it, else a new one
        (grader.hidden_secrets.grading_secret, `key` its repeat key or None)."""
        with self._lock, self._transaction():
            row = self._db.execute("SELECT secret FROM pending WHERE student_id = ? AND"
                                   " digest = ?", (student_id, digest)).fetchone()
            if row is not None:
                return bytes(row[0])
            gradings = self._db.execute("SELECT gradings FROM students WHERE student_id = ?",
                                        (student_id,)).fetchone()
            secret = grading_secret(key, student_id=student_id, digest=digest,
                                    attempt=gradings[0] if gradings else 0)
            self._db.execute("INSERT INTO pending VALUES (?, ?, ?)",
                             (student_id, digest, secret))
            return secret

    def pending_secrets(self) -> list[tuple[str, str, bytes]]:
        """(student id, digest, secret) of every grading not yet recorded."""
        with self._lock:
            rows = self._db.execute("SELECT student_id, digest, secret FROM pending"
                                    " ORDER BY student_id, digest").fetchall()
        return [(student_id, digest, bytes(secret)) for student_id, digest, secret in rows]

    def folders(self) -> dict[str, str]:
        """student id -> the folder name it was given to, for every student in OUT."""
        with self._lock:
            rows = self._db.execute("SELECT student_id, folder FROM students").fetchall()
        return {student_id: _folder(student_id, folder) for student_id, folder in rows}

    # ------------------------------------------------------------ students

    def record(self, result: StudentResult, *, version: str, batch: int, has_notebook: bool,
               feedback: str, graded_at: str = "") -> None:
        """Save one student's result (replacing an earlier one), not yet in the gradebook,
        and forget the secret it was graded with."""
        verdicts = {exercise: verdict.to_json()
                    for exercise, verdict in sorted(result.verdicts.items())}
        row = {"student_id": result.student_id, "digest": result.submission_hash,
               "version": version, "status": result.status, "detail": _text(result.detail),
               "verdicts": json.dumps(verdicts), "seconds": float(result.seconds),
               "sandbox": _text(result.sandbox), "has_notebook": int(has_notebook),
               "feedback": feedback, "in_gradebook": 0, "batch": batch,
               # when the files were made: by a worker (grader.publish.on_worker), or now
               "graded_at": graded_at or datetime.now(UTC).isoformat(timespec="seconds"),
               # JSON text: a folder name may hold a lone surrogate (undecodable bytes),
               # and it must come back exactly to be recognised next time.
               "folder": json.dumps(result.folder or result.student_id),
               "timestamp": result.timestamp}
        with self._lock, self._transaction():
            self._db.execute(_RECORD_SQL, row)
            self._db.execute("DELETE FROM pending WHERE student_id = ?", (result.student_id,))

    def mark_in_gradebook(self, *student_ids: str) -> None:
        with self._lock, self._transaction():
            self._db.executemany("UPDATE students SET in_gradebook = 1 WHERE student_id = ?",
                                 [(student_id,) for student_id in student_ids])

    def mark_seen(self, student_ids: Iterable[str], batch: int) -> None:
        """Say that this batch's SUBMISSIONS held these students (their results kept)."""
        with self._lock, self._transaction():
            self._db.executemany("UPDATE students SET batch = ? WHERE student_id = ?",
                                 [(batch, student_id) for student_id in student_ids])

    def set_timestamps(self, timestamps: dict[str, str]) -> None:
        """Save when each of these students submitted ({id: ISO text}): a student whose
        result is kept may have sent the same file again later."""
        with self._lock, self._transaction():
            self._db.executemany("UPDATE students SET timestamp = ? WHERE student_id = ?",
                                 [(stamp, student_id) for student_id, stamp
                                  in timestamps.items()])

    def records(self) -> list[StudentRecord]:
        """Every student's record, by id."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_READ} FROM students ORDER BY student_id"
                                    ).fetchall()
        return [_record(row) for row in rows]

    def record_of(self, student_id: str) -> StudentRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_READ} FROM students WHERE student_id = ?",
                                   (student_id,)).fetchone()
        return _record(row) if row else None


def _text(text):
    """`text` as SQLite can store it: a lone surrogate (a kernel can send one) replaced."""
    return str(text).encode("utf-8", "replace").decode("utf-8")


_READ = ", ".join(_RECORDED)


def _record(row):
    (student_id, digest, version, status, detail, verdicts, seconds, sandbox, has_notebook,
     feedback, in_gradebook, batch, graded_at, folder, timestamp) = row
    if status not in STATUSES:
        raise JournalError(f"the journal holds an unknown status {status!r}")
    return StudentRecord(
        student_id=student_id, status=status, detail=detail,
        verdicts=dict(_verdicts(verdicts)),
        seconds=seconds, sandbox=sandbox, digest=digest, version=version,
        has_notebook=bool(has_notebook), feedback=feedback, in_gradebook=bool(in_gradebook),
        batch=batch, graded_at=graded_at, folder=_folder(student_id, folder),
        timestamp=timestamp)


@functools.lru_cache(maxsize=1024)
def _verdicts(text):
    """A record's verdicts from their JSON text, kept by that text: a class's results are
    of a few kinds (every right answer's verdicts are the same text), so each kind is read
    once and its frozen ExerciseVerdicts shared by every record of that kind (the class
    files hold every record at once: 8 kB a student, mostly verdicts, before)."""
    return {exercise: ExerciseVerdict.from_json(exercise, data)
            for exercise, data in json.loads(text).items()}


def _folder(student_id, stored):
    """A student's folder name as recorded; a row of schema 0 has none: it was the id."""
    return json.loads(stored) if stored else student_id


def record_as_json(record: StudentRecord) -> dict[str, Any]:
    """A record as plain JSON data (for verdicts.json): its fields, in their order (its
    fields are plain values but its verdicts: asdict's deep copy was most of the cost)."""
    data = {name: getattr(record, name) for name in _RECORD_FIELDS}
    data["verdicts"] = {exercise: verdict.to_json()
                        for exercise, verdict in record.verdicts.items()}
    return data


_RECORD_FIELDS = tuple(item.name for item in fields(StudentRecord))
