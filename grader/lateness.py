"""Late work: when each student submitted, when it was due, and what lateness costs.

    timestamp     nbgrader's `timestamp.txt` beside a submission (its own format, read with
                  its own parser), or a row of --timestamps CSV (`student_id,timestamp`)
    due           --due, ISO 8601 with a zone (a time without one is refused: whose 17:00?);
                  a student's own from --extensions CSV (`student_id,due`)
    policy        none    lateness is recorded, nothing is taken off
                  zero    a late submission scores 0
                  N%      N percent of the maximum per started day late, capped at the score

The journal keeps each student's timestamp and the policy last given (its facts), and every
output is made from both when it is written: a new due date, an extension or another
policy changes the scores at the next `autograde` or `grader publish`, without a regrade.
A submission without a timestamp is never late: nothing says when it came.
"""

import csv
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dateutil.parser

from grader.errors import GraderError

NONE, ZERO = "none", "zero"
PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
DAY_SECONDS = 24 * 3600
# What nbgrader's exchange writes into timestamp.txt (it reads it back with parse_utc).
NBGRADER_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"
TIMESTAMP_FILE = "timestamp.txt"
NUMERIC_ZONE = re.compile(r" [+-]\d\d:?\d\d$")


class LatenessError(GraderError, ValueError):
    """A due date, a timestamp or a policy the grader cannot read; the message says which."""


def parse_timestamp(text, where="timestamp"):
    """An aware UTC datetime from nbgrader's timestamp format (or ISO 8601); a time without
    a zone is read as UTC, as nbgrader reads it."""
    from nbgrader.utils import parse_utc  # here: nbgrader's package costs 0.7 s to import

    text = text.strip()
    try:
        if NUMERIC_ZONE.search(text):  # parse_utc would take +0100 for 100 seconds
            moment = dateutil.parser.parse(text).astimezone(UTC).replace(tzinfo=None)
        else:
            moment = parse_utc(text)
    except (ValueError, OverflowError, TypeError) as error:
        raise LatenessError(f"{where}: {text.strip()!r} is not a time") from error
    return moment.replace(tzinfo=UTC)


def parse_due(text, where="--due"):
    """An aware datetime from ISO 8601 with a zone, or LatenessError."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise LatenessError(f"{where}: {text!r} is not an ISO 8601 time, e.g."
                            " 2026-12-01T23:59:00+01:00") from error
    if moment.tzinfo is None:
        raise LatenessError(f"{where}: {text!r} has no time zone; add one, e.g. {text}Z"
                            f" for UTC or {text}+01:00")
    return moment.astimezone(UTC)


def parse_penalty(text):
    """`none`, `zero` or `N%` (per started day), as given; LatenessError otherwise."""
    text = text.strip().lower()
    match = PERCENT.match(text)
    if text in (NONE, ZERO) or (match and float(match.group(1)) <= 100):
        return text
    raise LatenessError(f"--late-penalty: {text!r} is not none, zero or a percentage per"
                        " day such as 10%")


def read_timestamp_file(folder):
    """The ISO text of nbgrader's timestamp.txt in `folder`, or "" when there is none."""
    path = Path(folder) / TIMESTAMP_FILE
    if not path.is_file():
        return ""
    try:
        return parse_timestamp(path.read_text(errors="replace")[:200], str(path)).isoformat()
    except LatenessError:
        return ""


def read_student_times(path, parse, column):
    """{student_id: ISO text} from a CSV `student_id,<column>` (a header row is optional)."""
    times = {}
    with open(path, newline="", encoding="utf-8-sig") as stream:
        for number, row in enumerate(csv.reader(stream), 1):
            if not row or (number == 1 and row[0].strip() == "student_id"):
                continue
            if len(row) < 2:
                raise LatenessError(f"{path} line {number}: expected student_id,{column}")
            times[row[0].strip()] = parse(row[1], f"{path} line {number}").isoformat()
    return times


@dataclass(frozen=True)
class LatePolicy:
    """The due date (ISO text, "" for none), the penalty and each extension's due date."""

    due: str = ""
    penalty: str = NONE
    extensions: dict = field(default_factory=dict)  # student_id -> ISO text

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, data):
        return cls(**data) if data else cls()

    def of_student(self, student_id):
        """The policy as it applies to one student: their due date and the penalty."""
        return LatePolicy(due=self.extensions.get(student_id) or self.due, penalty=self.penalty)

    def due_of(self, student_id):
        due = self.extensions.get(student_id) or self.due
        return datetime.fromisoformat(due) if due else None

    def lateness(self, student_id, timestamp, score, max_score):
        """(seconds late, points taken off) for a submission at `timestamp` (ISO or "")."""
        due = self.due_of(student_id)
        if not timestamp or due is None:
            return 0, 0.0
        late = max(0, math.ceil((datetime.fromisoformat(timestamp) - due).total_seconds()))
        return late, self.points_off(late, score, max_score)

    def points_off(self, late_seconds, score, max_score):
        if late_seconds <= 0 or self.penalty == NONE:
            return 0.0
        if self.penalty == ZERO:
            return float(score)
        days = math.ceil(late_seconds / DAY_SECONDS)
        percent = float(PERCENT.match(self.penalty).group(1))
        return float(min(score, round(max_score * percent / 100 * days, 6)))


def policy_from(stored, *, due=None, penalty=None, extensions=None):
    """The stored policy (journal facts) with what the instructor gives now put over it."""
    policy = LatePolicy.from_json(stored)
    changes = {}
    if due is not None:
        changes["due"] = parse_due(due).isoformat() if due else ""
    if penalty is not None:
        changes["penalty"] = parse_penalty(penalty)
    if extensions is not None:
        changes["extensions"] = read_student_times(extensions, parse_due, "due")
    return LatePolicy(**{**policy.to_json(), **changes})


def nbgrader_text(timestamp):
    """An ISO timestamp as nbgrader's timestamp.txt holds it."""
    return datetime.fromisoformat(timestamp).astimezone(UTC).strftime(NBGRADER_FORMAT)


def late_text(seconds):
    """How late, for people: '2 d 3 h 5 min' ('' when on time)."""
    if seconds <= 0:
        return ""
    days, rest = divmod(int(seconds), DAY_SECONDS)
    hours, rest = divmod(rest, 3600)
    minutes = math.ceil(rest / 60) if rest else 0
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "",
             f"{minutes} min" if minutes else ""]
    return " ".join(part for part in parts if part)
