"""The feedback page renderer's side (grader.publish.page_process runs it in a child
process, a worker's or the coordinator's): nbconvert's exporter with nbgrader's feedback
template, the page's summary at the top, its Content-Security-Policy.

Kept apart from grader.publish.feedback, which the coordinator imports: nbconvert, its
templates and the policy are only ever needed where pages are rendered.
"""

import collections
import functools
import html
import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from jinja2 import pass_context
from nbconvert import HTMLExporter
from nbconvert.exporters.templateexporter import TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from traitlets.config import Config

from grader.publish.feedback import page_resources
from grader.publish.page_policy import page_policy, with_policy

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
# Bootstrap's icon font, a file the browser would look for beside the page (none is there,
# and the policy refuses fonts): the template's page is kept without it.
ICON_FONT = re.compile(r"@font-face\s*\{\s*font-family:\s*'Glyphicons Halflings'[^}]*\}")


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
                                             resources=page_resources("policy", 0, 0))
    return page_policy(page)
