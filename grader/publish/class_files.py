"""The files written for the whole class, from the journal, after each batch (and by
`grader publish` and a stopped batch): grades.csv, verdicts.json, the course's feedback
folders for nbgrader's release_feedback, the run's facts and the report."""

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from grader.lateness import LatePolicy
from grader.plugin import Lab
from grader.publish import report
from grader.publish.gradebook import results_course
from grader.publish.grades_csv import (
    GRADES_CSV,
    VERDICTS_JSON,
    write_grades_csv,
    write_verdicts_json,
)
from grader.publish.handback import write_course_feedback
from grader.publish.journal import Journal
from grader.publish.publisher import refresh_late_penalties
from grader.stage_clock import StageClock

log = logging.getLogger(__name__)
LATE_POLICY = "late_policy"  # the journal's fact: the policy last given


def write_class_files(out: str | Path, journal: Journal, lab: Lab, *,
                      facts: report.RunFacts | None = None,
                      clock: StageClock | None = None) -> None:
    """grades.csv, verdicts.json and the report, for every student the journal holds.
    The grades are what counts: a report that fails becomes a warning, not a failed batch.
    `clock` times each file."""
    clock = clock or StageClock()
    policy = LatePolicy.from_json(journal.fact(LATE_POLICY))
    with clock.stage("journal read"):  # once for every file: seconds at 100,000 students
        records = journal.records()
    try:
        with clock.stage("late penalties refresh"):
            refresh_late_penalties(out, lab, journal, results_course(out, lab), policy,
                                   records)
    except Exception:
        log.exception("feedback pages could not show the new late penalties")
    with clock.stage("grades.csv + verdicts.json"):
        write_grades_csv(Path(out) / GRADES_CSV, records, lab, policy)
    with clock.stage("course feedback folders"):
        write_course_feedback(out, lab, records, datetime.now(UTC).isoformat())
    with clock.stage("grades.csv + verdicts.json", count=0):
        write_verdicts_json(Path(out) / VERDICTS_JSON, records)
        if facts is not None:
            journal.set_fact("runs", _every_run(journal, asdict(facts)))  # before "run" changes
            journal.set_fact("run", asdict(facts))
            report.write_run_facts(out=out, facts=facts)
    try:
        with clock.stage("report"):
            report.write_report(out=out, lab=lab, records=records)
    except Exception:
        log.exception("the report could not be written; build it again with: python -m"
                      " grader report %s", out)


def _every_run(journal: Journal, facts: dict) -> list:
    """The facts of every batch graded into OUT, this one last (a journal from before
    they were kept holds only its latest batch's, which starts the list)."""
    runs = journal.fact("runs")
    if not isinstance(runs, list):
        earlier = journal.fact("run")
        runs = [earlier] if isinstance(earlier, dict) else []
    return [*runs, facts]
