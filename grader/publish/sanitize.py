"""Feedback pages hold a student's outputs: nothing in them may run in the browser of the
instructor or student who opens the page.

Every output a kernel produced is untrusted: HTML and Markdown outputs are cleaned with an
allow-list (text, tables, lists, images, no scripts, no event handlers, no frames, no
styles), outputs that are code (JavaScript, widget views) or may hold code (SVG) are
dropped, widget state is dropped. Markdown and raw cells a student wrote or added are
cleaned the same way; the lab's own locked cells are the instructor's and kept as they are.
Figures (PNG, JPEG) and plain text stay.
"""

import bleach
from nbconvert.preprocessors import Preprocessor

from grader import cells

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
})
ALLOWED_ATTRIBUTES = {
    "*": ["class", "title", "align"],
    "a": ["href", "title"],
    "img": ["src", "alt", "width", "height"],
    "td": ["colspan", "rowspan"],
    "th": ["colspan", "rowspan", "scope"],
}
ALLOWED_PROTOCOLS = frozenset({"http", "https", "mailto"})
# Output mimetypes shown as they are: they cannot run anything in a page.
SAFE_MIMETYPES = frozenset({"text/plain", "text/latex", "image/png", "image/jpeg",
                            "application/json"})
CLEANED_MIMETYPES = frozenset({"text/html", "text/markdown"})


def clean(html):
    """`html` with only the allowed tags and attributes; the rest removed, not escaped."""
    return bleach.clean(str(html), tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                        protocols=ALLOWED_PROTOCOLS, strip=True, strip_comments=True)


class SanitizeOutputs(Preprocessor):
    """Make a graded notebook safe to show as HTML (see the module's docstring)."""

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.outputs = [output for output in map(_safe_output, cell.outputs) if output]
        elif not _given(cell):
            cell.source = clean(cell.source)
        return cell, resources


def _given(cell):
    """A cell of the lab's own (locked, not an answer): the instructor's text."""
    metadata = cells.nbgrader(cell)
    return metadata.get("locked") is True and not cells.is_answer_cell(cell)


def _safe_output(output):
    if output.get("output_type") not in ("display_data", "execute_result"):
        return output  # streams and errors are text, escaped by the template
    data = output.get("data", {})
    kept = {mimetype: (clean(value) if mimetype in CLEANED_MIMETYPES else value)
            for mimetype, value in data.items()
            if mimetype in SAFE_MIMETYPES or mimetype in CLEANED_MIMETYPES}
    if not kept:
        return None
    output["data"] = kept
    output["metadata"] = {key: value for key, value in output.get("metadata", {}).items()
                          if key in ("image/png", "image/jpeg")}  # sizes; never "isolated"
    return output
