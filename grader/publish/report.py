"""The instructor's report: the class at a glance, in one HTML file.

    OUT/report.html   scores, marks per exercise, the commonest mistakes, the submissions to
                      look at by hand and the facts of the run; figures embedded as PNG
                      data: URIs, no external CSS, JavaScript or fonts

It is built only from files grading leaves in OUT, so `python -m grader report OUT` can
rebuild it at any time without grading again:

    grades.csv      scores, status and detail per student (the source of truth)
    verdicts.json   per student and exercise, the verdict messages (grader.publish.results)
    run.json        the facts of the grading run (written here, by autograde)

Everything a student wrote or caused (ids, details, messages) goes through html.escape.

Mistakes are grouped by their message with numbers and quoted names replaced by
placeholders (mistake_key): messages carry the student's own values ("layers[0] ('L1'):
expected 25 units, got 20."), so identical text alone would scatter one mistake over as many
rows as there are students. A group is shown by its most common wording.
"""

import base64
import html
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from grader.publish.files import write_atomically
from grader.publish.journal import Journal, JournalError
from grader.records import ERROR, GRADED, INVALID, STATUSES, TIMEOUT

REPORT_HTML = "report.html"
RUN_JSON = "run.json"
NEEDS_REVIEW = (TIMEOUT, ERROR, INVALID)
MARKS = ("full", "partial", "zero")
MARK_COLOURS = {"full": "#2e7d32", "partial": "#f9a825", "zero": "#c62828"}
SCORE_BIN_WIDTH = 10
MOST_COMMON = 10  # mistake groups shown per exercise before "more"


class ReportError(ValueError):
    """The grading output cannot be read as the grader writes it."""


@dataclass(frozen=True)
class RunFacts:
    """What the report says about the grading run; saved at grading time in run.json."""

    graded_at: str  # ISO 8601, UTC, when grading started
    submissions: int
    wall_seconds: float
    workers: int
    sandbox: str  # the protections the kernels ran with, in a few words
    timeout: float
    cell_timeout: float
    memory_mb: int
    # The seed of the batch's hidden inputs: secret while grading, kept afterwards so that
    # `autograde --hidden-seed` can repeat the batch exactly.
    hidden_seed: int | None = None


@dataclass(frozen=True)
class StudentRow:
    """One row of grades.csv, with that student's verdict messages per exercise."""

    student_id: str
    points: dict  # exercise -> points
    max_points: dict  # exercise -> points possible
    score: float
    max_score: float
    status: str
    detail: str
    messages: dict  # exercise -> tuple of messages (empty when not recorded)


@dataclass(frozen=True)
class GradingOutput:
    rows: list  # of StudentRow, by student id
    run: RunFacts | None  # None when the run's facts were never saved


# ---------------------------------------------------------------- entry points

def write_run_facts(*, out, facts):
    """Save the run's facts beside the grades, for people and scripts to read."""
    path = Path(out) / RUN_JSON
    write_atomically(path, json.dumps(asdict(facts), indent=1) + "\n")
    return path


def write_report(*, out, lab, generated_at=None):
    """Build OUT/report.html from the journal in `out`; return its path."""
    out = Path(out)
    grading = read_grading_output(out=out, lab=lab)
    generated_at = generated_at or datetime.now(UTC)
    path = out / REPORT_HTML
    write_atomically(path, report_html(grading=grading, generated_at=generated_at, lab=lab))
    return path


# ---------------------------------------------------------------- reading OUT

def read_grading_output(*, out, lab):
    out = Path(out)
    if not out.is_dir():
        raise ReportError(f"no grading output at {out}: the folder does not exist")
    if not Journal.exists(out):
        raise ReportError(f"no journal in {out}: grade the class there first "
                          "(python -m grader autograde SUBMISSIONS --out OUT)")
    try:
        with Journal(out) as journal:
            rows = [_student_row(record, lab) for record in journal.records()]
            run = journal.fact("run")
    except (JournalError, ValueError, KeyError, TypeError) as error:
        raise ReportError(f"the journal in {out} cannot be read: {error}") from None
    return GradingOutput(rows=rows, run=_run_facts(run, out) if run is not None else None)


