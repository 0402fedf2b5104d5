"""The report's page: report.html.j2 rendered with the report's data and figures.

Jinja2 escapes everything it writes (autoescape), so whatever a student wrote or caused (ids,
details, messages) is shown as text, in content and in attributes alike. The page is one
self-contained file: its CSS inline, its figures data: URIs, no script, no external
resource, and a Content-Security-Policy that would keep any from loading.
"""

import functools
import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import jinja2

from grader.publish.report import figures
from grader.publish.report.data import MARKS, ReportData
from grader.records import STATUSES

TEMPLATE = "report.html.j2"


# Pieces of the page joined before each write: the template yields a piece per value.
PIECES_PER_WRITE = 4096


def render(data: ReportData, *, generated_at: datetime) -> str:
    """The page (str) for a data.ReportData, stamped with `generated_at` (a datetime)."""
    return "".join(_pieces(data, generated_at))


def write(data: ReportData, file: TextIO, *, generated_at: datetime) -> None:
    """Write the page into `file` as it is made, never whole in memory: the page of a class
    of 100,000 students is 60 MB of text, and its pieces, joined at once, held 330 MB."""
    pieces = _pieces(data, generated_at)
    while chunk := "".join(itertools.islice(pieces, PIECES_PER_WRITE)):
        file.write(chunk)


def _pieces(data, generated_at):
    stamp = generated_at.astimezone(UTC).isoformat(timespec="seconds")
    histogram = figures.score_histogram(data.scores) if data.scores else None
    marks_figure = figures.exercise_marks(data.marks) if data.marks else None
    return _environment().get_template(TEMPLATE).generate(
        data=data, stamp=stamp, statuses=STATUSES, marks=MARKS,
        histogram=histogram, marks_figure=marks_figure)


@functools.cache
def _environment():
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    environment.filters.update(number=number, when=when, percent=percent, students=students)
    return environment


def number(value: float) -> str:
    """A number as people write it: 50, 42.5, not 50.0."""
    return f"{value:.10g}"


def when(iso_time: str) -> str:
    return iso_time.replace("T", " ").replace("+00:00", " UTC")


def percent(share: float) -> str:
    return f"{share:.0%}"


def students(count: int) -> str:
    return f"{count} student{'s' if count != 1 else ''}"
