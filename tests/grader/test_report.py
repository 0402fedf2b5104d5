"""The instructor's report (grader/report.py): OUT/report.html, read back from its HTML.

Counts and messages are parsed from the page's ids, classes and data- attributes, never
searched for as text, so a page that only looks right does not pass. The corpus report is
the one the session's `graded` fixture made (tests/grader/conftest.py): grading the corpus
takes a minute, and is done once.
"""

import csv
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import corpus
import pytest

from grader import pipeline as autograde
from grader.labs.c2_w2 import LAB as lab
from grader.publish import report
from grader.publish.results import VERDICTS_JSON, write_grades_csv, write_verdicts_json
from grader.records import GRADED, INVALID, STATUSES, TIMEOUT, ExerciseVerdict, SubmissionResult

CHROMIUM = Path("/usr/bin/chromium")
FIGURE_IDS = {"score-histogram", "exercise-marks-figure"}
HOSTILE_ID = "\"><img src=x onerror=alert(1)>&amp;"
HOSTILE_TEXT = "</td></tr><script>alert(2)</script><b onclick='x'>"
FACTS = report.RunFacts(graded_at="2026-01-31T09:30:00+00:00", submissions=1,
                        wall_seconds=4.2, workers=2, sandbox="cgroups", timeout=600,
                        cell_timeout=60, memory_mb=4096)


# ---------------------------------------------------------------- reading the page

class Element:
    def __init__(self, tag, attrs):
        self.tag, self.attrs, self.children, self.parts = tag, dict(attrs), [], []

    def text(self):
        return " ".join("".join(part if isinstance(part, str) else part.text()
                                for part in self.parts).split())

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag=None, **attrs):
        """Elements with `tag` whose attributes equal `attrs` (class_ for class)."""
        wanted = {name.rstrip("_").replace("_", "-"): value for name, value in attrs.items()}
        return [element for element in self.iter()
                if (tag is None or element.tag == tag)
                and all(element.attrs.get(name) == value for name, value in wanted.items())]

    def find(self, tag=None, **attrs):
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]


class PageParser(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.open = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs)
        self.open[-1].children.append(element)
        self.open[-1].parts.append(element)
        if tag not in self.VOID:
            self.open.append(element)

    def handle_endtag(self, tag):
        assert self.open[-1].tag == tag, f"</{tag}> closes <{self.open[-1].tag}>"
        self.open.pop()

    def handle_data(self, data):
        self.open[-1].parts.append(data)


def parse(path):
    parser = PageParser()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    parser.close()
    assert [element.tag for element in parser.open] == ["document"], "unclosed elements"
    return parser.root


def status_counts(page):
    table = page.find("table", id="status-counts")
    return {row.attrs["data-status"]: int(row.find("td").attrs["data-count"])
            for row in table.find_all("tr")}


def listed_submissions(page, table_id):
    table = page.find_all("table", id=table_id)
    if not table:
        return {}
    return {row.attrs["data-student"]: (row.attrs["data-status"],
                                        row.find("td", class_="detail").text())
            for row in table[0].find_all("tr", class_="submission")}


def exercise_marks(page):
    table = page.find("table", id="exercise-marks")
    return {row.attrs["data-exercise"]: {cell.attrs["data-marks"]: int(cell.attrs["data-count"])
                                         for cell in row.find_all("td")}
            for row in table.find_all("tr") if "data-exercise" in row.attrs}


def score_bins(page):
    return [(float(row.attrs["data-low"]), float(row.attrs["data-high"]),
             int(row.attrs["data-count"]))
            for row in page.find("table", id="score-bins").find_all("tr", class_="score-bin")]


def mistakes(page, exercise):
    """[(wording, all its wordings, student ids, data-students)] per mistake of `exercise`."""
    section = page.find("section", class_="exercise-mistakes", data_exercise=exercise)
    rows = []
    for row in section.find_all("tr", class_="mistake"):
        wording = row.find("span", class_="wording").text()
        variants = [span.text() for span in row.find_all("span", class_="variant")]
        students = [span.attrs["data-student"] for span in
                    row.find("td", class_="students").find_all("span", class_="student")]
        rows.append((wording, variants or [wording], students, int(row.attrs["data-students"])))
    return rows


def images(page):
    return {element.attrs.get("id"): element.attrs["src"] for element in page.find_all("img")}


# ---------------------------------------------------------------- the corpus

@pytest.fixture(scope="module")
def corpus_report(graded):
    out, _ = graded
    return out, parse(out / report.REPORT_HTML)


def _expected():
    return corpus.expected_grades()


