"""Attacks through outputs, graded in one batch beside honest students: what a student's
kernel displays, or their Markdown and raw cells hold, must run nothing in the browser of
anyone who opens a page made from OUT, ours or nbgrader's own generate_feedback, and must
not stall the publishing of the class.

Each page is read with html.parser: every <script> in it must be one of the template's own
(the same text as in a page rendered from the untouched source notebook), no attribute may
be an event handler, no URL javascript:, vbscript: or data:text/html, and no frame, object,
embed, base, form or meta refresh may be there.
"""

import base64
import copy
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import corpus
import nbformat
import pytest
from nbconvert import HTMLExporter
from page_audit import PageAudit, live_parts
from PIL import Image
from traitlets.config import Config

from grader.labs.c2_w2 import LAB as lab
from grader.publish.feedback import WRITTEN, FeedbackWriter
from grader.publish.page_render import BOOTSTRAP_CSS, TEMPLATES
from grader.records import GRADED, ExerciseVerdict, StudentResult
from grader.run.rebuild import rebuilt_notebook

NOTEBOOK = lab.notebook_name
PAGE = NOTEBOOK.replace(".ipynb", ".html")
HANDLER = "1 onerror=alert(document.domain)"
NESTED_TAGS = 200_000  # each with its own attribute: 3.4 MB, within the 4 MB output budget
NESTED_HTML = ("''.join(f'<b title=\"t{i}\">' for i in range(" + str(NESTED_TAGS)
               + ")) + 'deep'")


def _jpeg():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), "blue").save(buffer, "JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
       "RU5ErkJggg==")
IMAGE_HANDLERS = f"""
from IPython.display import publish_display_data
publish_display_data({{"image/png": "{PNG}", "text/plain": "png"}},
                     metadata={{"image/png": {{"width": "{HANDLER}", "height": "{HANDLER}"}}}})
publish_display_data({{"image/jpeg": "{_jpeg()}", "text/plain": "jpeg"}},
                     metadata={{"image/jpeg": {{"width": 4, "height": "{HANDLER}"}},
                                "isolated": True}})
"""
SCRIPT_OUTPUTS = """
from IPython.display import HTML, Javascript, display
display(HTML("<script>alert(document.domain)</script><img src=x onerror=alert(1)>"
             "<svg onload=alert(2)></svg><iframe src='https://example.org'></iframe>"
             "<form action='https://example.org'><button>go</button></form>"
             "<base href='https://example.org/'><meta http-equiv=refresh content=0>"))
display(Javascript("alert(3)"))
"""
LINK_OUTPUTS = """
from IPython.display import HTML, Markdown, display
display(Markdown("[click](javascript:alert(document.domain))"))
display(HTML("<a href='jav&#x09;ascript:alert(1)'>tab</a>"
             "<a href='data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=='>data</a>"))
"""
SCRIPT_MARKDOWN = ("<script>alert(document.domain)</script>\n\n<img src=x onerror=alert(1)>\n\n"
                   "<style>body { display: none }</style>")
LINK_MARKDOWN = ("[click me](javascript:alert(document.domain))\n\n"
                 "<a href=\"jav&#x09;ascript:alert(1)\">tab</a>\n\n"
                 "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)")


def _after_test(release, *cells):
    notebook = corpus.answered(release, corpus.STABLE, corpus.MODEL)
    anchor = next(index for index, cell in enumerate(notebook.cells)
                  if cell.metadata.get("nbgrader", {}).get("grade_id") == "UNQ_C2_test")
    notebook.cells[anchor + 1:anchor + 1] = [
        nbformat.v4.new_code_cell(cell) if isinstance(cell, str) else cell for cell in cells]
    return notebook


CLASS = {  # student -> (notebook from the release, UNQ_C1, UNQ_C2)
    "honest-full": (lambda release: corpus.answered(release, corpus.STABLE, corpus.MODEL),
                    50, 50),
    "honest-softmax-only": (lambda release: corpus.answered(
        release, corpus.STABLE, corpus.MODEL.replace("'relu'", "'sigmoid'")), 50, 0),
    "attack-nested-tags": (lambda release: _after_test(
        release, f"from IPython.display import HTML, display\ndisplay(HTML({NESTED_HTML}))",
        nbformat.v4.new_markdown_cell("".join(f'<i class="c{i}">' for i in range(50_000)))),
        50, 50),
    "attack-image-handlers": (lambda release: _after_test(release, IMAGE_HANDLERS), 50, 50),
    "attack-javascript-links": (lambda release: _after_test(
        release, LINK_OUTPUTS, nbformat.v4.new_markdown_cell(LINK_MARKDOWN)), 50, 50),
    "attack-scripts": (lambda release: _after_test(
        release, SCRIPT_OUTPUTS, nbformat.v4.new_markdown_cell(SCRIPT_MARKDOWN),
        nbformat.v4.new_raw_cell("<script>alert(document.domain)</script>")), 50, 50),
}


@pytest.fixture(scope="module")
def graded(released_lab, tmp_path_factory):
    release = nbformat.read(str(released_lab / NOTEBOOK), as_version=4)
    submissions = tmp_path_factory.mktemp("attacks-outputs") / "submissions"
    for student, (build, *_) in CLASS.items():
        (submissions / student).mkdir(parents=True)
        nbformat.write(build(release), str(submissions / student / NOTEBOOK))
    out = submissions.parent / "out"
    result = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
         "--workers", "2"],
        capture_output=True, text=True, cwd=lab.root, timeout=900)
    return out, result


