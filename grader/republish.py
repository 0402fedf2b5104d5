"""What the instructor says about late work, and publishing OUT again without grading.

`python -m grader publish OUT` (publish_again) writes what the journal holds into the
gradebook (the rows it lacks, after a database outage), grades.csv, verdicts.json and the
report, with the late penalties computed again under the policy given.
"""

import logging
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from grader import logs
from grader.lateness import LatePolicy, parse_timestamp, policy_from, read_student_times
from grader.plugin import Lab
from grader.publish.class_files import LATE_POLICY, write_class_files
from grader.publish.gradebook import (
    check_gradebook,
    gradebook_url,
    open_results_course,
    results_course,
    write_lateness,
)
from grader.publish.journal import Journal, JournalError, StudentRecord
from grader.publish.publisher import Publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LateWork:
    """What the instructor says about late work, as given (None: keep the journal's)."""

    due: str | None = None  # ISO 8601 with a zone; "" removes the due date
    penalty: str | None = None  # none, zero or N% (per started day)
    extensions: str | None = None  # a CSV file: student_id,due
    timestamps_csv: str | None = None  # a CSV file: student_id,timestamp (LMS downloads)

    def policy(self, journal: Journal) -> LatePolicy:
        return policy_from(journal.fact(LATE_POLICY), due=self.due, penalty=self.penalty,
                           extensions=self.extensions)

    def timestamps(self) -> dict[str, str]:
        if not self.timestamps_csv:
            return {}
        return read_student_times(self.timestamps_csv, parse_timestamp, "timestamp")


def lateness_to_gradebook(db_url: str, lab: Lab, journal: Journal) -> str | None:
    """Write the late work into the gradebook; None, or why it could not."""
    try:
        write_lateness(db_url, lab, journal.records(),
                       LatePolicy.from_json(journal.fact(LATE_POLICY)))
    except Exception as error:
        log.error("the late work could not be written into the gradebook: %s", error)
        return str(error)
    return None



def publish_again(*, out: str | Path, lab: Lab, db: str | None = None,
                  late: "LateWork | None" = None) -> tuple[list[StudentRecord], str | None]:
    """Write what the journal in `out` holds into the gradebook (the rows it lacks: after a
    database outage), grades.csv, verdicts.json and the report, without grading; return
    (every record, why the gradebook stopped taking rows or None). The late penalties are
    computed again, under `late` (LateWork) put over the policy the journal keeps."""
    out = Path(out).resolve()
    if not Journal.exists(out):
        raise JournalError(f"no journal in {out}: grade the class there first")
    with logs.batch_log(out), Journal(out) as journal:
        journal.check_lab(lab)
        journal.set_fact(LATE_POLICY, (late or LateWork()).policy(journal).to_json())
        db_url = gradebook_url(out, db or journal.fact("db"))
        check_gradebook(db_url)
        ready: Future = Future()
        ready.set_result(open_results_course(out, lab, db_url))
        publisher = Publisher(out=out, lab=lab, journal=journal,
                              course=results_course(out, lab), gradebook_ready=ready,
                              db_url=db_url, version="", batch=0)
        publisher.close()  # writes the rows the gradebook lacks
        problem = publisher.gradebook_problem or lateness_to_gradebook(db_url, lab, journal)
        write_class_files(out, journal, lab)
        return journal.records(), problem