def _run_facts(data, out):
    if not isinstance(data, dict) or not all(_is_a(data.get(field.name), field.type)
                                             for field in fields(RunFacts)):
        names = ", ".join(field.name for field in fields(RunFacts))
        raise ReportError(f"the journal in {out} does not hold the run's facts ({names})")
    return RunFacts(**{field.name: data.get(field.name) for field in fields(RunFacts)})


def _is_a(value, kind):
    if kind is float:  # JSON writes 600.0 as 600
        kind = (int, float)
    if kind == int | None:
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    return isinstance(value, kind) and not isinstance(value, bool)


def _student_row(record, lab):
    verdicts = record.verdicts
    return StudentRow(
        student_id=record.student_id,
        points={e: verdicts[e].points if e in verdicts else 0.0 for e in lab.exercise_ids},
        max_points={e: lab.points[e] for e in lab.exercise_ids},
        score=record.score, max_score=lab.max_score, status=record.status,
        detail=record.detail,
        messages={e: tuple(message.text for message in verdicts[e].messages)
                  if e in verdicts else () for e in lab.exercise_ids})


# ---------------------------------------------------------------- what the report counts

def scored_rows(rows):
    """Rows with a score that means something: an invalid submission never ran."""
    return [row for row in rows if row.status != INVALID]


def score_bins(scores, max_score):
    """(low, high, count) per bin of SCORE_BIN_WIDTH points; the last bin holds the maximum."""
    edges = list(range(0, int(max_score), SCORE_BIN_WIDTH)) or [0]
    bins = []
    for index, low in enumerate(edges):
        last = index == len(edges) - 1
        high = max_score if last else low + SCORE_BIN_WIDTH
        count = sum(low <= score < high or (last and score == high) for score in scores)
        bins.append((low, high, count))
    return bins


def mark(points, max_points):
    if points >= max_points:
        return "full"
    return "zero" if points <= 0 else "partial"


def exercise_marks(rows, exercise):
    """How many of `rows` have full, partial and zero marks in `exercise`."""
    counts = Counter(mark(row.points[exercise], row.max_points[exercise]) for row in rows)
    return {kind: counts[kind] for kind in MARKS}


# Numbers, with thousands separators, decimals and exponents, not inside names (L1, float32).
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
                     r"(?!\w)|\b(?:nan|inf)\b")
# A quote that opens after a non-word character: not the apostrophe of "layers' units".
_QUOTED = re.compile(r"(?<!\w)'[^'\n]*'(?!\w)")
_NUMBER_RUN = re.compile(r"#\.?(?:\s*,\s*#\.?)+")  # 1, 2, 3 and NumPy's "[1. , 6.094]"
_NUMBER_ARRAY = re.compile(r"\[[#\s,.]*\]")


def mistake_key(message):
    """What a message says once the student's own numbers and names are taken out."""
    key = _QUOTED.sub("'…'", message)
    key = _NUMBER.sub("#", key)
    key = _NUMBER_RUN.sub("#", key)
    key = _NUMBER_ARRAY.sub("[#]", key)
    key = key.replace("#.", "#")  # "got 20." and "got 2.5." end the same sentence
    return " ".join(key.split())


@dataclass(frozen=True)
class MistakeGroup:
    wording: str  # the group's most common message
    students: tuple  # student ids, sorted
    wordings: tuple  # (message, student ids) per distinct message, most common first


def mistake_groups(rows, exercise):
    """The messages of `exercise` grouped by mistake_key, the most widespread first."""
    by_key = defaultdict(lambda: defaultdict(set))  # key -> message -> students
    for row in rows:
        for message in row.messages[exercise]:
            by_key[mistake_key(message)][message].add(row.student_id)
    groups = [_mistake_group(messages) for messages in by_key.values()]
    return sorted(groups, key=lambda group: (-len(group.students), group.wording))


def _mistake_group(messages):
    wordings = sorted(((message, tuple(sorted(students)))
                       for message, students in messages.items()),
                      key=lambda item: (-len(item[1]), item[0]))
    students = sorted({student for _, ids in wordings for student in ids})
    return MistakeGroup(wording=wordings[0][0], students=tuple(students),
                        wordings=tuple(wordings))


# ---------------------------------------------------------------- figures