@pytest.fixture(scope="module")
def nbgrader_pages(graded):
    """nbgrader's own generate_feedback, run on OUT's nbgrader course."""
    out, _ = graded
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", "--force",
                    lab.assignment], cwd=out / "nbgrader", check=True, capture_output=True,
                   env={**os.environ, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
                   timeout=600)
    return {path.parts[-3]: path.read_text(encoding="utf-8")
            for path in (out / "nbgrader" / "feedback").glob(f"*/{lab.assignment}/{PAGE}")}


@pytest.fixture(scope="module")
def template_scripts(tmp_path_factory):
    """The scripts of the feedback template, in a page of the untouched source notebook."""
    writer = FeedbackWriter(lab, tmp_path_factory.mktemp("template"))
    try:
        verdicts = {exercise: ExerciseVerdict(exercise, 0, 50) for exercise in lab.exercise_ids}
        page = writer.render(StudentResult("source", GRADED, "", verdicts), lab.source)
    finally:
        writer.close()
    return PageAudit(page).scripts


@pytest.fixture(scope="module")
def nbgrader_template_scripts():
    """The scripts of nbgrader's own feedback template (MathJax's), in a page of the
    untouched source notebook: what `nbgrader generate_feedback` may put in any page."""
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATES)]
    config.HTMLExporter.extra_template_paths = [str(BOOTSTRAP_CSS)]
    resources = {"nbgrader": {"notebook": Path(NOTEBOOK).stem, "score": 0,
                              "max_score": lab.max_score, "late_penalty": 0}}
    source = copy.deepcopy(lab.source)
    for cell in source.cells:  # the template shows each test cell's score
        if "points" in cell.metadata.get("nbgrader", {}):
            cell.metadata.nbgrader["score"] = 0.0
    page, _ = HTMLExporter(config=config).from_notebook_node(source, resources=resources)
    return PageAudit(page).scripts


def test_the_batch_finishes_in_the_sandbox(graded):
    out, result = graded
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads((out / "run.json").read_text())["sandbox"] == "namespaces+cgroups"


@pytest.mark.parametrize("student", sorted(CLASS))
def test_every_student_gets_exactly_their_points(graded, student):
    out, _ = graded
    with (out / "grades.csv").open(newline="") as file:
        rows = {row["student_id"]: row for row in csv.DictReader(file)}
    _, c1, c2 = CLASS[student]
    row = rows[student]
    assert [row["UNQ_C1"], row["UNQ_C2"], row["status"]] == [str(c1), str(c2), "graded"], row
    assert "No feedback page" not in row["detail"], row


def test_our_pages_run_nothing_of_a_students(graded, template_scripts):
    out, _ = graded
    for student in CLASS:
        page = (out / "feedback" / student / PAGE).read_text(encoding="utf-8")
        assert live_parts(page, template_scripts) == [], student
        audit = PageAudit(page)
        assert audit.first_in_head[0] == "meta" and len(audit.policies) == 1, student


def test_nbgraders_own_pages_run_nothing_of_a_students(nbgrader_pages,
                                                       nbgrader_template_scripts):
    assert sorted(nbgrader_pages) == sorted(CLASS)
    for student, page in nbgrader_pages.items():
        assert live_parts(page, nbgrader_template_scripts) == [], student


def test_the_graded_notebooks_in_out_hold_only_rebuilt_outputs(graded):
    out, _ = graded
    for student in CLASS:
        path = out / "nbgrader" / "autograded" / student / lab.assignment / NOTEBOOK
        text = path.read_text(encoding="utf-8")
        notebook = json.loads(json.dumps(nbformat.reads(text, as_version=4)))
        assert rebuilt_notebook(notebook) == notebook, student  # nothing left to drop
        # What shows as more than text: outputs, Markdown and raw cells (a code cell's
        # source is shown as highlighted text, and the attacks' source says it all).
        shown = json.dumps([cell.get("outputs") if cell["cell_type"] == "code"
                            else cell["source"] for cell in notebook["cells"]])
        for word in ("<script", "onerror", "javascript:", "application/javascript",
                     "\"isolated\"", HANDLER):
            assert word not in shown, (student, word)


def test_publishing_the_nested_tags_takes_seconds(graded, tmp_path):
    """The same notebook with the kernel's raw 3.4 MB output put back: rebuilt and rendered
    as the publisher does it, in seconds (bleach took days for it)."""
    out, _ = graded
    student = "attack-nested-tags"
    path = out / "nbgrader" / "autograded" / student / lab.assignment / NOTEBOOK
    notebook = nbformat.read(str(path), as_version=4)
    raw = "".join(f'<b title="t{i}">' for i in range(NESTED_TAGS)) + "deep"
    cell = next(cell for cell in notebook.cells
                if cell.cell_type == "code" and "display(HTML(" in cell.source)
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": raw})]
    writer = FeedbackWriter(lab, tmp_path)
    try:
        writer.pages.render({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
                            {"nbgrader": {"notebook": "warm", "score": 0, "max_score": 1,
                                          "late_penalty": 0}})  # the child's start-up
        started = time.monotonic()
        rebuilt = rebuilt_notebook(notebook)
        verdicts = {exercise: ExerciseVerdict(exercise, 50, 50) for exercise in lab.exercise_ids}
        state = writer.write(StudentResult(student, GRADED, "", verdicts), rebuilt)
        seconds = time.monotonic() - started
    finally:
        writer.close()
    assert state.state == WRITTEN and seconds < 10, seconds
