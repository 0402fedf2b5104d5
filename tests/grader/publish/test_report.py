"""The instructor's report (grader/publish/report/): OUT/report.html, read back from its HTML.

Each test writes a journal by hand (grader.publish.journal: the students' records and the
batch's facts), which is all the report reads, and builds the report from it: no grading.
Counts and messages are parsed from the page's ids, classes and data- attributes, never
searched for as text, so a page that only looks right does not pass.
"""

import base64
import logging
import re
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest
from report_page import (
    exercise_marks,
    images,
    listed_submissions,
    mistakes,
    parse,
    run_facts,
    score_bins,
    status_counts,
)

from grader import cli, logs, pipeline
from grader.labs.c2_w2 import LAB
from grader.publish import report
from grader.publish.grades_csv import GRADES_CSV
from grader.publish.journal import FILE as JOURNAL_FILE
from grader.publish.journal import Journal
from grader.publish.report import figures, page
from grader.publish.report.data import (
    ExerciseInfo,
    ExerciseMarks,
    ScoreBin,
    Scores,
    read_report_data,
)
from grader.records import (
    ERROR,
    GRADED,
    INVALID,
    STATUSES,
    TIMEOUT,
    ExerciseVerdict,
    Message,
    StudentResult,
)

CHROMIUM = Path("/usr/bin/chromium")
FIGURE_IDS = {"score-histogram", "exercise-marks-figure"}
HOSTILE_ID = "\"><img src=x onerror=alert(1)>&amp;"
HOSTILE_TEXT = "</td></tr><script>alert(2)</script><b onclick='x'>"
HOSTILE_KIND = "model.<i>units</i>\" onmouseover=\"alert(3)"
FACTS = report.RunFacts(graded_at="2026-01-31T09:30:00+00:00", submissions=4,
                        wall_seconds=4.2, workers=2, sandbox="cgroups", timeout=600,
                        cell_timeout=60, memory_mb=4096,
                        hidden_inputs="a fresh random 128-bit secret per graded submission",
                        grading_version="abi1/0123456789ab", grader_version="0.10.0+abi1")
BUILT = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------- journals by hand

def verdict(exercise, points, *messages):
    """An ExerciseVerdict; messages are (kind, text) pairs."""
    return ExerciseVerdict(exercise, points, 50, tuple(Message(*message) for message in messages))


def student(student_id, c1=50, c2=50, *, status=GRADED, detail="", m1=(), m2=()):
    return StudentResult(student_id, status, detail, {
        "UNQ_C1": verdict("UNQ_C1", c1, *m1), "UNQ_C2": verdict("UNQ_C2", c2, *m2)})


def invalid(student_id, detail="the notebook is not valid JSON"):
    return StudentResult(student_id, INVALID, detail)


def write_journal(out, results, *, facts=FACTS, batches=1, batch_of=None):
    """A journal in `out` as grading leaves it: each result saved in `batch_of[id]` (by
    default the latest), the batch count and the run's facts (None: never saved)."""
    batch_of = batch_of or {}
    with Journal(out) as journal:
        if batches is not None:
            journal.set_fact("batches", batches)
        if facts is not None:
            journal.set_fact("run", asdict(facts))
        for result in results:
            journal.record(result, version="test", batch=batch_of.get(result.student_id,
                                                                      batches or 1),
                           has_notebook=result.status != INVALID, feedback="written")
    return out


def build(out, results=(), **journal):
    write_journal(out, results, **journal)
    return parse(report.write_report(out=out, lab=LAB, generated_at=BUILT))


UNITS = "model.units"


def wrong_units(student_id, name, units):
    return student(student_id, c2=0, m2=[(UNITS, f"layers[0] ('{name}'): expected 25 units,"
                                                 f" got {units}.")])


# ---------------------------------------------------------------- what the page counts

