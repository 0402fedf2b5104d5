"""Reading one submitted notebook file, as far as it can be read: a parsed nbformat v4
notebook, or the reason a student can act on why it cannot be graded.

Nothing a file holds may raise out of here but NotGradable: a FIFO, a huge file, bytes
that are not UTF-8, a .py file renamed, JSON that is not a notebook, an old format, a
structure nbformat cannot repair, a notebook without the lab's answer cells.
"""

import ast
import hashlib
import json
import stat
import warnings
from pathlib import Path

import nbformat
from nbformat import validator

from grader import cells

MAX_NOTEBOOK_BYTES = 50 * 1024**2
# The lab has 44 cells; a student may add many, not tens of thousands (each costs time to
# validate, run, rebuild and render, in the one thread that publishes the class).
MAX_CELLS = 2_000

# Details a student reads: one sentence each, no traceback.
NOTEBOOK_IS_LINK = "the notebook is a link to another file; links are not accepted"
NOT_A_FILE = "the notebook is not a regular file"
UNREADABLE = "the notebook file could not be read"
EMPTY = "the notebook file is empty"
NOT_TEXT = ("the file is not a readable notebook: it is not UTF-8 text, so it is damaged "
            "or in another format")
PYTHON_FILE = ("the file holds Python code, not a notebook: it looks like a .py file "
               "renamed to .ipynb")
NOT_JSON = "the notebook is not valid JSON: the file is cut off or damaged"
NOT_A_NOTEBOOK = "the file is JSON but not a Jupyter notebook"
NO_CELLS = "the notebook has no cells"
DAMAGED = "the notebook's structure is damaged in a way that cannot be repaired"
CHANGED = "the notebook file changed while the batch was being graded; grade it again"
DUPLICATE_COUNTS = {2: "twice", 3: "three times"}


class NotGradable(Exception):
    """One student's submission is invalid; the message is the detail the student reads."""


def read_submitted_notebook(path, lab):
    """One notebook file, checked as intake checks a student's: (notebook, None) when it
    can be graded, (None, detail) when not. For `grader validate`."""
    try:
        notebook, _, _ = read_notebook(Path(path), lab)
    except NotGradable as not_gradable:
        return None, str(not_gradable)
    return notebook, None


def notebook_digest(path):
    """sha256 of the notebook file, read as intake reads it (or NotGradable)."""
    return hashlib.sha256(_notebook_bytes(path)).hexdigest()


def read_notebook(path, lab, digest=None):
    """(notebook as nbformat v4, notes for the student, sha256 of the file), or
    NotGradable. With `digest`, the file must still be the one that had it."""
    return parse_notebook(notebook_bytes(path, digest), lab)


def notebook_bytes(path, digest=None):
    """The notebook file's bytes, or NotGradable (a link, not a file, too big, unreadable,
    or with `digest`, no longer the file that had it)."""
    data = _notebook_bytes(path)
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise NotGradable(CHANGED)
    return data


def parse_notebook(data, lab):
    """(notebook as nbformat v4, notes for the student, sha256 of `data`) from a notebook
    file's bytes, or NotGradable: where the notebook is graded (grader.publish.on_worker)
    or where it was read."""
    content = _parse_json(_notebook_text(data))
    try:
        notebook, notes = _as_version_4(content)
    except RecursionError as error:  # nesting no notebook has, that nbformat recurses into
        raise NotGradable(DAMAGED) from error
    if not notebook.cells:
        raise NotGradable(NO_CELLS)
    if len(notebook.cells) > MAX_CELLS:
        raise NotGradable(f"the notebook has {len(notebook.cells):,} cells, more than the "
                          f"{MAX_CELLS:,} limit; join or delete the cells you added")
    notebook = _validated(notebook)
    return notebook, notes + _graded_cell_notes(notebook, lab), hashlib.sha256(data).hexdigest()


