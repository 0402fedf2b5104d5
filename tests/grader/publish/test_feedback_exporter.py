"""grader.publish.page_render.FeedbackExporter: nbconvert's HTMLExporter without its
BeautifulSoup pass gives the same page, read as HTML, as HTMLExporter itself (the pass's alt
text written by our template instead), at a fraction of the CPU."""

import base64
import copy
import re
import shutil

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbconvert import HTMLExporter

from grader.labs.c2_w2 import LAB as lab
from grader.publish import feedback, page_render

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()
NBCONVERTS_ALT = "No description has been provided for this image"


def _notebook():
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    code = nbformat.v4.new_code_cell("import numpy as np\nprint(np.arange(3))")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="[0 1 2]\n"),
        nbformat.v4.new_output("display_data", data={"image/png": PNG}),
        nbformat.v4.new_output("display_data", data={"image/png": PNG},
                               metadata={"image/png": {"width": 120, "height": 80,
                                                       "alt": "a <small> chart"}}),
        nbformat.v4.new_output("display_data", data={"image/jpeg": PNG},
                               metadata={"image/jpeg": {"width": "50%", "unconfined": True}}),
        nbformat.v4.new_output("error", ename="ValueError", evalue="bad",
                               traceback=["ValueError: bad"]),
    ]
    described = nbformat.v4.new_code_cell("plot()", metadata={"alt": "the cell's figure"})
    described.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG})]
    notebook.cells = [nbformat.v4.new_markdown_cell("# Title\n\nSome *text* and $x^2$."),
                      code, described]
    return notebook


def _resources():
    return feedback.page_resources("page", 50, 100)


def _as_html(page, alt=None):
    """The page as an HTML parser reads it, whitespace between tags aside."""
    if alt is not None:
        page = page.replace(f'alt="{alt}"', 'alt="DEFAULT"')
    text = str(BeautifulSoup(page, features="html.parser"))
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", text))


@pytest.fixture(scope="module")
def nbconverts(tmp_path_factory):
    """The page of HTMLExporter itself, with our template as it was before its image blocks
    (page_template/standalone_feedback without index.html.j2)."""
    folder = tmp_path_factory.mktemp("templates")
    shutil.copytree(page_render.OUR_TEMPLATES, folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("index.html.j2"))
    config = copy.deepcopy(page_render._exporter().config)
    config.HTMLExporter.extra_template_basedirs = [str(page_render.TEMPLATES), str(folder)]
    exporter = HTMLExporter(config=config)

    def render(notebook):
        page, _ = exporter.from_notebook_node(copy.deepcopy(notebook), resources=_resources())
        assert "A figure without" not in page
        return page

    return render


def _ours(notebook):
    page, _ = page_render._exporter().from_notebook_node(copy.deepcopy(notebook),
                                                      resources=_resources())
    return page


def test_the_page_is_the_one_htmlexporter_makes(nbconverts):
    notebook = _notebook()
    theirs, ours = nbconverts(notebook), _ours(notebook)
    assert ours.count(f'alt="{feedback.IMAGE_ALT_DEFAULT}"') == 2
    assert 'alt="a &lt;small&gt; chart"' in ours and 'alt="the cell&#x27;s figure"' in ours
    assert 'width="120"' in ours and 'width="50%"' in ours  # quoted whatever their value
    assert _as_html(ours, feedback.IMAGE_ALT_DEFAULT) == _as_html(theirs, NBCONVERTS_ALT)


def test_the_labs_own_notebook_gives_the_same_page_too(nbconverts):
    notebook = nbformat.read(str(lab.source_notebook), as_version=4)
    feedback._set_scores(notebook, {}, lab)
    assert _as_html(_ours(notebook), feedback.IMAGE_ALT_DEFAULT) == \
        _as_html(nbconverts(notebook), NBCONVERTS_ALT)


def test_no_page_goes_through_the_soup(monkeypatch):
    # The pass this exporter exists to skip (its cost is bench/bench_profile.py's to show).
    import nbconvert.exporters.html

    def refused(*args, **kwargs):
        raise AssertionError("a BeautifulSoup pass over the page")

    monkeypatch.setattr(nbconvert.exporters.html, "BeautifulSoup", refused)
    assert "Title" in _ours(_notebook())