def test_a_class_is_counted_by_status_score_and_mark(tmp_path):
    results = [student("full"), student("half", c1=25, m1=[("softmax.values", "half right")]),
               student("none", c1=0, c2=0, m1=[("softmax.missing", "no my_softmax")],
                       m2=[("model.missing", "no model")]),
               student("slow", c2=0, status=TIMEOUT, detail="ran past 600 s",
                       m2=[("run.notebook_timed_out", "out of time")]),
               student("boom", c1=0, c2=0, status=ERROR, detail="the kernel died",
                       m1=[("run.kernel_died", "died")], m2=[("run.kernel_died", "died")]),
               student("renamed", detail="graded C2_W2_Assignment (1).ipynb"),
               invalid("broken")]
    page = build(tmp_path, results)
    assert status_counts(page) == {GRADED: 4, TIMEOUT: 1, ERROR: 1, INVALID: 1}
    assert int(page.find(id="total-submissions").attrs["data-count"]) == 7
    # Scores of the six that ran: 100, 75, 0, 50, 0, 100.
    assert int(page.find(id="scored-count").attrs["data-count"]) == 6
    assert float(page.find(id="mean-score").text()) == pytest.approx(325 / 6, abs=0.05)
    assert float(page.find(id="median-score").text()) == 62.5
    bins = score_bins(page)
    assert len(bins) == 10 and bins[-1][:2] == (90, 100)
    assert {low: count for low, _, count in bins if count} == {0: 2, 50: 1, 70: 1, 90: 2}
    assert exercise_marks(page) == {"UNQ_C1": {"full": 3, "partial": 1, "zero": 2},
                                    "UNQ_C2": {"full": 3, "partial": 0, "zero": 3}}
    assert set(images(page)) == FIGURE_IDS
    assert all(src.startswith("data:image/svg+xml;base64,") for src in images(page).values())
    assert listed_submissions(page, "needs-review") == {
        "slow": (TIMEOUT, "ran past 600 s"), "boom": (ERROR, "the kernel died"),
        "broken": (INVALID, "the notebook is not valid JSON")}
    assert list(listed_submissions(page, "needs-review")) == ["slow", "boom", "broken"]
    assert listed_submissions(page, "graded-with-notes") == {
        "renamed": (GRADED, "graded C2_W2_Assignment (1).ipynb")}
    # The invalid one never ran: it has no mistakes, whatever its verdicts would say.
    assert {kind: students for kind, _, _, students, _ in mistakes(page, "UNQ_C1")} == {
        "run.kernel_died": ["boom"], "softmax.missing": ["none"], "softmax.values": ["half"]}


def test_a_batch_of_one(tmp_path):
    page = build(tmp_path, [wrong_units("solo", "L1", 20)])
    assert status_counts(page) == {GRADED: 1, TIMEOUT: 0, ERROR: 0, INVALID: 0}
    assert [count for _, _, count in score_bins(page) if count] == [1]
    assert exercise_marks(page) == {"UNQ_C1": {"full": 1, "partial": 0, "zero": 0},
                                    "UNQ_C2": {"full": 0, "partial": 0, "zero": 1}}
    assert mistakes(page, "UNQ_C1") == []
    assert page.find("section", class_="exercise-mistakes", data_exercise="UNQ_C1").find(
        "p", class_="no-mistakes")
    [(kind, wording, _, students, count)] = mistakes(page, "UNQ_C2")
    assert (kind, wording, students, count) == (
        UNITS, "layers[0] ('L1'): expected 25 units, got 20.", ["solo"], 1)
    assert page.find(id="needs-review-none")


def test_a_report_with_zero_students(tmp_path):
    page = build(tmp_path, [])
    assert int(page.find(id="total-submissions").attrs["data-count"]) == 0
    assert status_counts(page) == dict.fromkeys(STATUSES, 0)
    assert images(page) == {} and not page.find_all(id="score-bins")
    assert page.find(id="no-scores").text() and page.find(id="no-marks").text()
    for exercise in LAB.exercise_ids:
        assert mistakes(page, exercise) == []
    assert page.find(id="needs-review-none")
    assert not page.find_all(id="not-in-latest-batch") and not page.find_all(
        id="not-in-latest-batch-none")
    assert run_facts(page)["submissions"] == "4"  # the facts are the journal's, as saved


def test_an_all_invalid_batch_reports_without_figures(tmp_path):
    page = build(tmp_path, [invalid("a"), invalid("b", "the answer cells are missing")])
    assert status_counts(page)[INVALID] == 2
    assert listed_submissions(page, "needs-review") == {
        "a": (INVALID, "the notebook is not valid JSON"),
        "b": (INVALID, "the answer cells are missing")}
    assert images(page) == {}
    assert page.find(id="no-scores").text() and page.find(id="no-marks").text()


# ---------------------------------------------------------------- mistakes, by kind