def test_corpus_report_counts_every_status(corpus_report):
    _, page = corpus_report
    expected = Counter(row["status"] for row in _expected().values())
    assert status_counts(page) == {status: expected[status] for status in STATUSES}
    total = page.find(id="total-submissions")
    assert int(total.attrs["data-count"]) == len(_expected())


def test_corpus_report_lists_the_submissions_to_look_at_with_their_reasons(corpus_report):
    _, page = corpus_report
    listed = listed_submissions(page, "needs-review")
    to_review = {student: row for student, row in _expected().items()
                 if row["status"] != GRADED}
    assert sorted(listed) == sorted(to_review)
    for student, row in to_review.items():
        status, detail = listed[student]
        assert status == row["status"] and row["detail_contains"] in detail, student
    noted = listed_submissions(page, "graded-with-notes")
    for student, row in _expected().items():
        if row["status"] == GRADED and row["detail_contains"]:
            assert row["detail_contains"] in noted[student][1], student


def test_corpus_report_histogram_and_marks_match_the_grades(corpus_report):
    _, page = corpus_report
    ran = [row for row in _expected().values() if row["status"] != INVALID]
    scores = [float(row["score"]) for row in ran]
    bins = score_bins(page)
    assert sum(count for _, _, count in bins) == len(ran) == int(
        page.find(id="scored-count").attrs["data-count"])
    for low, high, count in bins:
        assert count == sum(low <= score < high or score == high == 100 for score in scores)
    assert float(page.find(id="mean-score").text()) == pytest.approx(
        sum(scores) / len(scores), abs=0.05)
    for exercise, marks in exercise_marks(page).items():
        points = [float(row[exercise]) for row in ran]
        assert marks == {"full": points.count(50), "partial": 0, "zero": points.count(0)}
    assert set(exercise_marks(page)) == set(lab.exercise_ids)


def test_corpus_report_names_each_mistake_and_the_students_it_affects(corpus_report):
    _, page = corpus_report
    for exercise in lab.exercise_ids:
        rows = mistakes(page, exercise)
        for _, _, students, count in rows:
            assert count == len(students) == len(set(students))
        affected = {student for _, _, students, _ in rows for student in students}
        # Every zero in this exercise has at least one message, and nobody else has one.
        assert affected == {student for student, row in _expected().items()
                            if row["status"] != INVALID and row[exercise] == "0"}, exercise
    for student, row in _expected().items():
        if row["feedback_contains"]:
            told = [text for exercise in lab.exercise_ids
                    for _, texts, students, _ in mistakes(page, exercise)
                    if student in students for text in texts]
            assert any(row["feedback_contains"] in text for text in told), student


def test_corpus_report_shows_the_run_facts_saved_at_grading_time(corpus_report):
    out, page = corpus_report
    facts = json.loads((out / report.RUN_JSON).read_text())
    assert facts["submissions"] == len(_expected())
    assert (facts["workers"], facts["cell_timeout"]) == (2, 10)  # as the fixture asked
    assert facts["sandbox"] and facts["wall_seconds"] > 0
    shown = {dd.attrs["data-fact"]: dd.text() for dd in page.find("dl", id="run-facts")
             .find_all("dd")}
    assert shown["submissions"] == str(len(_expected()))
    assert shown["workers"] == "2" and shown["sandbox"] == facts["sandbox"]
    assert shown["wall_seconds"].startswith(f"{facts['wall_seconds']:.1f} s")
    assert shown["graded_at"].startswith(facts["graded_at"][:10])


def test_grader_report_rebuilds_the_same_report_from_the_grading_files(graded, tmp_path):
    out, _ = graded
    rebuilt = tmp_path / "out"
    rebuilt.mkdir()
    # Only these three files: no gradebook, no notebooks, no grading.
    for name in ("grades.csv", VERDICTS_JSON, report.RUN_JSON):
        shutil.copy(out / name, rebuilt / name)
    result = _grader("report", str(rebuilt))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Report: {rebuilt / report.REPORT_HTML}"
    assert (_without_build_time(rebuilt / report.REPORT_HTML)
            == _without_build_time(out / report.REPORT_HTML))


def _without_build_time(path):
    text = path.read_text(encoding="utf-8")
    stamp = re.compile(r'<time id="generated-at"[^>]*>[^<]*</time>')
    assert len(stamp.findall(text)) == 1
    return stamp.sub("", text)


def test_report_renders_in_headless_chromium(graded, tmp_path):
    out, _ = graded
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -r requirements.txt "
                    "(the report's rendering is tested in a real browser)")
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    screenshot = tmp_path / "report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu",
                                                 "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto((out / report.REPORT_HTML).as_uri())
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
    assert screenshot.stat().st_size > 10_000


