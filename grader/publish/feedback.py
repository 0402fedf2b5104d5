"""Each student's feedback page, made as their result arrives.

The graded notebook, with each exercise's verdict under its test cell, rendered to one HTML
page with nbgrader's own feedback template (so it looks like what `nbgrader
generate_feedback` makes). The notebook is already rebuilt from the allow-list
(grader.run.rebuild); the page carries a Content-Security-Policy that runs no script
but the template's own (grader.publish.page_policy). Pages are rendered in a child process,
each within a time limit (grader.publish.page_process): a page that overruns is not made,
for that student only. The page is checked for the hidden tests' source (in its text and
in anything base64-encoded in it) before it is kept: a page that would show it is refused,
for that student only, and the reason goes into their row.

A page stands alone: it loads nothing from outside itself and runs no script. The lab's
figures and formulas are inlined as images (grader.publish.standalone), MathJax is left out
of the template (page_template/standalone_feedback), long lines wrap, and a summary at the top
gives the score and each exercise's messages (and the late penalty, when there is one).

    OUT/feedback/<student>/<notebook>.html
"""

import base64
import binascii
import collections
import copy
import functools
import html
import importlib.util
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jinja2 import pass_context
from nbconvert import HTMLExporter
from nbconvert.exporters.templateexporter import TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from traitlets.config import Config

from grader import cells
from grader.judge.verdicts import verdict_text
from grader.plugin import Lab
from grader.publish.files import write_atomically
from grader.publish.page_policy import page_policy, with_policy
from grader.publish.page_process import PAGE_SECONDS, PageProcess, PageTimeout
from grader.publish.standalone import standalone_sources
from grader.records import ExerciseVerdict, StudentResult
from grader.run.rebuild import rebuilt_notebook

# Found, not imported: nbgrader's package imports its server extensions (0.7 s of CPU),
# which a page renderer, started per worker, would pay for one folder's path.
_NBGRADER = (Path(importlib.util.find_spec("nbgrader").origin).parent  # type: ignore[union-attr, arg-type]
             / "server_extensions" / "formgrader")
TEMPLATES = _NBGRADER / "templates"
BOOTSTRAP_CSS = _NBGRADER / "static" / "node_modules" / "bootstrap" / "dist" / "css"
OUR_TEMPLATES = Path(__file__).parent / "page_template"
TOP = '<a name="top"></a>'
HEAD_END = "</head>"
# Verdicts and outputs are preformatted text: wrapped, they are read without scrolling.
WRAPPING = ("<style>div.output_area pre, div.output_text pre, pre.verdicts {"
            " white-space: pre-wrap; overflow-wrap: anywhere; }\n"
            "div.summary { margin: 0 15px 1em; } p.late-penalty { color: #d2413a; }</style>\n")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/=\n]{40,}")
TAG = re.compile(r"<[^>]*>")
LEAK_LINES = 2
# Bootstrap's icon font, a file the browser would look for beside the page (none is there,
# and the policy refuses fonts): the template's page is kept without it.
ICON_FONT = re.compile(r"@font-face\s*\{\s*font-family:\s*'Glyphicons Halflings'[^}]*\}")

IMAGE_ALT_DEFAULT = "A figure without a description"  # for readers that cannot see it

WRITTEN = "written"
NONE = "none"  # no graded notebook: nothing to show (an invalid submission)
REFUSED = "refused"


@dataclass(frozen=True)
class FeedbackState:
    state: str  # WRITTEN, NONE or REFUSED
    reason: str = ""  # for REFUSED: a sentence for the student's row


class FeedbackFiles:
    """Where the feedback pages are: OUT/feedback/<student>/<notebook>.html."""

    def __init__(self, lab: Lab, out: str | Path) -> None:
        self.lab = lab
        self.folder = Path(out) / "feedback"

    def path(self, student_id: str) -> Path:
        return self.folder / student_id / f"{Path(self.lab.notebook_name).stem}.html"

    def save(self, student_id: str, page: str | None) -> None:
        """Write `page` as the student's, or remove theirs when there is none."""
        if page is None:
            self.remove(student_id)
        else:
            write_atomically(self.path(student_id), page)

    def remove(self, student_id: str) -> None:
        path = self.path(student_id)
        if path.exists():
            os.remove(path)
        if path.parent.exists() and not any(path.parent.iterdir()):
            shutil.rmtree(path.parent, ignore_errors=True)