def test_messages_of_one_kind_are_one_mistake_whatever_their_numbers(tmp_path):
    activation = "model.hidden_activation"
    results = [wrong_units("ann", "dense", 20), wrong_units("bob", "dense", 20),
               wrong_units("cy", "L1", 2_000),
               # Two messages of one kind: one student, counted once, with both wordings.
               student("dee", c2=0, m2=[
                   (activation, "layers[1] ('dense_1'): expected ReLU, got sigmoid."),
                   (activation, "layers[2] ('dense_2'): expected ReLU, got sigmoid.")]),
               # The same words as ann's under another kind: another mistake.
               student("eve", c2=0, m2=[("model.parameters",
                                         "layers[0] ('dense'): expected 25 units, got 20.")])]
    page = build(tmp_path, results)
    rows = mistakes(page, "UNQ_C2")
    # The widespread mistake first, in its most common wording; then by kind.
    assert [(kind, wording, students, count) for kind, wording, _, students, count in rows] == [
        (UNITS, "layers[0] ('dense'): expected 25 units, got 20.", ["ann", "bob", "cy"], 3),
        (activation, "layers[1] ('dense_1'): expected ReLU, got sigmoid.", ["dee"], 1),
        ("model.parameters", "layers[0] ('dense'): expected 25 units, got 20.", ["eve"], 1)]
    assert rows[0][2] == ["layers[0] ('dense'): expected 25 units, got 20.",
                          "layers[0] ('L1'): expected 25 units, got 2000."]
    assert rows[1][2] == ["layers[1] ('dense_1'): expected ReLU, got sigmoid.",
                          "layers[2] ('dense_2'): expected ReLU, got sigmoid."]
    # Who got which wording.
    group = page.find("tr", class_="mistake", data_kind=UNITS)
    wordings = {item.find("span", class_="variant").text():
                [span.attrs["data-student"] for span in item.find_all("span", class_="student")]
                for item in group.find_all("li")}
    assert wordings == {"layers[0] ('dense'): expected 25 units, got 20.": ["ann", "bob"],
                        "layers[0] ('L1'): expected 25 units, got 2000.": ["cy"]}


def test_the_ten_most_widespread_mistakes_come_first_the_rest_under_more(tmp_path):
    # Kind k07 is the mistake of 8 students, k00 of 1 ... twelve kinds in all.
    results = [student(f"s{number:02d}", c1=0, m1=[(f"k{kind:02d}", f"mistake {kind}")
                                                    for kind in range(12) if number <= kind])
               for number in range(12)]
    page = build(tmp_path, results)
    rows = mistakes(page, "UNQ_C1")
    assert [kind for kind, *_ in rows] == [f"k{kind:02d}" for kind in range(11, -1, -1)]
    assert [count for *_, count in rows] == list(range(12, 0, -1))
    section = page.find("section", class_="exercise-mistakes", data_exercise="UNQ_C1")
    more = section.find("details", class_="more-mistakes")
    assert [row.attrs["data-kind"] for row in more.find_all("tr", class_="mistake")] == [
        "k01", "k00"]


# ---------------------------------------------------------------- batches

def test_students_not_in_the_latest_batch_are_listed_and_still_counted(tmp_path):
    results = [student("now"), student("then", c1=0, m1=[("softmax.values", "wrong")]),
               invalid("long_ago"), student("also_now")]
    page = build(tmp_path, results, batches=3, batch_of={"then": 2, "long_ago": 1})
    table = page.find("table", id="not-in-latest-batch")
    listed = {row.attrs["data-student"]: (row.attrs["data-status"], int(row.attrs["data-batch"]))
              for row in table.find_all("tr", class_="submission")}
    assert listed == {"long_ago": (INVALID, 1), "then": (GRADED, 2)}
    assert int(page.find(id="earlier-batches").attrs["data-count"]) == 2
    assert int(page.find(id="total-submissions").attrs["data-count"]) == 4
    assert [students for *_, students, _ in mistakes(page, "UNQ_C1")] == [["then"]]
    assert run_facts(page)["batch"].startswith("3")
    assert not page.find_all(id="not-in-latest-batch-none")


def test_when_every_student_was_in_the_latest_batch_the_page_says_so(tmp_path):
    page = build(tmp_path, [student("a"), student("b")], batches=2)
    assert page.find(id="not-in-latest-batch-none")
    assert not page.find_all(id="not-in-latest-batch") and not page.find_all(id="earlier-batches")


# ---------------------------------------------------------------- safety and shape