# ---------------------------------------------------------------- small batches, by hand

def _verdict(exercise, points, *messages):
    return ExerciseVerdict(exercise, points, 50, messages)


def _write_output(out, results, facts=FACTS):
    """What the results step and autograde leave in OUT, without grading or a gradebook."""
    out.mkdir(parents=True, exist_ok=True)
    write_grades_csv(out / "grades.csv", results)
    write_verdicts_json(out / VERDICTS_JSON, results)
    if facts is not None:
        report.write_run_facts(out=out, facts=facts)
    return parse(report.write_report(out=out))


def test_a_batch_of_one(tmp_path):
    only = SubmissionResult("solo", GRADED, verdicts={
        "UNQ_C1": _verdict("UNQ_C1", 50),
        "UNQ_C2": _verdict("UNQ_C2", 0, "layers[0] ('L1'): expected 25 units, got 20.")})
    page = _write_output(tmp_path / "out", [only])
    assert status_counts(page) == {GRADED: 1, TIMEOUT: 0, "error": 0, INVALID: 0}
    assert [count for _, _, count in score_bins(page) if count] == [1]
    assert set(images(page)) == FIGURE_IDS
    assert exercise_marks(page) == {"UNQ_C1": {"full": 1, "partial": 0, "zero": 0},
                                    "UNQ_C2": {"full": 0, "partial": 0, "zero": 1}}
    assert mistakes(page, "UNQ_C1") == []
    [(wording, _, students, _)] = mistakes(page, "UNQ_C2")
    assert (wording, students) == ("layers[0] ('L1'): expected 25 units, got 20.", ["solo"])
    assert page.find(id="needs-review-none")


def test_partial_marks_are_counted_apart(tmp_path):
    half = SubmissionResult("half", GRADED, verdicts={
        "UNQ_C1": _verdict("UNQ_C1", 25, "half right"), "UNQ_C2": _verdict("UNQ_C2", 50)})
    page = _write_output(tmp_path / "out", [half])
    assert exercise_marks(page)["UNQ_C1"] == {"full": 0, "partial": 1, "zero": 0}