class FeedbackWriter(FeedbackFiles):
    """Writes feedback pages into OUT/feedback, each rendered within `page_seconds` by one
    child process for the batch (setting up nbconvert's templates costs seconds, each page
    then a fraction of one)."""

    def __init__(self, lab: Lab, out: str | Path, page_seconds: float = PAGE_SECONDS) -> None:
        super().__init__(lab, out)
        self.hidden_lines = lab.hidden_source_lines()
        self.given_markdown = standalone_sources(lab)
        # The lab's own figures, inlined in every page: no student wrote them, and decoding
        # and searching them again for each page was half the leak check's time.
        self.lab_runs = frozenset(BASE64_RUN.findall("".join(self.given_markdown.values())))
        self.pages = PageProcess(render_page, warm_up, page_seconds)

    def close(self) -> None:
        self.pages.close()

    def write(self, result: StudentResult, notebook: dict | None,
              late_penalty: float = 0.0) -> "FeedbackState":
        """Write the page of `result` from its graded `notebook` (with the verdicts shown,
        see add_verdict_outputs), or remove an old page when there is no notebook; the
        FeedbackState."""
        state, page = self.make(result, notebook, late_penalty)
        self.save(result.student_id, page)
        return state

    def make(self, result: StudentResult, notebook: dict | None,
             late_penalty: float = 0.0) -> tuple["FeedbackState", str | None]:
        """(its FeedbackState, the page or None) for `result`'s graded `notebook`: what
        `write` writes, made wherever the notebook is (a worker, grader.publish.on_worker)."""
        if notebook is None:
            return FeedbackState(NONE), None
        try:
            page = self.render(result, notebook, late_penalty)
        except PageTimeout:
            return FeedbackState(REFUSED, "No feedback page could be made in time (rendering"
                                          f" it took more than {self.pages.seconds:g} s); the"
                                          " grade stands."), None
        if self.leak(page):
            return FeedbackState(REFUSED, "No feedback page was made: it would have shown"
                                          " the hidden tests' code (printed by a cell)."), None
        return FeedbackState(WRITTEN), page

    def render(self, result: StudentResult, notebook: dict, late_penalty: float = 0.0) -> str:
        """The page (or PageTimeout) for `result`'s graded notebook, rendered apart."""
        node = nbformat.from_dict(copy.deepcopy(notebook))
        _set_scores(node, result.verdicts, self.lab)
        for cell in node.cells:
            if cell.cell_type == "markdown":
                given = cells.source(cell)
                cell.source = self.given_markdown.get(given, given)
        resources = _resources(Path(self.lab.notebook_name).stem, result.score,
                               self.lab.max_score, late_penalty)
        resources["verdicts"] = [verdict_text(verdict) for verdict in result.verdicts.values()]
        return self.pages.render(node, resources)

    def leak(self, page: str) -> list[str] | None:
        """The lines of the hidden tests' source found in `page` (in its text, its markup
        or anything base64-encoded in it), if at least LEAK_LINES of them: one line alone
        may be one a student wrote too."""
        students = []

        def without_the_labs(match):
            run = match.group()
            if run in self.lab_runs:
                return "\0"  # not "": the text on either side must not join up
            students.append(run)
            return run

        page = BASE64_RUN.sub(without_the_labs, page)
        text = html.unescape(TAG.sub("", page))
        haystacks = (page, text, *(_decoded(run) for run in students))
        found = {line for line in self.hidden_lines
                 if any(line in haystack for haystack in haystacks)}
        return sorted(found) if len(found) >= LEAK_LINES else None


def render_page(notebook: dict, resources: dict) -> str:
    """The feedback page of `notebook` (a rebuilt notebook, as a dict), with its policy."""
    page, _ = _exporter().from_notebook_node(nbformat.from_dict(notebook),
                                             resources=resources)
    page = ICON_FONT.sub("", page, count=1).replace(HEAD_END, WRAPPING + HEAD_END, 1)
    page = page.replace(TOP, TOP + _summary(resources), 1)
    return with_policy(page, _policy())


def _summary(resources: dict) -> str:
    """The score, the late penalty when there is one, and every exercise's verdict, escaped:
    what a student looks for first, at the top of the page."""
    grading = resources["nbgrader"]
    late = grading.get("late_penalty") or 0
    penalty = (f'<p class="late-penalty">Late submission penalty: -{late:g} points.</p>'
               if late > 0 else "")
    verdicts = html.escape("\n".join(resources.get("verdicts", ())))
    return (f'<div class="summary"><p><b>Score: {grading["score"]:g} / '
            f'{grading["max_score"]:g}</b></p>{penalty}'
            f'<pre class="verdicts">{verdicts}</pre></div>')


