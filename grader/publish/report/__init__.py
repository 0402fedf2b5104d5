"""The instructor's report: the class at a glance, in one HTML file.

    OUT/report.html   scores, marks per exercise, the commonest mistakes, the submissions to
                      look at by hand (and the students the latest batch did not hold) and
                      the facts of the run; figures embedded as PNG data: URIs, no external
                      CSS, JavaScript or fonts

It is built from the journal in OUT (grader.publish.journal) and the lab only, so `python -m
grader report OUT` can rebuild it at any time without grading again.

    data.py          what the report shows, as plain data; mistakes grouped by message kind
    figures.py       the two charts, written as SVG data: URIs
    page.py          the page, from report.html.j2 (Jinja2, autoescaped)
"""

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from grader.plugin import Lab
from grader.publish.files import atomic_text_file, write_atomically
from grader.publish.journal import StudentRecord
from grader.publish.report.data import ReportError, RunFacts, read_report_data

REPORT_HTML = "report.html"
RUN_JSON = "run.json"

__all__ = ["REPORT_HTML", "RUN_JSON", "ReportError", "RunFacts", "write_report",
           "write_run_facts"]


def write_run_facts(*, out: str | Path, facts: RunFacts) -> Path:
    """Save the run's facts beside the grades, for people and scripts to read."""
    path = Path(out) / RUN_JSON
    write_atomically(path, json.dumps(asdict(facts), indent=1) + "\n")
    return path


def write_report(*, out: str | Path, lab: Lab, generated_at: datetime | None = None,
                 records: list[StudentRecord] | None = None) -> Path:
    """Build OUT/report.html from the journal in `out` (its `records`, when read already);
    return its path."""
    from grader.publish.report import page  # Jinja2, and matplotlib when drawing

    data = read_report_data(out=out, lab=lab, records=records)
    path = Path(out) / REPORT_HTML
    with atomic_text_file(path) as file:
        page.write(data, file, generated_at=generated_at or datetime.now(UTC))
    return path