def test_student_text_is_escaped(tmp_path):
    hostile = student(HOSTILE_ID, c1=0, detail=HOSTILE_TEXT, m1=[(HOSTILE_KIND, HOSTILE_TEXT)])
    results = [hostile, invalid(HOSTILE_ID + "2", HOSTILE_TEXT)]
    page = build(tmp_path, results, batches=2, batch_of={HOSTILE_ID + "2": 1})
    assert not page.find_all("script") and not page.find_all("b") and not page.find_all("i")
    assert set(images(page)) == FIGURE_IDS  # no <img> but the figures
    assert not [element for element in page.iter()
                if any(name.startswith("on") for name in element.attrs)]
    # The text survives, shown as text.
    [(kind, wording, _, students, _)] = mistakes(page, "UNQ_C1")
    assert (kind, wording, students) == (HOSTILE_KIND, HOSTILE_TEXT, [HOSTILE_ID])
    assert page.find("code", class_="kind").text() == HOSTILE_KIND
    assert listed_submissions(page, "needs-review") == {HOSTILE_ID + "2": (INVALID, HOSTILE_TEXT)}
    assert listed_submissions(page, "graded-with-notes") == {HOSTILE_ID: (GRADED, HOSTILE_TEXT)}
    table = page.find("table", id="not-in-latest-batch")
    assert [row.attrs["data-student"] for row in table.find_all("tr", class_="submission")] == [
        HOSTILE_ID + "2"]


def test_the_page_is_self_contained(tmp_path):
    page = build(tmp_path, [student("a"), wrong_units("b", "L1", 20)])
    tags = {element.tag for element in page.iter()}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base", "form"}
    for element in page.iter():
        for name in ("src", "href", "srcset", "action"):
            value = element.attrs.get(name, "data:")
            if name == "href" and element.attrs.get("class") == "feedback":  # in OUT, beside
                value = value.removeprefix("feedback/")
                assert "/" in value and ":" not in value and ".." not in value, element.attrs
                continue
            assert value.startswith("data:"), element.attrs
    [policy] = page.find_all("meta", http_equiv="Content-Security-Policy")
    assert "default-src 'none'" in policy.attrs["content"]
    assert page.find("time", id="generated-at").attrs["datetime"] == BUILT.isoformat()