def png_data_uri(figure):
    buffer = io.BytesIO()
    # No metadata: the same grades give the same bytes, so a rebuilt report is identical.
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def new_figure(*, width, height):
    # Imported here: matplotlib takes a third of a second to import, which every command
    # that imports this module for ReportError would pay. A Figure of its own, not pyplot:
    # no global state, no display, and savefig draws with Agg.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def score_histogram_figure(bins):
    figure = new_figure(width=7, height=3)
    axes = figure.add_subplot()
    lows = [low for low, _, _ in bins]
    axes.bar(lows, [count for _, _, count in bins], width=SCORE_BIN_WIDTH, align="edge",
             color="#1565c0", edgecolor="white")
    axes.set_xlim(0, bins[-1][1])
    axes.set_xticks([*lows, bins[-1][1]])
    axes.set_xlabel("total score")
    axes.set_ylabel("submissions")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def exercise_marks_figure(marks, lab):
    """One horizontal bar per exercise, split into shares of full, partial and zero marks."""
    figure = new_figure(width=7, height=0.9 + 0.6 * len(marks))
    axes = figure.add_subplot()
    labels = [f"{exercise} {lab.exercise(exercise).title}" for exercise in marks]
    left = [0.0] * len(marks)
    for kind in MARKS:
        shares = [_share(counts[kind], sum(counts.values())) for counts in marks.values()]
        bars = axes.barh(labels, shares, left=left, color=MARK_COLOURS[kind], label=kind)
        axes.bar_label(bars, labels=[f"{share:.0%}" if share >= 0.06 else "" for share in shares],
                       label_type="center", color="white")
        left = [start + share for start, share in zip(left, shares, strict=True)]
    axes.set_xlim(0, 1)
    axes.xaxis.set_major_formatter("{x:.0%}")
    axes.invert_yaxis()
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncols=len(MARKS),
                frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def _share(count, total):
    return count / total if total else 0.0


# ---------------------------------------------------------------- the page

def report_html(*, grading, generated_at, lab):
    rows = grading.rows
    sections = [_summary_section(rows), _scores_section(rows), _exercises_section(rows, lab),
                _mistakes_section(grading, lab), _review_section(rows), _run_section(grading)]
    stamp = generated_at.astimezone(UTC).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{lab.assignment}: grading report</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{lab.assignment}: the class at a glance</h1>
<p id="generated">Built <time id="generated-at" datetime="{stamp}">{_when(stamp)}</time> from
the grading journal; rebuild it with <code>python -m grader report OUT</code>.</p>
</header>
<main>
{"".join(sections)}</main>
</body>
</html>
"""


STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       margin: 0 auto; max-width: 60em; padding: 1em 1.5em 3em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
#generated, .note { color: #555; }
table { border-collapse: collapse; margin: 0.8em 0; width: 100%; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.3em 0.6em; text-align: left;
         vertical-align: top; }
td.count, th.count { text-align: right; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; }
.status-timeout, .status-error, .status-invalid { font-weight: 600; color: #c62828; }
.students { font-size: 0.9em; color: #444; }
details { margin: 0.3em 0; }
summary { cursor: pointer; color: #1565c0; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1.2em; }
dt { font-weight: 600; }
dd { margin: 0; }
"""


def _e(text):
    """Student-provided text (ids, details, messages), safe in content and attributes."""
    return html.escape(str(text), quote=True)


def _when(iso_time):
    return iso_time.replace("T", " ").replace("+00:00", " UTC")


def _number(value):
    return f"{value:.10g}"


def _students_text(count):
    return f"{count} student{'s' if count != 1 else ''}"


def _summary_section(rows):
    counts = Counter(row.status for row in rows)
    parts = ", ".join(f'<span data-status="{status}">{counts[status]} {status}</span>'
                      for status in STATUSES)
    return (f'<section id="summary"><p><strong id="total-submissions" data-count="{len(rows)}">'
            f"{len(rows)} submissions</strong>: {parts}.</p></section>\n")