def warm_up() -> None:
    """Build the exporter and the policy before the first page is timed."""
    _policy()


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTMLExporter without the BeautifulSoup pass it makes over every finished
    page (parse, select, serialise: 60% of a feedback page's CPU). That pass gives images
    without alt text a default one, which our template does as it writes them
    (page_template/standalone_feedback/index.html.j2), and makes the lab template's cells
    focusable, which a feedback page (nbgrader's classic template) does not have. The rest
    is HTMLExporter.from_notebook_node's set-up of its filters, as nbconvert 7.17 does it
    (tests/grader/publish/test_feedback_exporter.py checks the two agree)."""

    # Most of a page is the lab's own cells, the same on every student's page: a cell's
    # Markdown and its highlighted code are kept by everything they are made from, so that
    # a worker's renderer makes them once rather than once a page (they were 60% of a
    # page's CPU). A student's cells are kept too, under their own source.
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._markdown: KeptResults = KeptResults()
        self._highlights: dict[Any, KeptResults] = {}

    @pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        cell = context.get("cell", {})
        key = (source, json.dumps(cell.get("attachments", {}), sort_keys=True),
               context.get("resources", {}).get("metadata", {}).get("path", ""))
        return self._markdown.get(key, lambda: super(FeedbackExporter, self).markdown2html(
            context, source))

    # A page (str), as HTMLExporter's own override returns, not Exporter's notebook.
    def from_notebook_node(  # type: ignore[override]
            self, nb: nbformat.NotebookNode, resources: dict | None = None,
            **kw: Any) -> tuple[str, dict]:
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name", None))
        self.register_filter("highlight_code", self.filters.get(
            "highlight_code", self._highlight(lexer)))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        return TemplateExporter.from_notebook_node(self, nb, resources, **kw)

    def _highlight(self, lexer: Any) -> Callable[..., str]:
        kept = self._highlights.setdefault(lexer, KeptResults())
        highlight = Highlight2HTML(pygments_lexer=lexer, parent=self)

        def highlight_code(source: str, language: str | None = None,
                           metadata: dict | None = None) -> str:
            key = (source, language, json.dumps(metadata, sort_keys=True, default=str))
            return kept.get(key, lambda: highlight(source, language, metadata))
        return highlight_code


class KeptResults:
    """Results kept by their key (a tuple), the oldest used going first once more than
    `most` are kept or their keys' text and values together pass `most_chars`. A renderer
    lives as long as its worker, and a student controls their cells: a notebook of
    megabyte cells must not stay in its memory (a result over a quarter of `most_chars`
    is made and not kept)."""

    def __init__(self, most: int = 512, most_chars: int = 16 * 2**20) -> None:
        self.most, self.most_chars = most, most_chars
        self._kept = collections.OrderedDict[Any, tuple[str, int]]()
        self.chars = 0

    def get(self, key: tuple, make: Callable[[], str]) -> str:
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key][0]
        value = make()
        size = len(value) + sum(len(part) for part in key if isinstance(part, str))
        if size <= self.most_chars // 4:
            self._kept[key] = value, size
            self.chars += size
            while len(self._kept) > self.most or self.chars > self.most_chars:
                self.chars -= self._kept.popitem(last=False)[1][1]
        return value


@functools.cache
def _exporter():
    config = Config()
    config.HTMLExporter.template_name = "standalone_feedback"  # nbgrader's, without MathJax
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATES), str(OUR_TEMPLATES)]
    # TEMPLATES as a root too: our index extends nbgrader's by its path, feedback/index.html.j2.
    config.HTMLExporter.extra_template_paths = [str(BOOTSTRAP_CSS), str(TEMPLATES)]
    return FeedbackExporter(config=config)


@functools.cache
def _policy():
    """The policy of every feedback page, from the template's page for an empty notebook:
    no student's content is in it, so no student's script is ever allowed."""
    page, _ = _exporter().from_notebook_node(nbformat.v4.new_notebook(),
                                             resources=_resources("policy", 0, 0))
    return page_policy(page)


def _resources(notebook_name, score, max_score, late_penalty=0.0):
    # The page's summary (and nbgrader's template) show a penalty above 0.
    return {"nbgrader": {"notebook": notebook_name, "score": score, "max_score": max_score,
                         "late_penalty": late_penalty},
            "image_alt_default": IMAGE_ALT_DEFAULT}


def add_verdict_outputs(notebook: nbformat.NotebookNode, verdicts: dict[str, ExerciseVerdict],
                        lab: Lab) -> None:
    """Put each verdict's text under its exercise's test cell, where a student reads it."""
    for cell in notebook.cells:
        exercise = lab.test_cells.get(cells.grade_id(cell))
        if exercise in verdicts:
            cell.setdefault("outputs", []).append(nbformat.v4.new_output(
                "stream", name="stdout", text=verdict_text(verdicts[exercise]) + "\n"))


def graded_notebook(notebook: dict, verdicts: dict[str, ExerciseVerdict],
                    lab: Lab) -> nbformat.NotebookNode:
    """`notebook` (from a run) rebuilt from the allow-list and read as nbformat reads a
    file (sources joined, checked), each verdict under its test cell."""
    node = nbformat.reads(json.dumps(rebuilt_notebook(notebook)), as_version=4)
    add_verdict_outputs(node, verdicts, lab)
    return node


def _set_scores(notebook, verdicts, lab):
    """nbgrader's score fields on the test cells, which its feedback template shows."""
    for cell in notebook.cells:
        exercise = lab.test_cells.get(cells.grade_id(cell))
        if exercise is not None:
            verdict = verdicts.get(exercise)
            cell.metadata.nbgrader["score"] = verdict.points if verdict else 0.0
            cell.metadata.nbgrader["points"] = lab.points[exercise]


def _decoded(run):
    try:
        return base64.b64decode("".join(run.split()) + "==", validate=False).decode(
            "utf-8", "ignore")
    except (binascii.Error, ValueError):
        return ""
