"""The lab's own Markdown cells made to read offline, with nothing loaded from outside the page.

A feedback page is opened from a folder (or an e-mail) with no images/ beside it and often
no network; its policy runs no script of MathJax's either. So the lab's given Markdown cells
are rewritten once per batch, before any page is rendered:

    <img src="images/relu.png">   ->  <img src="data:image/png;base64,...">  (the release's file)
    $z_j$, $$a_j = \\frac{...}$$   ->  <img src="data:image/svg+xml;base64,...">  (drawn now)

Formulas are drawn with matplotlib's mathtext (installed with the lab, no TeX needed): an
SVG of paths needs no font and no script, and the page's policy already allows data: images.
Only cells whose source is exactly one of the lab's are rewritten: a student's Markdown is
never handed to the formula renderer.

Drawing this lab's formulas costs 0.6 CPU s (matplotlib's import among it) in every process
that makes pages, each worker of each batch. What was drawn is kept in the grader's cache
(`GRADER_CACHE_DIR/page-formulas/KEY.json`, private to its user like the rest of the
cache), KEY a digest of this module's code and matplotlib's version, the two things a
drawing depends on besides the formula: a later process reads it instead of drawing. An
entry that is not the map of formulas to images this module writes is ignored (and
replaced by the next process that draws).
"""

import base64
import functools
import hashlib
import html
import io
import json
import logging
import re
from importlib.metadata import version
from pathlib import Path

from grader import cells
from grader.plugin import Lab
from grader.publish.files import write_atomically
from grader.run.import_turns import private_cache_folder

log = logging.getLogger(__name__)

FIGURE = re.compile(r"""(<img\b[^>]*?\bsrc\s*=\s*)(["'])([^"']+)\2""", re.IGNORECASE)
DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)\$")
ARRAY = re.compile(r"^(.*?)\\left\(\s*\\begin\{array\}\{[^}]*\}(.*?)\\end\{array\}\s*\\right\)"
                   r"(.*)$", re.DOTALL)
TEXT = re.compile(r"\\text\{([^}]*)\}")
TAG = re.compile(r"\\tag\{([^}]*)\}")
FORMULA_POINTS = 14
SVG_METADATA = re.compile(rb"<metadata>.*?</metadata>\s*", re.DOTALL)
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".svg": "image/svg+xml"}
FORMULAS_FOLDER = "page-formulas"
# What formula_image makes: a drawn formula, or one shown as written.
DRAWN_PREFIXES = ('<img class="formula" src="data:image/svg+xml;base64,', "<code>")


def standalone_sources(lab: Lab) -> dict[str, str]:
    """{a given Markdown cell's source: the same cell with its figures and formulas inlined}
    for every Markdown cell of `lab`'s source notebook that has either."""
    kept = _kept_formulas()
    known = len(kept)
    rewritten = {}
    for cell in lab.source.cells:
        if cell.cell_type == "markdown" and not cells.is_answer_cell(cell):
            given = cells.source(cell)
            source = standalone_markdown(given, Path(lab.root))
            if source != given:
                rewritten[given] = source
    if len(kept) > known:
        _keep_formulas(kept)
    return rewritten


def standalone_markdown(source: str, root: Path) -> str:
    """`source` with its figures under `root` as data: URIs and its formulas as drawn SVG."""
    source = FIGURE.sub(lambda match: _inlined_figure(match, root), source)
    source = DISPLAY_MATH.sub(lambda match: _display_formula(match.group(1)), source)
    return INLINE_MATH.sub(lambda match: formula_image(match.group(1)), source)


def _inlined_figure(match, root):
    """The <img> of `match` pointing at its file's bytes, when the file is the lab's own."""
    prefix, quote, reference = match.groups()
    path = (root / reference).resolve()
    kind = IMAGE_TYPES.get(path.suffix.lower())
    if kind is None or not path.is_relative_to(root.resolve()) or not path.is_file():
        return match.group(0)
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"{prefix}{quote}data:{kind};base64,{encoded}{quote}"