def _scores_section(rows):
    scored = scored_rows(rows)
    head = "<section id=\"scores\"><h2>Scores</h2>\n"
    if not scored:
        return (head + '<p id="no-scores" class="note">No submission could be graded (every '
                "one is invalid), so there are no scores to show.</p></section>\n")
    scores = sorted(row.score for row in scored)
    max_score = max(row.max_score for row in scored)
    bins = score_bins(scores, max_score)
    mean = sum(scores) / len(scores)
    median = (scores[(len(scores) - 1) // 2] + scores[len(scores) // 2]) / 2
    left_out = len(rows) - len(scored)
    note = (f" The {left_out} invalid submission{'s are' if left_out != 1 else ' is'} "
            "left out: there was nothing to run." if left_out else "")
    table = "".join(f'<tr class="score-bin" data-low="{_number(low)}" data-high="{_number(high)}"'
                    f' data-count="{count}"><td>{_number(low)}–{_number(high)}</td>'
                    f'<td class="count">{count}</td></tr>' for low, high, count in bins)
    return (head + f'<p>Total scores of the <span id="scored-count" data-count="{len(scored)}">'
            f"{len(scored)}</span> submissions that ran: mean "
            f'<span id="mean-score">{mean:.1f}</span>, median '
            f'<span id="median-score">{_number(median)}</span> out of {_number(max_score)}.'
            f"{note}</p>\n"
            f'<img id="score-histogram" alt="Histogram of total scores" '
            f'src="{png_data_uri(score_histogram_figure(bins))}">\n'
            f'<details><summary>The histogram as a table</summary><table id="score-bins">'
            f'<tr><th>score</th><th class="count">submissions</th></tr>{table}</table>'
            "</details></section>\n")


def _exercises_section(rows, lab):
    scored = scored_rows(rows)
    head = '<section id="exercises"><h2>Marks per exercise</h2>\n'
    if not scored:
        return (head + '<p id="no-marks" class="note">No submission could be graded, so '
                "there are no marks to show.</p></section>\n")
    marks = {exercise: exercise_marks(scored, exercise) for exercise in lab.exercise_ids}
    header = "".join(f'<th class="count">{kind}</th>' for kind in MARKS)
    body = "".join(_marks_row(exercise, counts, lab) for exercise, counts in marks.items())
    return (head + f"<p>Share of the {len(scored)} submissions that ran with full, partial and "
            "zero marks in each exercise.</p>\n"
            f'<img id="exercise-marks-figure" alt="Full, partial and zero marks per exercise" '
            f'src="{png_data_uri(exercise_marks_figure(marks, lab))}">\n'
            f'<table id="exercise-marks"><tr><th>exercise</th>{header}</tr>{body}</table>'
            "</section>\n")


def _marks_row(exercise, counts, lab):
    total = sum(counts.values())
    cells = "".join(f'<td class="count" data-marks="{kind}" data-count="{counts[kind]}">'
                    f"{counts[kind]} ({_share(counts[kind], total):.0%})</td>" for kind in MARKS)
    title = lab.exercise(exercise).title
    return f'<tr data-exercise="{exercise}"><th>{exercise} {title}</th>{cells}</tr>'


def _mistakes_section(grading, lab):
    head = ('<section id="mistakes"><h2>Where students went wrong</h2>\n'
            "<p class=\"note\">The verdicts' messages per exercise, the most widespread first. "
            "Messages that differ only in numbers or quoted names (a student's values, layer "
            "names, variable names) count as one mistake, shown in its most common wording."
            "</p>\n")
    scored = scored_rows(grading.rows)
    return head + "".join(_exercise_mistakes(scored, exercise, lab)
                          for exercise in lab.exercise_ids) + "</section>\n"


def _exercise_mistakes(rows, exercise, lab):
    groups = mistake_groups(rows, exercise)
    title = f"{exercise} {lab.exercise(exercise).title}"
    head = f'<section class="exercise-mistakes" data-exercise="{exercise}"><h3>{title}</h3>\n'
    if not groups:
        return head + '<p class="no-mistakes">No mistakes: every submission that ran got full ' \
                      "marks.</p></section>\n"
    table_head = ('<tr><th>mistake</th><th class="count">students</th><th>who</th></tr>')
    common = "".join(_mistake_row(group) for group in groups[:MOST_COMMON])
    page = head + f'<table class="mistakes">{table_head}{common}</table>\n'
    rest = groups[MOST_COMMON:]
    if rest:
        others = "".join(_mistake_row(group) for group in rest)
        page += (f'<details class="more-mistakes"><summary>{len(rest)} less common '
                 f'mistakes</summary><table class="mistakes">{table_head}{others}</table>'
                 "</details>\n")
    return page + "</section>\n"


def _mistake_row(group):
    wording = f'<span class="wording">{_e(group.wording)}</span>'
    if len(group.wordings) > 1:
        variants = "".join(f'<li><span class="variant">{_e(message)}</span> <span '
                           f'class="students">({_student_list(ids)})</span></li>'
                           for message, ids in group.wordings)
        wording += (f"<details><summary>{len(group.wordings)} wordings</summary><ul>"
                    f"{variants}</ul></details>")
    return (f'<tr class="mistake" data-students="{len(group.students)}"><td>{wording}</td>'
            f'<td class="count">{_students_text(len(group.students))}</td>'
            f'<td class="students">{_student_list(group.students)}</td></tr>')


def _student_list(student_ids):
    return ", ".join(f'<span class="student" data-student="{_e(student)}">{_e(student)}</span>'
                     for student in student_ids)


def _review_section(rows):
    counts = Counter(row.status for row in rows)
    status_rows = "".join(f'<tr data-status="{status}"><th>{status}</th>'
                          f'<td class="count" data-count="{counts[status]}">{counts[status]}'
                          "</td></tr>" for status in STATUSES)
    page = ('<section id="review"><h2>Submissions to look at by hand</h2>\n'
            f'<table id="status-counts">{status_rows}</table>\n')
    order = {status: index for index, status in enumerate(STATUSES)}
    review = sorted((row for row in rows if row.status in NEEDS_REVIEW),
                    key=lambda row: (order[row.status], row.student_id))
    if review:
        page += ("<p>These timed out, failed or could not be read: their scores are not the "
                 "student's work, and each needs a look.</p>\n"
                 + _rows_table("needs-review", review))
    else:
        page += '<p id="needs-review-none">No submission timed out, failed or was invalid.</p>\n'
    noted = [row for row in rows if row.status == GRADED and row.detail]
    if noted:
        page += ("<p>Graded, with a note from the grader (a renamed notebook, a restored test "
                 "cell, a cell stopped for time):</p>\n" + _rows_table("graded-with-notes", noted))
    return page + "</section>\n"


def _rows_table(table_id, rows):
    body = "".join(f'<tr class="submission" data-student="{_e(row.student_id)}" '
                   f'data-status="{row.status}"><td>{_e(row.student_id)}</td>'
                   f'<td class="status-{row.status}">{row.status}</td>'
                   f'<td class="count">{_number(row.score)}</td>'
                   f'<td class="detail">{_e(row.detail)}</td></tr>' for row in rows)
    return (f'<table id="{table_id}"><tr><th>student</th><th>status</th>'
            f'<th class="count">score</th><th>why</th></tr>{body}</table>\n')


def _run_section(grading):
    head = '<section id="run"><h2>The grading run</h2>\n'
    run = grading.run
    if run is None:
        return (head + '<p id="no-run-facts" class="note">The journal holds no facts of the'
                " grading run: when and how it ran is not known.</p></section>\n")
    per_submission = run.wall_seconds / run.submissions if run.submissions else 0.0
    facts = [
        ("graded_at", "When", _when(run.graded_at)),
        ("submissions", "Submissions", str(run.submissions)),
        ("wall_seconds", "Wall time",
         f"{run.wall_seconds:.1f} s ({per_submission:.2f} s per submission)"),
        ("workers", "Workers", str(run.workers)),
        ("sandbox", "Sandbox", run.sandbox),
        ("limits", "Limits", f"{_number(run.timeout)} s per submission, "
                             f"{_number(run.cell_timeout)} s per cell, {run.memory_mb} MB"),
        ("hidden_seed", "Hidden tests' seed",
         "not recorded" if run.hidden_seed is None else str(run.hidden_seed)),
    ]
    items = "".join(f'<dt>{label}</dt><dd data-fact="{name}">{_e(value)}</dd>'
                    for name, label, value in facts)
    return head + f'<dl id="run-facts">{items}</dl></section>\n'