def test_an_all_invalid_batch_reports_without_figures(tmp_path):
    submissions = tmp_path / "submissions"
    broken = sorted(corpus.BROKEN_FILES.iterdir())[:2]
    for path in broken:
        (submissions / path.stem).mkdir(parents=True)
        shutil.copy(path, submissions / path.stem / lab.notebook_name)
    out = tmp_path / "out"
    # The real command: the report is written by autograde itself, after the grades.
    result = _grader("autograde", str(submissions), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"Report: {out / report.REPORT_HTML}" in result.stdout
    page = parse(out / report.REPORT_HTML)
    assert status_counts(page)[INVALID] == len(broken)
    assert sorted(listed_submissions(page, "needs-review")) == sorted(p.stem for p in broken)
    assert images(page) == {}
    assert page.find(id="no-scores").text() and page.find(id="no-marks").text()
    assert json.loads((out / report.RUN_JSON).read_text())["submissions"] == len(broken)


def test_mistakes_that_differ_only_in_numbers_and_names_are_one_group(tmp_path):
    def wrong_units(student, name, units):
        return SubmissionResult(student, GRADED, verdicts={
            "UNQ_C1": _verdict("UNQ_C1", 50),
            "UNQ_C2": _verdict("UNQ_C2", 0, f"layers[0] ('{name}'): expected 25 units, got "
                                            f"{units}.")})
    results = [wrong_units("ann", "dense", 20), wrong_units("bob", "dense", 20),
               wrong_units("cy", "L1", 2_000),
               SubmissionResult("dee", GRADED, verdicts={
                   "UNQ_C1": _verdict("UNQ_C1", 50),
                   "UNQ_C2": _verdict("UNQ_C2", 0, "layers[1] ('dense_1'): expected ReLU, got "
                                                   "sigmoid.",
                                      "layers[2] ('dense_2'): expected ReLU, got sigmoid.")})]
    page = _write_output(tmp_path / "out", results)
    rows = mistakes(page, "UNQ_C2")
    # The widespread mistake first, in its most common wording; one student counts once.
    assert [(wording, students, count) for wording, _, students, count in rows] == [
        ("layers[0] ('dense'): expected 25 units, got 20.", ["ann", "bob", "cy"], 3),
        ("layers[1] ('dense_1'): expected ReLU, got sigmoid.", ["dee"], 1)]
    assert rows[0][1] == ["layers[0] ('dense'): expected 25 units, got 20.",
                          "layers[0] ('L1'): expected 25 units, got 2000."]


def test_mistake_key_keeps_the_words_and_drops_the_values():
    assert (report.mistake_key("On a hidden input of size 2, z = [-5.441, -3.634]: ... "
                               "Expected a = [0.141, 0.859], got a = [1. , 6.094].")
            == report.mistake_key("On a hidden input of size 5, z = [1.2, 3.4, 5e-05, 7, 9]:"
                                  " ... Expected a = [0.5, 0.5], got a = [nan, 1.].")
            == "On a hidden input of size #, z = [#]: ... Expected a = [#], got a = [#].")
    # The apostrophe of "layers'" opens no quote; names with digits keep them.
    assert (report.mistake_key("The hidden layers' units look swapped (layers[0] ('dense') "
                               "and layers[1] ('L2')): float32")
            == "The hidden layers' units look swapped (layers[#] ('…') and layers[#] ('…')):"
               " float32")
    assert report.mistake_key("expected ReLU") != report.mistake_key("expected sigmoid")


def test_student_text_is_escaped(tmp_path):
    hostile = SubmissionResult(HOSTILE_ID, GRADED, detail=HOSTILE_TEXT, verdicts={
        "UNQ_C1": _verdict("UNQ_C1", 0, HOSTILE_TEXT), "UNQ_C2": _verdict("UNQ_C2", 50)})
    invalid = SubmissionResult(HOSTILE_ID + "2", INVALID, detail=HOSTILE_TEXT)
    page = _write_output(tmp_path / "out", [hostile, invalid])
    assert not page.find_all("script") and not page.find_all("b")
    assert set(images(page)) == FIGURE_IDS  # no <img> but the figures
    assert not [element for element in page.iter() if "onerror" in element.attrs
                or "onclick" in element.attrs]
    # The text survives, shown as text.
    [(wording, _, students, _)] = mistakes(page, "UNQ_C1")
    assert (wording, students) == (HOSTILE_TEXT, [HOSTILE_ID])
    assert listed_submissions(page, "needs-review") == {HOSTILE_ID + "2": (INVALID, HOSTILE_TEXT)}
    assert listed_submissions(page, "graded-with-notes") == {HOSTILE_ID: (GRADED, HOSTILE_TEXT)}


def test_an_output_from_before_the_report_still_gets_one(tmp_path):
    out = tmp_path / "out"
    page = _write_output(out, [SubmissionResult("old", GRADED, verdicts={
        "UNQ_C1": _verdict("UNQ_C1", 50), "UNQ_C2": _verdict("UNQ_C2", 50)})], facts=None)
    assert page.find(id="no-run-facts")
    (out / VERDICTS_JSON).unlink()
    page = parse(report.write_report(out=out))
    assert page.find(id="no-verdicts") and status_counts(page)[GRADED] == 1


def test_a_report_that_fails_is_a_warning_not_a_lost_batch(tmp_path, monkeypatch):
    def broken(**_):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(report, "write_report", broken)
    warnings = autograde.write_run_report(out=tmp_path, facts=FACTS)
    assert len(warnings) == 1 and "disk on fire" in warnings[0]
    assert f"python -m grader report {tmp_path}" in warnings[0]
    assert (tmp_path / report.RUN_JSON).exists()  # so that the report can be built again


# ---------------------------------------------------------------- the command's errors

def _grader(*args):
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True,
                          text=True, cwd=lab.root, timeout=600)


@pytest.mark.parametrize("prepare, says", [
    (lambda out: None, "does not exist"),
    (lambda out: out.mkdir(), "no grades.csv"),
    (lambda out: (out.mkdir(), (out / "grades.csv").write_text("name,points\nx,1\n")),
     "does not have the grader's columns"),
])
def test_grader_report_errors_are_one_line(tmp_path, prepare, says):
    out = tmp_path / "out"
    prepare(out)
    result = _grader("report", str(out))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout
    assert not (out / report.REPORT_HTML).exists()


def test_verdicts_json_holds_each_students_messages(graded):
    out, _ = graded
    verdicts = json.loads((out / VERDICTS_JSON).read_text())
    with (out / "grades.csv").open(newline="") as file:
        rows = {row["student_id"]: row for row in csv.DictReader(file)}
    assert set(verdicts) == set(rows)
    for student, row in rows.items():
        for exercise, verdict in verdicts[student].items():
            assert verdict["points"] == float(row[exercise]), (student, exercise)
            assert bool(verdict["messages"]) == (verdict["points"] < verdict["max_points"])