def test_rebuilding_gives_the_same_page(tmp_path):
    out = write_journal(tmp_path / "out", [student("a"), wrong_units("b", "L1", 20),
                                           student("c", c1=25, m1=[("softmax.values", "x")])])
    first = report.write_report(out=out, lab=LAB, generated_at=BUILT).read_bytes()
    again = report.write_report(out=out, lab=LAB, generated_at=BUILT).read_bytes()
    assert first == again  # figures included: no metadata, no time in the PNGs
    # The real command, in another process, later: only the build time differs.
    result = subprocess.run([sys.executable, "-m", "grader", "report", str(out)],
                            capture_output=True, text=True, cwd=LAB.root, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Report: {out / report.REPORT_HTML}"
    assert (_without_build_time((out / report.REPORT_HTML).read_text(encoding="utf-8"))
            == _without_build_time(first.decode("utf-8")))


class _Chunks:
    def __init__(self):
        self.chunks = []

    def write(self, text):
        self.chunks.append(text)


def test_a_large_class_is_written_a_part_at_a_time(tmp_path):
    # 100,000 students' page is 60 MB of text; its pieces joined at once held 330 MB.
    results = [wrong_units(f"s{number:04d}", "L1", 20) if number % 3 else student(
        f"s{number:04d}") for number in range(1500)]
    out = write_journal(tmp_path / "out", results)
    data = read_report_data(out=out, lab=LAB)
    file = _Chunks()
    page.write(data, file, generated_at=BUILT)
    whole = page.render(data, generated_at=BUILT)
    assert "".join(file.chunks) == whole  # the same page, whether written or rendered
    assert len(file.chunks) > 3 and max(map(len, file.chunks)) < len(whole) / 3
    assert (report.write_report(out=out, lab=LAB, generated_at=BUILT)
            .read_text(encoding="utf-8") == whole)


def _without_build_time(text):
    stamp = re.compile(r'<time id="generated-at"[^>]*>[^<]*</time>')
    assert len(stamp.findall(text)) == 1
    return stamp.sub("", text)


def test_the_run_facts_saved_at_grading_time_are_shown(tmp_path):
    facts = run_facts(build(tmp_path, [student("a")], batches=2))
    assert facts == {"graded_at": "2026-01-31 09:30:00 UTC", "submissions": "4",
                     "wall_seconds": "4.2 s (1.05 s per submission)", "workers": "2",
                     "sandbox": "cgroups", "limits": "600 s per submission, 60 s per cell,"
                     " 4096 MB", "hidden_inputs": FACTS.hidden_inputs,
                     "grading_version": "abi1/0123456789ab (grader 0.10.0+abi1)",
                     "batch": "2 (the output's latest)"}


def test_a_journal_without_run_facts_or_batches_still_gets_a_report(tmp_path):
    page = build(tmp_path, [student("old")], facts=None, batches=None)
    assert page.find(id="no-run-facts") and status_counts(page)[GRADED] == 1
    assert not page.find_all(id="not-in-latest-batch-none")


def test_every_student_has_a_row_with_a_link_to_their_feedback(tmp_path):
    page = build(tmp_path, [student("a", c1=0), invalid("b")])
    rows = {row.attrs["data-student"]: row for row in page.find_all("tr", class_="student-row")}
    assert sorted(rows) == ["a", "b"]
    assert [cell.text() for cell in rows["a"].find_all("td")][:3] == ["a", GRADED, "50"]
    [link] = rows["a"].find_all("a", class_="feedback")
    assert link.attrs["href"] == "feedback/a/C2_W2_Assignment.html"
    assert rows["a"].find("td", class_="late").text() == ""  # no late penalty recorded


def test_the_facts_of_every_batch_are_shown(tmp_path):
    later = report.RunFacts(**{**asdict(FACTS), "graded_at": "2026-02-01T10:00:00+00:00",
                               "submissions": 1, "workers": 1})
    write_journal(tmp_path, [student("a")], batches=2)
    with Journal(tmp_path) as journal:
        journal.set_fact("runs", [asdict(FACTS), asdict(later)])
        journal.set_fact("run", asdict(later))
    page = parse(report.write_report(out=tmp_path, lab=LAB, generated_at=BUILT))
    runs = page.find(id="every-run").find_all("tr", class_="run")
    assert [row.find_all("td")[1].text() for row in runs] == [
        "2026-01-31 09:30:00 UTC", "2026-02-01 10:00:00 UTC"]
    assert run_facts(page)["submissions"] == "1"  # the latest batch's, in detail


def test_each_batch_adds_its_facts_to_those_of_the_batches_before(tmp_path):
    write_journal(tmp_path, [student("a")], batches=1)  # an OUT from before "runs" was kept
    later = report.RunFacts(**{**asdict(FACTS), "submissions": 7})
    with Journal(tmp_path) as journal:
        pipeline.write_class_files(tmp_path, journal, LAB, facts=later)
        assert journal.fact("runs") == [asdict(FACTS), asdict(later)]
        assert journal.fact("run") == asdict(later)


SVG = "{http://www.w3.org/2000/svg}"


def _svg(uri):
    prefix = "data:image/svg+xml;base64,"
    assert uri.startswith(prefix)
    return ElementTree.fromstring(base64.b64decode(uri[len(prefix):]))


def test_the_histogram_has_a_bar_per_bin_as_tall_as_its_count():
    bins = (ScoreBin(0, 50, 2), ScoreBin(50, 75, 0), ScoreBin(75, 100, 5))
    svg = _svg(figures.score_histogram(Scores(7, 0, 60.0, 80.0, 100, bins)))
    bars = svg.findall(f"{SVG}rect")
    heights = [float(bar.get("height")) for bar in bars]
    widths = [float(bar.get("width")) for bar in bars]
    assert len(bars) == 3 and heights[1] == 0 and heights[2] / heights[0] == pytest.approx(2.5)
    assert widths[0] == pytest.approx(2 * widths[1])  # as wide as the bin
    texts = [text.text for text in svg.iter(f"{SVG}text")]
    assert {"0", "50", "75", "100"} <= set(texts) and {"1", "5"} <= set(texts)
    assert {"total score", "submissions"} <= set(texts)


def test_the_marks_figure_splits_each_bar_by_share_and_escapes_its_labels():
    hostile = ExerciseInfo("UNQ_C9", "<script>&</script>", 10)
    marks = (ExerciseMarks(ExerciseInfo("UNQ_C1", "my_softmax", 50),
                           {"full": 3, "partial": 1, "zero": 0}),
             ExerciseMarks(hostile, {"full": 0, "partial": 0, "zero": 2}))
    svg = _svg(figures.exercise_marks(marks))  # parses: the title did not break the XML
    texts = [text.text for text in svg.iter(f"{SVG}text")]
    assert "UNQ_C9 <script>&</script>" in texts and "<script>" not in str(
        [element.tag for element in svg.iter()])
    assert {"75%", "25%", "100%", "full", "partial", "zero"} <= set(texts)
    bars = [bar for bar in svg.findall(f"{SVG}rect") if bar.find(f"{SVG}title") is not None]
    first_row = [float(bar.get("width")) for bar in bars[:3]]
    assert first_row[0] == pytest.approx(3 * first_row[1], abs=0.3) and first_row[2] == 0


@pytest.mark.parametrize(("highest", "ticks"), [
    (0, [0, 1]), (1, [0, 1]), (6, [0, 1, 2, 3, 4, 5, 6]), (7, [0, 2, 4, 6, 8]),
    (13, [0, 5, 10, 15]), (1000, [0, 200, 400, 600, 800, 1000])])
def test_the_count_axis_has_whole_ticks_at_most_seven(highest, ticks):
    assert figures.count_ticks(highest) == ticks


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -r requirements.txt "
                    "(the report's rendering is tested in a real browser)")
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    results = [student("a"), wrong_units("b", "L1", 20), invalid("c"),
               student(HOSTILE_ID, c1=0, detail=HOSTILE_TEXT, m1=[(HOSTILE_KIND, HOSTILE_TEXT)])]
    write_journal(tmp_path, results, batches=2, batch_of={"c": 1})
    path = report.write_report(out=tmp_path, lab=LAB, generated_at=BUILT)
    screenshot = tmp_path / "report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu",
                                                 "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            dialogs, console = [], []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.on("console", lambda message: console.append(message.text))
            page.goto(path.as_uri())
            figures = page.evaluate("""() => Array.from(document.images, image => ({
                id: image.id, complete: image.complete, width: image.naturalWidth,
                height: image.naturalHeight, shown: image.getBoundingClientRect().width}))""")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert {figure["id"] for figure in figures} == FIGURE_IDS
    for figure in figures:
        assert figure["complete"] and figure["width"] > 0 and figure["height"] > 0, figure
        assert figure["shown"] > 0, figure
    assert not dialogs and not console  # nothing ran, nothing was refused
    assert screenshot.stat().st_size > 10_000


