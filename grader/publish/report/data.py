"""What the report shows, as plain data: read from the journal in OUT and the lab, nothing
else. No CSV is parsed back and no sentence is read for its meaning: mistakes are grouped by
the kind each verdict message names (grader.records.Message.kind, e.g. "model.units").

`read_report_data` opens the journal; `report_data` builds the same from records and facts
already in hand, which is what the page (grader.publish.report.page) is made from.
"""

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

from grader.errors import GraderError
from grader.lateness import LatePolicy, late_text
from grader.plugin import Lab
from grader.publish.journal import Journal, JournalError, StudentRecord
from grader.records import ERROR, GRADED, INVALID, STATUSES, TIMEOUT

NEEDS_REVIEW = (TIMEOUT, ERROR, INVALID)
MARKS = ("full", "partial", "zero")
SCORE_BINS = 10  # the histogram's bars, whatever the lab's maximum score
MOST_COMMON = 10  # mistake groups shown per exercise before "more"
# grader.publish.feedback.WRITTEN, as the journal stores it (that module imports nbconvert,
# which reading a report does not need).
PAGE_WRITTEN = "written"


class ReportError(GraderError, ValueError):
    """The grading output cannot be read as the grader writes it."""


@dataclass(frozen=True)
class RunFacts:
    """What the report says about the grading run; saved at grading time in the journal
    (fact "run") and in run.json."""

    graded_at: str  # ISO 8601, UTC, when grading started
    submissions: int
    wall_seconds: float
    workers: int
    sandbox: str  # the protections the kernels ran with, in a few words
    timeout: float
    cell_timeout: float
    memory_mb: int
    # Where each grading's hidden inputs came from (a secret per graded submission).
    hidden_inputs: str | None = None
    # grader.plugin.grading_version of this run, and the grader's package version and
    # grading ABI (grader.engine_version); None in the facts of an older grader.
    grading_version: str | None = None
    grader_version: str | None = None


@dataclass(frozen=True)
class ExerciseInfo:
    id: str  # e.g. "UNQ_C1"
    title: str  # e.g. "my_softmax"
    max_points: float


@dataclass(frozen=True)
class Student:
    """One student as the report shows them."""

    student_id: str
    status: str
    detail: str
    score: float
    points: dict  # exercise id -> points (0 where the journal has no verdict)
    batch: int  # the last batch whose submissions held this student
    graded_at: str
    feedback: str = ""  # the feedback page, relative to OUT; "" when there is none
    late: str = ""  # how late, when the journal says (the late penalty, in points)


@dataclass(frozen=True)
class ScoreBin:
    low: float
    high: float
    count: int


@dataclass(frozen=True)
class Scores:
    """The total scores of the students whose notebook ran (not invalid)."""

    count: int
    left_out: int  # invalid submissions, not in the scores
    mean: float
    median: float
    max_score: float
    bins: tuple  # of ScoreBin


@dataclass(frozen=True)
class ExerciseMarks:
    exercise: ExerciseInfo
    counts: dict  # "full", "partial", "zero" -> students

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, kind: str) -> float:
        return self.counts[kind] / self.total if self.total else 0.0


@dataclass(frozen=True)
class Wording:
    text: str  # one message text, with one or more students' own values in it
    students: tuple  # ids, sorted


@dataclass(frozen=True)
class MistakeGroup:
    """The students whose verdicts name one kind of mistake in one exercise."""

    kind: str  # e.g. "model.units"
    students: tuple  # ids, sorted; a student with several messages of the kind counts once
    wordings: tuple  # of Wording, the most common first

    @property
    def wording(self) -> str:
        return self.wordings[0].text


@dataclass(frozen=True)
class ExerciseMistakes:
    exercise: ExerciseInfo
    groups: tuple  # of MistakeGroup, the most widespread first

    @property
    def common(self) -> tuple:
        return self.groups[:MOST_COMMON]

    @property
    def rest(self) -> tuple:
        return self.groups[MOST_COMMON:]


@dataclass(frozen=True)
class LateRow:
    """One student's submission time, against their due date."""

    student_id: str
    timestamp: str  # ISO, UTC; "" when nothing said when
    due: str  # their due date (an extension's, if granted), "" when none
    late_seconds: int
    late: str  # for people: "1 d 2 h"
    penalty: float  # points taken off
    final_score: float


@dataclass(frozen=True)
class LateWork:
    due: str  # ISO, "" when no due date was given
    penalty: str  # none, zero or N%
    rows: tuple  # of LateRow, by id, every student
    late_count: int