def _notebook_bytes(path):
    try:
        status = path.lstat()
        if stat.S_ISLNK(status.st_mode):
            raise NotGradable(NOTEBOOK_IS_LINK)
        # Checked before reading: a FIFO named .ipynb would block, a huge file fill memory.
        if not stat.S_ISREG(status.st_mode):
            raise NotGradable(NOT_A_FILE)
        if status.st_size > MAX_NOTEBOOK_BYTES:
            raise NotGradable(_too_big(status.st_size))
        return path.read_bytes()
    except OSError as error:
        raise NotGradable(UNREADABLE) from error


def _notebook_text(data):
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is harmless: Windows editors
    except UnicodeDecodeError as error:
        raise NotGradable(NOT_TEXT) from error
    if "\x00" in text:  # zeros decode as UTF-8 but no notebook holds them
        raise NotGradable(NOT_TEXT)
    if not text.strip():
        raise NotGradable(EMPTY)
    return text


def _too_big(size):
    return (f"the notebook is {size_text(size)}, more than the "
            f"{size_text(MAX_NOTEBOOK_BYTES)} limit; clear its outputs and submit again")


def size_text(size):
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _parse_json(text):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise NotGradable(PYTHON_FILE if _looks_like_python(text) else NOT_JSON) from error


def _looks_like_python(text):
    if text.lstrip().startswith(("{", "[")):
        return False  # JSON that was cut off, not code
    try:
        return bool(ast.parse(text).body)
    except (SyntaxError, ValueError, RecursionError):
        return False


def _as_version_4(content):
    """An nbformat v4 notebook from parsed JSON, upgrading an older format if possible."""
    version = content.get("nbformat") if isinstance(content, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise NotGradable(NOT_A_NOTEBOOK)
    if version > 4:
        raise NotGradable(f"the notebook is in format version {version}, which the grader "
                           "does not know")
    if version == 4:
        if not isinstance(content.get("cells"), list):
            raise NotGradable(NOT_A_NOTEBOOK)
        return nbformat.from_dict(content), []
    return _upgraded(content, version), [f"the notebook was in the old format version "
                                         f"{version} and was converted to version 4"]


def _upgraded(content, version):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            notebook = nbformat.convert(nbformat.from_dict(content), 4)
    # nbformat's converters assume a well-formed notebook and fail in many ways otherwise.
    except Exception as error:
        raise NotGradable(f"the notebook is in the old format version {version}, which "
                           "could not be converted to version 4") from error
    if not isinstance(notebook.get("cells"), list):
        raise NotGradable(NOT_A_NOTEBOOK)
    return notebook


def _validated(notebook):
    """The notebook after the repairs nbformat can make, if it then fits nbformat's schema."""
    try:
        with warnings.catch_warnings():
            # nbformat warns about each repair (missing or duplicated cell ids).
            warnings.simplefilter("ignore")
            _, repaired = validator.normalize(notebook, strip_invalid_metadata=True)
            repaired = nbformat.from_dict(repaired)
            nbformat.validate(repaired)
    except Exception as error:  # ValidationError, or the schema walk tripping on junk
        raise NotGradable(DAMAGED) from error
    return repaired


def _graded_cell_notes(notebook, lab):
    counts = {exercise: 0 for exercise in lab.exercise_ids}
    for cell in notebook.cells:
        grade_id = cells.grade_id(cell)
        if grade_id in counts:
            counts[grade_id] += 1
    missing = [exercise for exercise, count in counts.items() if count == 0]
    if missing:
        raise NotGradable(f"the notebook has no {' or '.join(missing)} answer cell; it must "
                           f"be the released lab notebook, {lab.notebook_name}, with your "
                           "answers in its answer cells")
    return [f"{exercise} appears {DUPLICATE_COUNTS.get(count, f'{count} times')}; the later "
            "copy counts, as when you run the notebook"
            for exercise, count in counts.items() if count > 1]
