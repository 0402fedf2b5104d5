"""A graded notebook rebuilt from an allow-list of known parts, so that nothing in it runs
in the browser of anyone who opens it: our feedback page, nbgrader's own generate_feedback,
formgrader on the instructor's Jupyter server.

It runs on the worker right after the kernel stops (grader.run.worker), so the notebook
that leaves the worker is already safe, and again before anything is written into OUT
(grader.publish.publisher): rebuilding a rebuilt notebook changes nothing. Every output is
built anew, field by field, from what the kernel sent; nothing of the kernel's is passed
through:

    stream            stdout or stderr, its text a string
    error             ename, evalue strings, traceback a list of strings
    display_data,     text/plain; text/html cleaned (grader.run.sanitize); text/markdown
    execute_result      rendered and cleaned, kept as text/html; image/png and image/jpeg
                        decoded and checked (signature, width and height in the header),
                        re-encoded; width and height metadata only as positive ints
    anything else     dropped: JavaScript, widget views, SVG, LaTeX (nbconvert writes it
                        into the page as it is), JSON, unknown output types and keys

The lab's own given cells are the instructor's and kept as they are. A Markdown or raw cell
a student wrote is rendered and cleaned (grader.run.sanitize.markdown_cell_source).
Widget state in the notebook's metadata is dropped.

The Markdown renderer (mistune, nbconvert's) is slow on hostile input, tens of kB a second
(`[a](` repeated), and worse than linear on some: a notebook's Markdown is rendered up to
MARKDOWN_BUDGET characters in all, cells and outputs together, and shown as plain text
beyond, so rebuilding one notebook takes seconds at most.
"""

import base64
import binascii
import re
import struct

from grader import cells
from grader.run.sanitize import (
    clean,
    html_cell_source,
    is_cell_source,
    markdown_cell_source,
    text_cell_source,
)

MARKDOWN_BUDGET = 50_000  # characters: a student's notes are a few kB
STREAM_NAMES = ("stdout", "stderr")
IMAGE_TYPES = ("image/png", "image/jpeg")
IMAGE_SIZE_KEYS = ("width", "height")
MAX_IMAGE_SIDE = 65_535  # pixels: more is no figure
CELL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what nbformat 4.5 allows
CELL_METADATA_KEYS = ("nbgrader", cells.GRADER_METADATA, "tags", "deletable", "editable")
KERNELSPEC_KEYS = ("name", "display_name", "language")
LANGUAGE_INFO_KEYS = ("name", "version", "mimetype", "file_extension", "pygments_lexer",
                      "nbconvert_exporter")
# A kernel's or language's name or version: short, no markup, no control characters.
PLAIN_WORD = re.compile(r"^[^<>&\"'`\x00-\x1f\x7f]{0,100}$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_START = b"\xff\xd8"
# JPEG frame markers that carry the image's size (SOF0-SOF15 but DHT, JPG and DAC).
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_BARE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # no length follows


def rebuilt_notebook(notebook):
    """A new notebook (plain JSON data) with only the allowed parts of `notebook` (a dict)."""
    source_cells = notebook.get("cells") if isinstance(notebook.get("cells"), list) else []
    budget = MarkdownBudget()
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": _notebook_metadata(notebook.get("metadata")),
            "cells": [_cell(cell, index, budget) for index, cell in enumerate(source_cells)
                      if isinstance(cell, dict)]}


class MarkdownBudget:
    """Renders a notebook's Markdown (as sanitize.markdown_cell_source does) until
    `characters` have been rendered, then shows the rest as plain text. What is already in
    that form is kept, and costs nothing."""

    def __init__(self, characters=MARKDOWN_BUDGET):
        self.left = characters

    def cell_source(self, markdown):
        if is_cell_source(markdown):
            return markdown
        if len(markdown) > self.left:
            return text_cell_source(markdown)
        self.left -= len(markdown)
        return markdown_cell_source(markdown)


def _notebook_metadata(metadata):
    metadata = metadata if isinstance(metadata, dict) else {}
    kernelspec = _plain_words(metadata.get("kernelspec"), KERNELSPEC_KEYS)
    language_info = _plain_words(metadata.get("language_info"), LANGUAGE_INFO_KEYS)
    rebuilt = {}
    if {"name", "display_name"} <= kernelspec.keys():  # what nbformat's schema requires
        rebuilt["kernelspec"] = kernelspec
    if "name" in language_info:
        rebuilt["language_info"] = language_info
    return rebuilt


def _plain_words(value, keys):
    value = value if isinstance(value, dict) else {}
    return {key: value[key] for key in keys
            if isinstance(value.get(key), str) and PLAIN_WORD.match(value[key])}