@dataclass(frozen=True)
class ReportData:
    assignment: str
    exercises: tuple  # of ExerciseInfo, in the lab's order
    students: tuple  # of Student, by id
    status_counts: dict  # status -> students, for every status in STATUSES' order
    scores: Scores | None  # None when no submission ran
    marks: tuple  # of ExerciseMarks; empty when no submission ran
    mistakes: tuple  # of ExerciseMistakes, one per exercise
    needs_review: tuple  # of Student: timeout, error, invalid
    noted: tuple  # of Student: graded, with a note from the grader
    latest_batch: int | None  # the journal's last batch; None when it has none
    not_in_latest_batch: tuple  # of Student whose folder the latest batch did not hold
    run: RunFacts | None  # None when the run's facts were never saved
    runs: tuple = ()  # of RunFacts: every batch graded into OUT, the first first
    late_work: LateWork | None = None

    @property
    def scored(self) -> int:
        return self.scores.count if self.scores else 0


# ---------------------------------------------------------------- reading the journal

def read_report_data(*, out: str | Path, lab: Lab,
                     records: list[StudentRecord] | None = None) -> "ReportData":
    """The report's data from the journal in `out` (its `records` given when the caller
    read them already: at 100,000 students, a read is seconds); ReportError when it cannot
    be read."""
    out = Path(out)
    if not out.is_dir():
        raise ReportError(f"no grading output at {out}: the folder does not exist")
    if not Journal.exists(out):
        raise ReportError(f"no journal in {out}: grade the class there first "
                          "(python -m grader autograde SUBMISSIONS --out OUT)")
    try:
        with Journal(out) as journal:
            journal.check_lab(lab)
            records = journal.records() if records is None else records
            run = journal.fact("run")
            runs = journal.fact("runs")
            batches = journal.fact("batches")
            policy = LatePolicy.from_json(journal.fact("late_policy"))
    except JournalError as error:
        raise ReportError(str(error)) from None
    except (sqlite3.Error, ValueError, KeyError, TypeError) as error:
        raise ReportError(f"the journal in {out} cannot be read: {error}") from None
    if batches is not None and not _is_a(batches, int):
        raise ReportError(f"the journal in {out} holds a batch count that is not a number")
    every_run = [run_facts(facts, out) for facts in runs] if isinstance(runs, list) else []
    return report_data(records=records, lab=lab, latest_batch=batches,
                       run=run_facts(run, out) if run is not None else None,
                       runs=every_run, policy=policy)


def run_facts(data: Any, out: str | Path) -> RunFacts:
    """RunFacts from the journal's fact "run" (a dict of its fields)."""
    if not isinstance(data, dict) or not all(_is_a(data.get(field.name), field.type)
                                             for field in fields(RunFacts)):
        names = ", ".join(field.name for field in fields(RunFacts))
        raise ReportError(f"the journal in {out} does not hold the run's facts ({names})")
    values: dict[str, Any] = {field.name: data.get(field.name) for field in fields(RunFacts)}
    return RunFacts(**values)


def _is_a(value, kind):
    if kind is float:  # JSON writes 600.0 as 600
        kind = (int, float)
    if kind == int | None:
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    return isinstance(value, kind) and not isinstance(value, bool)


# ---------------------------------------------------------------- what the report counts

def report_data(*, records: list[StudentRecord], lab: Lab, latest_batch: int | None = None,
                run: RunFacts | None = None, runs: Sequence[RunFacts] = (),
                policy: LatePolicy | None = None) -> "ReportData":
    """ReportData from the journal's StudentRecords, the lab and the batches' facts."""
    exercises = tuple(ExerciseInfo(exercise, lab.exercise(exercise).title, lab.points[exercise])
                      for exercise in lab.exercise_ids)
    page = f"{Path(lab.notebook_name).stem}.html"
    policy = policy or LatePolicy()
    students = tuple(_student(record, exercises, page, policy.lateness(
                         record.student_id, record.timestamp, record.score, lab.max_score)[1])
                     for record in sorted(records, key=lambda record: record.student_id))
    scored = [record for record in records if record.status != INVALID]
    counts = Counter(student.status for student in students)
    order = {status: index for index, status in enumerate(STATUSES)}
    return ReportData(
        assignment=lab.assignment, exercises=exercises, students=students,
        status_counts={status: counts[status] for status in STATUSES},
        scores=scores(students, lab.max_score),
        marks=tuple(exercise_marks(students, exercise) for exercise in exercises)
        if scored else (),
        mistakes=tuple(ExerciseMistakes(exercise, mistake_groups(scored, exercise.id))
                       for exercise in exercises),
        needs_review=tuple(sorted((s for s in students if s.status in NEEDS_REVIEW),
                                  key=lambda s: (order[s.status], s.student_id))),
        noted=tuple(s for s in students if s.status == GRADED and s.detail),
        latest_batch=latest_batch,
        not_in_latest_batch=tuple(s for s in students
                                  if latest_batch is not None and s.batch < latest_batch),
        run=run, runs=tuple(runs) or ((run,) if run is not None else ()),
        late_work=late_work(records, lab, policy))


