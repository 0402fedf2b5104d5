"""Feedback pages (grader/publish/feedback.py): the Content-Security-Policy each carries,
the scripts in them exactly the template's own, and a time limit per page."""

import copy
import json
import time

import nbformat
import pytest
from page_audit import PageAudit, live_parts

from grader import cells
from grader.labs.c2_w2 import LAB as lab
from grader.publish import page_render
from grader.publish.feedback import REFUSED, WRITTEN, FeedbackWriter
from grader.publish.page_policy import page_policy, scripts
from grader.records import GRADED, ExerciseVerdict, StudentResult
from grader.run.rebuild import rebuilt_notebook

HOSTILE_OUTPUTS = [
    {"output_type": "display_data", "metadata": {"image/png": {"width": "1 onerror=alert(1)"}},
     "data": {"image/png": ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD"
                            "hgGAWjR9awAAAABJRU5ErkJggg=="), "text/plain": "figure"}},
    {"output_type": "display_data", "metadata": {},
     "data": {"text/html": "<script>alert(1)</script><a href='javascript:alert(2)'>x</a>",
              "application/javascript": "alert(3)", "text/latex": "<script>alert(4)</script>"}},
]
HOSTILE_MARKDOWN = "[x](javascript:alert(5)) <img src=x onerror=alert(6)>"


def graded_notebook(outputs=(), markdown=None):
    """The source notebook as a run leaves it: public test cells, hostile outputs."""
    notebook = copy.deepcopy(lab.source)
    for cell in notebook.cells:
        if cells.is_test_cell(cell):
            cell.source = cells.public_text(cell.source)
    next(cell for cell in notebook.cells
         if cell.cell_type == "code").outputs = nbformat.from_dict(list(outputs))
    if markdown is not None:
        notebook.cells.insert(1, nbformat.v4.new_markdown_cell(markdown))
    return json.loads(nbformat.writes(notebook))


def result(student_id):
    verdicts = {exercise: ExerciseVerdict(exercise, 50, 50) for exercise in lab.exercise_ids}
    return StudentResult(student_id, GRADED, "", verdicts)


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    with_pages = FeedbackWriter(lab, tmp_path_factory.mktemp("out"))
    yield with_pages
    with_pages.close()


@pytest.fixture(scope="module")
def template_scripts(writer):
    """The scripts of a page rendered from the untouched source notebook."""
    page = writer.render(result("source"), copy.deepcopy(lab.source))
    return PageAudit(page).scripts


@pytest.fixture(scope="module")
def hostile_page(writer):
    notebook = rebuilt_notebook(graded_notebook(HOSTILE_OUTPUTS, HOSTILE_MARKDOWN))
    assert writer.write(result("mallory"), notebook).state == WRITTEN
    return writer.path("mallory").read_text(encoding="utf-8")


def test_the_policy_is_the_first_element_of_the_head(hostile_page):
    audit = PageAudit(hostile_page)
    tag, attributes = audit.first_in_head
    assert tag == "meta" and attributes["http-equiv"] == "Content-Security-Policy"
    assert audit.policies == [attributes["content"]]


def test_the_policy_allows_no_script_but_the_templates(hostile_page, template_scripts):
    [policy] = PageAudit(hostile_page).policies
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]
    assert list(template_scripts) == []  # formulas are drawn when the page is made
    assert directives["script-src"] == "'none'"
    assert directives["img-src"] == "'self' data:"
    assert directives["base-uri"] == "'none'" and directives["form-action"] == "'none'"


def test_the_pages_scripts_are_exactly_the_templates(hostile_page, template_scripts):
    assert PageAudit(hostile_page).scripts == template_scripts
    assert live_parts(hostile_page, template_scripts) == []
    assert "alert(" not in hostile_page.replace("alert(5)", "")  # only a link's text is left
    assert 'width="1 onerror' not in hostile_page


def test_the_policy_comes_from_the_template_not_from_the_page():
    page = "<html><head><script>alert(1)</script></head><body></body></html>"
    assert scripts(page) == (["alert(1)"], [])
    assert page_policy(page) != page_render._policy()
    assert "alert" not in page_render._policy()


def test_a_page_that_takes_too_long_is_not_made_and_the_next_is(tmp_path):
    writer = FeedbackWriter(lab, tmp_path, page_seconds=0.001)
    try:
        notebook = rebuilt_notebook(graded_notebook())
        state = writer.write(result("slow"), notebook)
        assert state.state == REFUSED and "in time" in state.reason
        assert "grade stands" in state.reason and not writer.path("slow").exists()
        writer.pages.seconds = 60
        started = time.monotonic()
        assert writer.write(result("next"), notebook).state == WRITTEN  # a new child
        assert time.monotonic() - started < 60
    finally:
        writer.close()
