"""Feedback pages that stand alone (grader/publish/standalone.py, feedback.py): opened from a
folder with no network, the lab's figures show, its formulas read as formulas, long verdicts
wrap, the score and messages are at the top, and the page loads and runs nothing."""

import copy
import json
import re
from pathlib import Path

import pytest

from grader import cells
from grader.labs.c2_w2 import LAB as lab
from grader.publish import standalone
from grader.publish.feedback import FeedbackWriter
from grader.publish.page_policy import scripts
from grader.publish.standalone import formula_image, standalone_markdown
from grader.records import GRADED, ExerciseVerdict, Message, StudentResult

CHROMIUM = Path("/usr/bin/chromium")
LONG_MESSAGE = "softmax(z) returned " + "a-very-long-unbroken-value," * 40
RAW_LATEX = re.compile(r"\$|\\frac|\\sum|\\mathbf")


def graded_notebook():
    notebook = copy.deepcopy(lab.source)
    for cell in notebook.cells:
        if cells.is_test_cell(cell):
            cell.source = cells.public_text(cell.source)
    return json.loads(json.dumps(notebook))  # sources as strings, as a run leaves them


def result():
    first, *others = lab.exercise_ids
    verdicts = {first: ExerciseVerdict(first, 0, 50, (Message("wrong", LONG_MESSAGE),))}
    verdicts.update({exercise: ExerciseVerdict(exercise, 50, 50) for exercise in others})
    return StudentResult("ada", GRADED, "", verdicts)


@pytest.fixture(scope="module")
def page_path(tmp_path_factory):
    writer = FeedbackWriter(lab, tmp_path_factory.mktemp("out"))
    try:
        writer.write(result(), graded_notebook())
    finally:
        writer.close()
    return writer.path("ada")


def test_formulas_and_figures_are_inlined_in_the_lab_markdown(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "f.png").write_bytes(b"\x89PNG fake")
    markdown = standalone_markdown('See $z_j$ and <img src="images/f.png"/>\n'
                                   '$$a_j = \\frac{e^{z_j}}{\\sum_k e^{z_k}} \\tag{1}$$',
                                   tmp_path)
    assert "$" not in markdown and "images/f.png" not in markdown
    assert 'src="data:image/png;base64,' in markdown
    assert markdown.count("data:image/svg+xml;base64,") == 2


def test_a_figure_outside_the_lab_stays_a_reference(tmp_path):
    markdown = standalone_markdown('<img src="../../etc/passwd.png"/>', tmp_path)
    assert markdown == '<img src="../../etc/passwd.png"/>'


def test_a_formula_mathtext_cannot_draw_is_shown_as_written():
    assert formula_image(r"\begin{unknown}") == r"<code>\begin{unknown}</code>"


def test_the_page_has_no_script_and_the_summary_on_top(page_path):
    page = page_path.read_text(encoding="utf-8")
    assert scripts(page) == ([], [])
    assert "script-src &#x27;none&#x27;" in page
    top = page.index('<div class="summary">')
    assert top < page.index('id="notebook"')
    assert "Score: 50 / 100" in page[top:top + 200]
    assert "a-very-long-unbroken-value" in page[top:page.index('id="notebook"')]


@pytest.mark.browser
def test_the_page_reads_offline_in_headless_chromium(page_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -r requirements.txt")
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            seen = _open_offline(browser.new_page(viewport={"width": 1000, "height": 800}),
                                 page_path)
        finally:
            browser.close()
    assert seen["requests"] == [page_path.as_uri()]  # the page itself, nothing else
    assert not seen["console"], seen["console"]  # no policy violation, nothing refused
    assert len(seen["figures"]) == 4 and seen["formulas"] > 40
    for figure in seen["figures"] + seen["formula_sizes"]:
        assert figure["width"] > 0 and figure["height"] > 0, figure
    assert not RAW_LATEX.search(seen["markdown_text"])
    assert seen["scroll_width"] <= seen["client_width"]  # long verdicts wrap


def _open_offline(page, path):
    """What `page` showed of `path` with every request other than the page refused."""
    requests, console = [], []
    page.on("console", lambda message: console.append(message.text))
    page.route("**/*", lambda route: (requests.append(route.request.url),
                                      route.continue_() if route.request.url == path.as_uri()
                                      else route.abort()))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate("""() => Array.from(document.images, image => ({
        formula: image.classList.contains('formula'), width: image.naturalWidth,
        height: image.naturalHeight}))""")
    return {"requests": requests, "console": console,
            "figures": [image for image in images if not image["formula"]],
            "formula_sizes": [image for image in images if image["formula"]],
            "formulas": sum(image["formula"] for image in images),
            "markdown_text": page.evaluate("""() => Array.from(
                document.querySelectorAll('.text_cell_render'), cell => cell.innerText)
                .join('\\n')"""),
            "scroll_width": page.evaluate("document.documentElement.scrollWidth"),
            "client_width": page.evaluate("document.documentElement.clientWidth")}


# --- The drawn formulas kept for the next process ------------------------------------------

@pytest.fixture
def formula_cache(tmp_path, monkeypatch):
    """A cache of its own, and this process's memory of drawn formulas forgotten (as in a
    new process), before and after."""
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path / "cache"))
    standalone._kept_formulas.cache_clear()
    yield tmp_path / "cache" / standalone.FORMULAS_FOLDER
    standalone._kept_formulas.cache_clear()


def _drawing_forbidden(latex):
    raise AssertionError(f"drew {latex!r} again")


def test_the_next_process_reads_the_formulas_drawn_instead_of_drawing(formula_cache,
                                                                     monkeypatch):
    drawn = standalone.standalone_sources(lab)
    (entry,) = formula_cache.iterdir()
    assert formula_cache.stat().st_mode & 0o777 == 0o700
    assert len(json.loads(entry.read_text())) >= 10  # this lab's formulas
    standalone._kept_formulas.cache_clear()
    monkeypatch.setattr(standalone, "_formula_image", _drawing_forbidden)
    assert standalone.standalone_sources(lab) == drawn


@pytest.mark.parametrize("damage", ["not json {", '["a list"]',
                                    '{"z_j": "<script>alert(1)</script>"}'])
def test_a_damaged_entry_is_ignored_and_drawn_again(formula_cache, damage):
    drawn = standalone.standalone_sources(lab)
    (entry,) = formula_cache.iterdir()
    entry.write_text(damage)
    standalone._kept_formulas.cache_clear()
    assert standalone.standalone_sources(lab) == drawn
    replaced = json.loads(entry.read_text())
    assert len(replaced) >= 10 and "<script>" not in entry.read_text()
    assert all(image.startswith(standalone.DRAWN_PREFIXES) for image in replaced.values())


def test_without_a_cache_formulas_are_drawn_and_nothing_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_CACHE_DIR", "off")
    standalone._kept_formulas.cache_clear()
    try:
        assert "data:image/svg+xml;base64," in standalone.formula_image("e^{z_j}")
    finally:
        standalone._kept_formulas.cache_clear()