def _cell(cell, index, budget):
    kind = cell.get("cell_type")
    rebuilt = {"cell_type": kind if kind in ("code", "markdown") else "raw",
               "metadata": _json_copy({key: cells.metadata(cell)[key]
                                       for key in CELL_METADATA_KEYS
                                       if key in cells.metadata(cell)}),
               "source": cells.source(cell), "id": _cell_id(cell.get("id"), index)}
    if kind == "code":
        count = cell.get("execution_count")
        rebuilt["execution_count"] = _count(count)
        outputs = cell.get("outputs") if isinstance(cell.get("outputs"), list) else []
        kept = (rebuilt_output(output, budget) for output in outputs)
        rebuilt["outputs"] = [output for output in kept if output]
    elif given(cell):
        if isinstance(cell.get("attachments"), dict):  # the lab's own figures
            rebuilt["attachments"] = _json_copy(cell["attachments"])
    elif rebuilt["cell_type"] == "markdown":
        rebuilt["source"] = budget.cell_source(rebuilt["source"])
    else:  # nbconvert writes a raw cell into the page as HTML
        rebuilt["source"] = html_cell_source(rebuilt["source"])
    return rebuilt


def _cell_id(value, index):
    return value if isinstance(value, str) and CELL_ID.match(value) else f"cell-{index:03d}"


def given(cell):
    """A cell of the lab's own (locked, not an answer): the instructor's text. A student's
    cells never carry the lock: grader.intake.prepare takes given cells from the source
    and gives the cells a student added no grading metadata."""
    metadata = cells.nbgrader(cell)
    return metadata.get("locked") is True and not cells.is_answer_cell(cell)


def rebuilt_output(output, budget=None):
    """A new output with only the allowed parts of `output`, or None if nothing is left;
    its Markdown rendered within `budget` (a MarkdownBudget)."""
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        return _stream(output)
    if kind == "error":
        return _error(output)
    if kind in ("display_data", "execute_result"):
        return _display(output, kind, budget or MarkdownBudget())
    return None


def _stream(output):
    text = _text(output.get("text"))
    if output.get("name") not in STREAM_NAMES or text is None:
        return None
    return {"output_type": "stream", "name": output["name"], "text": text}


def _error(output):
    name, value = output.get("ename"), output.get("evalue")
    traceback = output.get("traceback")
    if not (isinstance(name, str) and isinstance(value, str) and isinstance(traceback, list)
            and all(isinstance(line, str) for line in traceback)):
        return None
    return {"output_type": "error", "ename": name, "evalue": value,
            "traceback": list(traceback)}


def _display(output, kind, budget):
    data = output.get("data") if isinstance(output.get("data"), dict) else {}
    kept = _data(data, budget)
    if not kept:
        return None
    rebuilt = {"output_type": kind, "data": kept,
               "metadata": _image_metadata(output.get("metadata"), kept)}
    if kind == "execute_result":
        rebuilt["execution_count"] = _count(output.get("execution_count"))
    return rebuilt


def _data(data, budget):
    """The allowed MIME types of an output's data, each value rebuilt."""
    kept = {}
    plain = _text(data.get("text/plain"))
    if plain is not None:
        kept["text/plain"] = plain
    html = _text(data.get("text/html"))
    markdown = _text(data.get("text/markdown"))
    if html is not None:
        kept["text/html"] = clean(html)
    elif markdown is not None:
        kept["text/html"] = budget.cell_source(markdown)
    for mimetype in IMAGE_TYPES:
        image = _image(data.get(mimetype), mimetype)
        if image is not None:
            kept[mimetype] = image
    return kept


def _image_metadata(metadata, kept):
    """Each kept image's width and height, if positive ints; nothing else (no "isolated",
    which would put the output in an iframe)."""
    metadata = metadata if isinstance(metadata, dict) else {}
    rebuilt = {}
    for mimetype in IMAGE_TYPES:
        sizes = metadata.get(mimetype)
        if mimetype not in kept or not isinstance(sizes, dict):
            continue
        sizes = {key: sizes[key] for key in IMAGE_SIZE_KEYS if _side(sizes.get(key))}
        if sizes:
            rebuilt[mimetype] = sizes
    return rebuilt


def _image(value, mimetype):
    """The image as clean base64, if `value` is base64 of a PNG or JPEG (as `mimetype`
    says) whose header gives it a sensible width and height; else None."""
    text = _text(value)
    if text is None:
        return None
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    size = _png_size(data) if mimetype == "image/png" else _jpeg_size(data)
    if size is None or not all(map(_side, size)):
        return None
    return base64.b64encode(data).decode("ascii")


def _png_size(data):
    """(width, height) from a PNG's IHDR chunk, the first after its signature."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data):
    """(width, height) from a JPEG's frame header, walking its segments from the start."""
    if not data.startswith(JPEG_START):
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in JPEG_BARE_MARKERS:
            position += 2
            continue
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        if marker in JPEG_FRAMES:
            if length < 7 or position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        if marker in (0xD9, 0xDA) or length < 2:  # end or scan data before any frame
            return None
        position += 2 + length
    return None


def _side(value):
    """Whether `value` is a width or height in pixels: an int (not a bool), 1 to the max."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_IMAGE_SIDE


def _text(value):
    """A MIME bundle's or stream's text: a string, or a list of strings joined; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(value)
    return None


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_copy(value, depth=0):
    """A copy of JSON data made of new dicts and lists (metadata the source gave a cell)."""
    if depth > 20:
        return None
    if isinstance(value, dict):
        return {str(key): _json_copy(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_copy(item, depth + 1) for item in value]
    return value if isinstance(value, str | int | float | bool) or value is None else None
