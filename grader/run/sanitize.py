"""HTML a student made, cleaned to an allow-list so nothing in it can run in a browser.

The allow-list keeps what lab outputs and notes need (text, tables, lists, code, images)
and nothing that runs or loads: no scripts, no event handlers, no styles, no frames, no
forms, no <base> or <meta>, links only to http, https and mailto. The cleaner is nh3 (the
Rust html5ever parser and ammonia's allow-list). Like html5lib under bleach, html5ever takes
time quadratic in the number of formatting tags left open, each with its own attributes (the
HTML standard's list of active formatting elements): 1 s for 3,000, 20 s for 12,000, 106 s
for 24,000. So the HTML is first cut, in one linear pass, to at most MAX_NESTING elements
open at once (`bounded_nesting`): tags deeper than that are dropped, their text kept, and
every element is closed. The parser then never holds more than that many.

Markdown a student wrote is rendered to HTML first, with the renderer nbconvert uses, and
that final HTML is cleaned (cleaning the Markdown source lets `[x](javascript:...)` through
the renderer afterwards). The result is stored in the form `markdown_cell_source` gives, which
nbconvert and nbgrader render back to the same HTML.
"""

import re
from html import escape

import nh3

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
})
# No id or name: an element a student names could stand in for a page script's global.
ALLOWED_ATTRIBUTES = {
    "*": {"class", "title", "align"},
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Tags removed with everything inside them (other tags lose only the tag, not its text).
REMOVED_WITH_CONTENT = frozenset({"script", "style", "template", "noscript", "textarea",
                                  "title", "xmp", "iframe", "noembed", "noframes", "object"})
MARKDOWN_WRAPPER = ("<div>", "</div>")
MAX_NESTING = 64  # elements open at once; lab outputs (tables, lists) need a handful
# A start or end tag as an HTML tokenizer starts one: '<', maybe '/', then a letter.
TAG = re.compile(r"<(/?)([A-Za-z][^\t\n\f\r />]*)[^>]*>")
VOID_ELEMENTS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input",
                           "link", "meta", "param", "source", "track", "wbr"})

_cleaner = nh3.Cleaner(tags=set(ALLOWED_TAGS), attributes=ALLOWED_ATTRIBUTES,
                       url_schemes=set(ALLOWED_URL_SCHEMES),
                       clean_content_tags=set(REMOVED_WITH_CONTENT), strip_comments=True,
                       link_rel="noopener noreferrer nofollow")


def clean(html):
    """`html` with only the allowed tags, attributes and URL schemes (the rest removed)."""
    return _cleaner.clean(bounded_nesting(str(html)))


def bounded_nesting(html):
    """`html` with at most MAX_NESTING elements open at once, each closed, in linear time:
    a start tag deeper than that is dropped (its text kept), an end tag that closes nothing
    open is dropped, one that closes an outer element closes the inner ones first. Tags are
    found as a tokenizer finds them, not parsed: where the two differ (inside a comment or a
    script), the text changes, and the cleaner removes what is not allowed all the same."""
    open_tags = []

    def bounded(tag):
        closing, name = tag.group(1), tag.group(2).lower()
        if not closing:
            if name in VOID_ELEMENTS:
                return tag.group(0)
            if len(open_tags) >= MAX_NESTING:
                return ""
            open_tags.append(name)
            return tag.group(0)
        if name not in open_tags:
            return ""
        closed = []
        while (inner := open_tags.pop()) != name:
            closed.append(f"</{inner}>")
        return "".join(closed) + tag.group(0)

    body = TAG.sub(bounded, html)
    return body + "".join(f"</{name}>" for name in reversed(open_tags))


def markdown_cell_source(markdown):
    """A student's Markdown as a cell source that shows the same and runs nothing: the
    rendered, cleaned HTML on one line in a <div>. CommonMark reads a cell that starts with
    <div> and has no blank line as one raw HTML block and passes it through as it is, so
    rendering it again (nbconvert, nbgrader, formgrader, or `markdown_cell_source` itself)
    gives it back unchanged."""
    # Imported here: nbconvert (0.23 s) is needed where notebooks are rebuilt, the workers,
    # not by every process that imports the rebuild (the coordinator).
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    if is_cell_source(markdown):
        return markdown
    return _cell_source(markdown2html_mistune(markdown))


def text_cell_source(text):
    """`text` shown as it is, as plain text, in the same form as `markdown_cell_source`."""
    return _cell_source(f"<pre>{escape(text, quote=False)}</pre>")


def html_cell_source(html):
    """A student's raw cell (which nbconvert writes into a page as HTML) in the same form:
    inert whether it is read as HTML or rendered as Markdown."""
    return html if is_cell_source(html) else _cell_source(html)


def _cell_source(html):
    return MARKDOWN_WRAPPER[0] + one_line(clean(html)) + MARKDOWN_WRAPPER[1]


def one_line(html):
    """Cleaned `html` without line breaks: each one (in text or an attribute value) written
    as the character reference `&#10;`, which HTML reads back as the same line break."""
    return html.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "&#10;")


def is_cell_source(text):
    """Whether `text` is already what `markdown_cell_source` makes: one line of clean HTML
    in a <div> (rendered as Markdown, it is passed through unchanged)."""
    opening, closing = MARKDOWN_WRAPPER
    return (text.startswith(opening) and text.endswith(closing) and "\n" not in text
            and "\r" not in text and one_line(clean(text)) == text)