def late_work(records: list[StudentRecord], lab: Lab, policy: LatePolicy) -> LateWork:
    """When each student submitted, how late, and what it cost under `policy`."""
    rows = []
    for record in sorted(records, key=lambda record: record.student_id):
        late, penalty = policy.lateness(record.student_id, record.timestamp, record.score,
                                        lab.max_score)
        due = policy.due_of(record.student_id)
        rows.append(LateRow(record.student_id, record.timestamp,
                            due.isoformat() if due else "", late, late_text(late), penalty,
                            record.score - penalty))
    return LateWork(policy.due, policy.penalty, tuple(rows),
                    sum(row.late_seconds > 0 for row in rows))


def _student(record, exercises, page, penalty):
    verdicts = record.verdicts
    return Student(
        student_id=record.student_id, status=record.status, detail=record.detail,
        score=record.score, batch=record.batch, graded_at=record.graded_at,
        points={e.id: verdicts[e.id].points if e.id in verdicts else 0.0 for e in exercises},
        feedback=(f"feedback/{quote(record.student_id)}/{page}"
                  if record.feedback == PAGE_WRITTEN else ""),
        late=f"-{penalty:g}" if penalty > 0 else "")  # under the policy in force


def scored_students(students: Iterable["Student"]) -> list["Student"]:
    """Students with a score that means something: an invalid submission never ran."""
    return [student for student in students if student.status != INVALID]


def scores(students: Sequence["Student"], max_score: float) -> "Scores | None":
    """The Scores of the students that ran; None when none did."""
    scored = scored_students(students)
    if not scored:
        return None
    values = sorted(student.score for student in scored)
    middle = (values[(len(values) - 1) // 2] + values[len(values) // 2]) / 2
    return Scores(count=len(values), left_out=len(students) - len(scored),
                  mean=sum(values) / len(values), median=middle, max_score=max_score,
                  bins=score_bins(values, max_score))


def score_bins(values: list[float], max_score: float) -> tuple:
    """SCORE_BINS ScoreBins of equal width from 0 to `max_score`; the last holds the
    maximum (one bin when the maximum is 0)."""
    width = max_score / SCORE_BINS
    edges = [_whole(index * width) for index in range(SCORE_BINS)] if max_score > 0 else [0]
    bins = []
    for index, low in enumerate(edges):
        last = index == len(edges) - 1
        high = max_score if last else edges[index + 1]
        count = sum(low <= value < high or (last and value == high) for value in values)
        bins.append(ScoreBin(low, high, count))
    return tuple(bins)


def _whole(value):
    """A bin edge as an int when it is one (10, not 10.0), for the page's numbers."""
    return int(value) if float(value).is_integer() else value


def mark(points: float, max_points: float) -> str:
    if points >= max_points:
        return "full"
    return "zero" if points <= 0 else "partial"


def exercise_marks(students: Sequence["Student"], exercise: ExerciseInfo) -> "ExerciseMarks":
    """How many of the students that ran have full, partial and zero marks in `exercise`."""
    counts = Counter(mark(student.points[exercise.id], exercise.max_points)
                     for student in scored_students(students))
    return ExerciseMarks(exercise, {kind: counts[kind] for kind in MARKS})


def mistake_groups(records: list[StudentRecord], exercise: str) -> tuple:
    """The verdict messages of `exercise` in `records`, grouped by their kind, the most
    widespread first. Texts carry each student's own values, so a group keeps every
    wording with the students who got it."""
    by_kind: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for record in records:
        verdict = record.verdicts.get(exercise)
        for message in verdict.messages if verdict is not None else ():
            by_kind[message.kind][message.text].add(record.student_id)
    groups = [_mistake_group(kind, texts) for kind, texts in by_kind.items()]
    return tuple(sorted(groups, key=lambda group: (-len(group.students), group.kind)))


def _mistake_group(kind, texts):
    wordings = sorted((Wording(text, tuple(sorted(students)))
                       for text, students in texts.items()),
                      key=lambda wording: (-len(wording.students), wording.text))
    students = sorted({student for wording in wordings for student in wording.students})
    return MistakeGroup(kind=kind, students=tuple(students), wordings=tuple(wordings))