def _display_formula(latex):
    """A formula on a line of its own; a column of rows (\\begin{array}) one row a line."""
    array = ARRAY.match(latex.strip())
    if array is None:
        return f'<div style="text-align:center;margin:0.8em 0">{formula_image(latex)}</div>'
    before, rows, after = array.groups()
    lines = "".join(f"<div>{formula_image(row)}</div>" for row in re.split(r"\\\\", rows)
                    if row.strip())
    column = ('<span style="display:inline-block;vertical-align:middle;border-left:1px solid;'
              f'border-right:1px solid;border-radius:6px;padding:0 0.6em">{lines}</span>')
    parts = [formula_image(before) if before.strip() else "", column,
             formula_image(after) if after.strip() else ""]
    return f'<div style="text-align:center;margin:0.8em 0">{" ".join(parts)}</div>'


def formula_image(latex: str) -> str:
    """An <img> of `latex` drawn as SVG, sitting on the text's baseline; the LaTeX itself
    when mathtext cannot draw it (a formula is never lost, at worst shown as written).
    Drawn once: kept for this process, and for later ones by standalone_sources."""
    kept = _kept_formulas()
    if latex not in kept:
        kept[latex] = _formula_image(latex)
    return kept[latex]


@functools.cache
def _kept_formulas() -> dict[str, str]:
    """{formula: image} drawn before, as the cache holds them ({} when it holds none)."""
    path = _formulas_file()
    try:
        kept = json.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(kept, dict) or not all(
            isinstance(latex, str) and isinstance(image, str)
            and image.startswith(DRAWN_PREFIXES) for latex, image in kept.items()):
        log.info("ignoring %s: not the formulas this grader draws", path)
        return {}
    return kept


def _keep_formulas(kept):
    path = _formulas_file()
    if path is not None:
        try:
            write_atomically(path, json.dumps(kept, sort_keys=True), durable=False)
        except OSError:
            log.info("the drawn formulas could not be kept in %s", path, exc_info=True)


def _formulas_file():
    """GRADER_CACHE_DIR/page-formulas/KEY.json; None when there is no private cache."""
    folder = private_cache_folder(FORMULAS_FOLDER)
    if folder is None:
        return None
    key = hashlib.sha256(Path(__file__).read_bytes() + version("matplotlib").encode())
    return folder / f"{key.hexdigest()[:16]}.json"


def _formula_image(latex):
    try:
        svg, depth = _drawn(_mathtext_dialect(latex))
    except ValueError:
        return f"<code>{html.escape(latex)}</code>"
    encoded = base64.b64encode(svg).decode("ascii")
    return (f'<img class="formula" src="data:image/svg+xml;base64,{encoded}" '
            f'alt="{html.escape(latex.strip(), quote=True)}" '
            f'style="vertical-align:-{depth:.1f}pt;margin:0">')


def _mathtext_dialect(latex):
    """LaTeX as mathtext reads it: \\text as roman, an equation's \\tag as its number."""
    latex = " ".join(latex.split())
    latex = TEXT.sub(lambda match: r"\mathrm{" + match.group(1).replace(" ", r"\ ") + "}",
                     latex)
    return TAG.sub(lambda match: rf"\qquad ({match.group(1)})", latex)


def _drawn(latex):
    """(SVG bytes, depth below the baseline in points) of `latex` drawn by mathtext."""
    import matplotlib

    matplotlib.use("agg")
    from matplotlib import mathtext, rc_context
    from matplotlib.font_manager import FontProperties

    buffer = io.BytesIO()
    with rc_context({"svg.fonttype": "path", "svg.hashsalt": "formula"}):
        depth = mathtext.math_to_image(f"${latex}$", buffer, format="svg", dpi=72,
                                       prop=FontProperties(size=FORMULA_POINTS))
    # Without its <metadata> (the time it was drawn, among others): the same formula gives
    # the same bytes in every process, so a page is the same whenever it is made.
    return SVG_METADATA.sub(b"", buffer.getvalue()), depth