# ---------------------------------------------------------------- failures

def test_a_report_that_fails_is_a_warning_not_a_lost_batch(tmp_path, monkeypatch):
    def broken(**_):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(report, "write_report", broken)
    logged = _Records()
    logger = logging.getLogger(logs.LOGGER)
    logger.addHandler(logged)
    try:
        with Journal(tmp_path) as journal:
            journal.record(student("a"), version="test", batch=1, has_notebook=True,
                           feedback="written")
            pipeline.write_class_files(tmp_path, journal, LAB, facts=FACTS)
            assert journal.fact("run") == asdict(FACTS)
    finally:
        logger.removeHandler(logged)
    [record] = logged.records
    assert "disk on fire" in str(record.exc_info[1])
    assert f"python -m grader report {tmp_path}" in record.getMessage()
    assert (tmp_path / GRADES_CSV).exists()
    assert (tmp_path / report.RUN_JSON).exists()  # so that the report can be built again


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _garbage_journal(out):
    out.mkdir()
    (out / JOURNAL_FILE).write_bytes(b"not a database" * 100)


def _bad_run_facts(out):
    with Journal(out) as journal:
        journal.set_fact("run", {"graded_at": "yesterday", "workers": "two"})


def _unknown_status(out):
    with Journal(out) as journal:
        journal.record(StudentResult("x", "lost"), version="test", batch=1, has_notebook=False,
                       feedback="none")


@pytest.mark.parametrize("prepare, says", [
    (lambda out: None, "does not exist"),
    (lambda out: out.mkdir(), "no journal in"),
    (_garbage_journal, "cannot be read"),
    (_bad_run_facts, "does not hold the run's facts"),
    (_unknown_status, "unknown status"),
])
def test_grader_report_errors_are_one_line(tmp_path, prepare, says, monkeypatch, capsys):
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)  # no global handler
    out = tmp_path / "out"
    prepare(out)
    assert cli.main(["report", str(out)]) == 1
    printed = capsys.readouterr()
    assert printed.err.startswith("error: ") and says in printed.err, printed.err
    assert len(printed.err.strip().splitlines()) == 1 and not printed.out
    assert not (out / report.REPORT_HTML).exists()