def test_a_hostile_size_stays_inside_its_attribute():
    # The outputs are rebuilt from an allow-list before any page is made (sizes must be
    # numbers there); the template quotes and escapes them all the same.
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plot()")
    cell.outputs = [nbformat.v4.new_output(
        "display_data", data={"image/png": PNG},
        metadata={"image/png": {"width": '1" onerror="alert(1)', "height": "2 onload=x()"}})]
    notebook.cells = [cell]
    image, = BeautifulSoup(_ours(notebook), features="html.parser").find_all("img")
    assert set(image.attrs) == {"src", "width", "height", "alt"}
    assert image["width"] == '1" onerror="alert(1)' and image["height"] == "2 onload=x()"


def test_the_leak_check_skips_only_the_labs_own_figures(monkeypatch):
    writer = feedback.FeedbackWriter(lab, "/nonexistent")
    assert writer.lab_runs, "the lab's figures are inlined as base64"
    figure = sorted(writer.lab_runs)[0]
    hidden = sorted(writer.hidden_lines, key=len)[-2:]  # two long lines of the hidden tests
    hidden_encoded = base64.b64encode("\n".join(hidden).encode()).decode()
    decoded = []
    real_decoded = feedback._decoded
    monkeypatch.setattr(feedback, "_decoded",
                        lambda run: decoded.append(run) or real_decoded(run))
    page = f'<img src="data:image/png;base64,{figure}"><pre>{hidden_encoded}</pre>'
    assert writer.leak(page) == sorted(hidden)
    assert decoded == [hidden_encoded]  # the figure was not decoded again
    # A figure's run removed from the search joins nothing up across it.
    first, second = hidden[0][:5], hidden[0][5:]
    assert writer.leak(f"{first}{figure}{second}\n{hidden[1]}") is None


def _another_notebook():
    notebook = _notebook()
    notebook.cells[0].source = "## Another title\n\n![a cell's picture](attachment:dot.png)"
    notebook.cells[0].attachments = {"dot.png": {"image/png": PNG}}
    notebook.cells[1].source = "import numpy as np\nprint(np.arange(4))  # a student's line"
    return notebook


def test_a_renderer_that_kept_earlier_cells_makes_the_pages_a_fresh_one_makes(monkeypatch):
    one, other = _notebook(), _another_notebook()
    same_markdown_as_one = copy.deepcopy(other)  # the same text, another attachment
    other_png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()
    same_markdown_as_one.cells[0].attachments = {"dot.png": {"image/png": other_png}}
    warm = page_render._exporter.__wrapped__()
    pages = [warm.from_notebook_node(copy.deepcopy(notebook), _resources())[0]
             for notebook in (one, other, same_markdown_as_one, one)]
    fresh = [page_render._exporter.__wrapped__().from_notebook_node(
        copy.deepcopy(notebook), _resources())[0]
        for notebook in (one, other, same_markdown_as_one, one)]
    assert pages == fresh
    assert pages[0] == pages[3] and pages[1] != pages[0] and pages[2] != pages[1]
    # The second time, nothing is rendered again: every cell was kept.
    made = []
    markdown = HTMLExporter.markdown2html
    monkeypatch.setattr(HTMLExporter, "markdown2html",
                        lambda self, context, source: made.append(source)
                        or markdown(self, context, source))
    warm.from_notebook_node(copy.deepcopy(one), _resources())
    assert made == []


def test_kept_results_are_bounded_and_the_oldest_used_go_first():
    kept = page_render.KeptResults(most=2)
    made = []

    def make(value):
        return lambda: made.append(value) or value

    assert [kept.get(key, make(key)) for key in ("a", "b", "a", "c", "b", "a")] == \
        ["a", "b", "a", "c", "b", "a"]
    # "b" was the oldest used when "c" came, and "a" when "b" came back.
    assert made == ["a", "b", "c", "b", "a"]


def test_kept_results_hold_no_more_text_than_their_bound():
    # A student's megabyte cells must not stay in a renderer that lives as long as its
    # worker: a result over a quarter of the bound is not kept, and the oldest go first
    # once the keys' text and the values together pass it.
    kept = page_render.KeptResults(most=100, most_chars=100)
    made = []

    def make(value):
        return lambda: made.append(value) or value

    huge = "x" * 20
    assert kept.get((huge,), make("y" * 10)) == "y" * 10  # 30 characters: over 25
    assert kept.get((huge,), make("y" * 10)) == "y" * 10
    assert len(made) == 2 and kept.chars == 0
    for number in range(8):  # 12 characters each: 96 kept, then the oldest go
        kept.get((f"k{number}",), make(f"{number}" * 10))
    assert kept.chars <= 100 and kept.chars == 8 * 12
    kept.get(("k8",), make("8" * 10))
    assert kept.chars == 8 * 12  # "k0" went
    made.clear()
    kept.get(("k0",), make("0" * 10))
    assert made == ["0" * 10]
