"""Intake: turn the instructor's SUBMISSIONS path into one record per student.

SUBMISSIONS is a folder of student folders, nbgrader's `submitted/<student>/C2_W2/` layout
(or the course root that holds `submitted`), or a .zip of either. Every student folder
yields exactly one Submission: a parsed notebook to grade, or the INVALID status with a
detail a student can act on. Only a problem with the whole input (no such path, a zip that
is unsafe or unreadable) raises IntakeError: then there are no students to report.
"""

import ast
import json
import os
import re
import stat
import tempfile
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import validator

from grader.labs.c2_w2 import lab
from grader.records import INVALID

MAX_NOTEBOOK_BYTES = 50 * 1024**2
MAX_ZIP_ENTRIES = 5000
MAX_ZIP_BYTES = 2 * 1024**3
# Deep enough for `<student>/C2_W2/<notebook>` plus a folder of the student's own, and
# shallow enough that a student who uploads a whole home directory costs little.
MAX_SEARCH_DEPTH = 3
# A zip wraps the layout in at most a folder or two (`submissions/`, `course/submitted/`).
MAX_WRAPPER_DEPTH = 3
NBGRADER_SUBMITTED = "submitted"
# Not students' work: Jupyter's autosaves and the resource forks macOS adds to zips.
IGNORED_FOLDERS = frozenset({".ipynb_checkpoints", "__MACOSX"})

# Details a student reads: one sentence each, no traceback.
NO_NOTEBOOK = "no notebook found in the student's folder"
FOLDER_IS_LINK = "the student's folder is a link to somewhere else; links are not accepted"
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
DUPLICATE_COUNTS = {2: "twice", 3: "three times"}


class IntakeError(Exception):
    """The SUBMISSIONS path as a whole cannot be read: no student can be reported."""


class _NotGradable(Exception):
    """One student's submission is invalid; the message is the detail the student reads."""


@dataclass(frozen=True)
class Submission:
    student_id: str
    notebook_path: Path | None
    notebook: dict | None  # the parsed notebook (nbformat v4), when readable
    status: str | None  # None when gradable, else records.INVALID
    detail: str  # a note for the student and the instructor, "" if nothing to say


@dataclass(frozen=True)
class Intake:
    submissions: tuple[Submission, ...]  # sorted by student id, one per student folder
    warnings: tuple[str, ...]  # for the instructor: what was ignored at the top level


def collect_submissions(path, scratch_dir):
    """Read SUBMISSIONS (a folder or a .zip, unpacked into `scratch_dir`) into an Intake."""
    path = Path(path)
    if path.is_dir():
        students_folder = _students_folder(path.resolve(), unwrap=False)
    else:
        # Only a zip gets unwrapped: a folder is taken as given, so that one student's
        # folder is never mistaken for a wrapper.
        students_folder = _students_folder(_unzipped(path, Path(scratch_dir)), unwrap=True)
    folders, notes = _student_folders(students_folder)
    named, id_notes = _name_students(folders)
    submissions = [_submission(student_id, folder, problem)
                   for student_id, folder, problem in named]
    if not folders:
        notes.append(f"no student folders found in {path}")
    return Intake(tuple(sorted(submissions, key=lambda s: s.student_id)),
                  tuple(notes + id_notes))


# --- The input as a whole: a folder or a zip -------------------------------------------

def _unzipped(path, scratch_dir):
    if not path.exists():
        raise IntakeError(f"{path} does not exist")
    if path.suffix.lower() != ".zip":
        raise IntakeError(f"{path} is a file; give a folder of submissions or a .zip of one")
    scratch_dir.mkdir(parents=True, exist_ok=True)
    destination = Path(tempfile.mkdtemp(prefix="submissions-", dir=scratch_dir))
    _unzip(path, destination)
    return destination.resolve()


def _unzip(zip_path, destination):
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            _check_zip(zip_path.name, members)
            for member in members:
                _extract(archive, member, destination)
    except zipfile.BadZipFile as error:
        raise IntakeError(f"{zip_path.name} is not a readable zip file ({error})") from error
    except (OSError, EOFError) as error:
        raise IntakeError(f"{zip_path.name} could not be unpacked ({error})") from error
    # zipfile's way of saying a member is encrypted, or packed with a compression it lacks
    # (NotImplementedError is a RuntimeError).
    except RuntimeError as error:
        raise IntakeError(f"{zip_path.name} could not be unpacked ({error}); unpack it "
                          "yourself and give the folder") from error


def _check_zip(zip_name, members):
    """Refuse the whole zip before writing anything if any entry is unsafe."""
    if len(members) > MAX_ZIP_ENTRIES:
        raise IntakeError(f"{zip_name} holds {len(members)} entries, more than the "
                          f"{MAX_ZIP_ENTRIES} a zip of submissions may hold")
    # Declared sizes can be trusted as a bound: zipfile reads no more than the declared
    # size of a member and checks its CRC.
    total = sum(member.file_size for member in members)
    if total > MAX_ZIP_BYTES:
        raise IntakeError(f"{zip_name} unpacks to {_size_text(total)}, more than the "
                          f"{_size_text(MAX_ZIP_BYTES)} limit")
    for member in members:
        _member_parts(zip_name, member)


def _member_parts(zip_name, member):
    """The path components a member unpacks to, or IntakeError if it is unsafe."""
    name = member.filename
    if stat.S_ISLNK(member.external_attr >> 16):
        raise IntakeError(f"{zip_name} holds a symbolic link ({name!r}); refusing to unpack it")
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise IntakeError(f"{zip_name} holds an entry with an absolute path ({name!r}); "
                          "refusing to unpack it")
    # Zips made on Windows sometimes separate with backslashes: treat them as separators,
    # so that `..\\` cannot hide a climb out of the folder.
    parts = [part for part in re.split(r"[\\/]", name) if part not in ("", ".")]
    if ".." in parts:
        raise IntakeError(f"{zip_name} holds an entry that climbs out of its folder "
                          f"({name!r}); refusing to unpack it")
    return parts


def _extract(archive, member, destination):
    parts = _member_parts(Path(archive.filename).name, member)
    if not parts:
        return
    target = destination.joinpath(*parts)
    if member.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(member) as source, open(target, "wb") as sink:
        while chunk := source.read(1024 * 1024):
            sink.write(chunk)


# --- Layout: where the student folders are -------------------------------------------------

def _students_folder(root, *, unwrap):
    """The folder whose subfolders are the students, in any of the accepted layouts."""
    for _ in range(MAX_WRAPPER_DEPTH + 1):
        submitted = root / NBGRADER_SUBMITTED
        if submitted.is_dir() and not submitted.is_symlink():
            return submitted
        wrapped = _wrapped_folder(root) if unwrap else None
        if wrapped is None:
            return root
        root = wrapped
    return root


def _wrapped_folder(folder):
    """The only entry of `folder` if it is a folder that wraps the layout, else None.

    A student's own folder is not a wrapper, even if it is the only one: it holds a
    notebook or nbgrader's assignment folder, and a wrapper holds folders only.
    """
    entries = _visible_entries(folder)
    if len(entries) != 1 or not _is_real_dir(entries[0]):
        return None
    inside = _visible_entries(entries[0])
    holds_folders = any(_is_real_dir(entry) for entry in inside)
    looks_like_student = any(entry.name == lab.ASSIGNMENT or _is_notebook_name(entry.name)
                             for entry in inside)
    return entries[0] if holds_folders and not looks_like_student else None


def _student_folders(students_folder):
    """The student folders (links included, to be refused one by one) and top-level notes."""
    folders, notes = [], []
    for entry in _visible_entries(students_folder):
        if entry.is_dir():
            folders.append(entry)
        else:
            notes.append(f"ignored {entry.name}: a file at the top level of the submissions "
                         "is not a student's folder")
    return folders, notes


def _visible_entries(folder):
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [entry for entry in entries if not _is_ignored(entry.name)]


def _is_ignored(name):
    return name.startswith(".") or name in IGNORED_FOLDERS


def _is_real_dir(path):
    return path.is_dir() and not path.is_symlink()


def _is_notebook_name(name):
    return name.lower().endswith(".ipynb")


# --- Student ids ----------------------------------------------------------------------------

def _name_students(folders):
    """(student_id, folder, problem) per folder, ids unique even on case-blind file systems.

    Ids are folder names as they are; a name unsafe as a path component later gets a
    made-safe id and an invalid row, or is skipped if that id would clash with another.
    """
    named, notes = [], []
    taken = {_id_key(folder.name) for folder in folders if not _is_unsafe_name(folder.name)}
    for folder in folders:
        if not _is_unsafe_name(folder.name):
            named.append((folder.name, folder, None))
            continue
        safe_id = _made_safe(folder.name)
        if _id_key(safe_id) in taken:
            notes.append(f"skipped the folder {folder.name!r}: its name cannot be a student "
                         "id, and made safe it would clash with another student's")
            continue
        taken.add(_id_key(safe_id))
        named.append((safe_id, folder, f"the folder name {folder.name!r} cannot be a student "
                      "id because it holds a path separator or a control character; rename "
                      "the folder"))
    return _refuse_lookalike_ids(named), notes


def _refuse_lookalike_ids(named):
    """Ids equal but for letter case or Unicode form would share a file on some systems."""
    by_key = {}
    for student_id, _, _ in named:
        by_key.setdefault(_id_key(student_id), []).append(student_id)
    refused = []
    for student_id, folder, problem in named:
        others = [other for other in by_key[_id_key(student_id)] if other != student_id]
        if others and problem is None:
            problem = (f"the folder name {student_id!r} differs from {others[0]!r} only in "
                       "letter case or character encoding, which some file systems treat "
                       "as the same name; rename one of them")
        refused.append((student_id, folder, problem))
    return refused


def _id_key(student_id):
    return unicodedata.normalize("NFC", student_id).casefold()


def _is_unsafe_name(name):
    return any(_is_unsafe_character(char) for char in name)


def _is_unsafe_character(char):
    return char in "/\\" or unicodedata.category(char) == "Cc"


def _made_safe(name):
    return "".join("_" if _is_unsafe_character(char) else char for char in name)


# --- One student: find the notebook and read it ---------------------------------------------

def _submission(student_id, folder, problem):
    if problem is None and folder.is_symlink():
        problem = FOLDER_IS_LINK
    if problem is not None:
        return Submission(student_id, None, None, INVALID, problem)
    notebook_path = None
    try:
        notebook_path, choice_notes = _choose_notebook(folder)
        notebook, reading_notes = _read_notebook(notebook_path)
    except _NotGradable as not_gradable:
        return Submission(student_id, notebook_path, None, INVALID, str(not_gradable))
    # One student's file must never stop the batch, even by a way of breaking we missed.
    except Exception:
        return Submission(student_id, notebook_path, None, INVALID, UNREADABLE)
    return Submission(student_id, notebook_path, notebook, None,
                      "; ".join(choice_notes + reading_notes))


def _choose_notebook(folder):
    """The notebook to grade in a student's folder, and a note if it is not the obvious one."""
    found = _notebooks_in(folder)
    by_name = [path for path in found if path.name == lab.NOTEBOOK_NAME]
    if len(by_name) == 1:
        return by_name[0], []
    if len(by_name) > 1:
        raise _NotGradable(f"{lab.NOTEBOOK_NAME} is in several places "
                           f"({_listing(by_name, folder)}), so it is unclear which to grade")
    if not found:
        raise _NotGradable(NO_NOTEBOOK)
    if len(found) > 1:
        raise _NotGradable(f"several notebooks and none named {lab.NOTEBOOK_NAME} "
                           f"({_listing(found, folder)}), so it is unclear which to grade")
    graded = found[0].relative_to(folder).as_posix()
    return found[0], [f"graded {graded}: the notebook was not named {lab.NOTEBOOK_NAME}"]


def _notebooks_in(folder):
    """Every visible notebook under `folder`, without following links to folders."""
    found = []
    for current, subfolders, files in os.walk(folder, followlinks=False):
        depth = len(Path(current).relative_to(folder).parts)
        subfolders[:] = [] if depth >= MAX_SEARCH_DEPTH else \
            [name for name in subfolders if not _is_ignored(name)]
        found += [Path(current, name) for name in files
                  if _is_notebook_name(name) and not _is_ignored(name)]
    return sorted(found)


def _listing(paths, folder):
    return ", ".join(path.relative_to(folder).as_posix() for path in paths)


def read_submitted_notebook(path):
    """One notebook file, checked as intake checks a student's: (notebook, None) when it
    can be graded, (None, detail) when not. For `grader validate`."""
    try:
        notebook, _ = _read_notebook(Path(path))
    except _NotGradable as not_gradable:
        return None, str(not_gradable)
    return notebook, None


def _read_notebook(path):
    """The notebook as nbformat v4 and notes for the student, or _NotGradable."""
    text = _notebook_text(path)
    content = _parse_json(text)
    try:
        notebook, notes = _as_version_4(content)
    except RecursionError as error:  # nesting no notebook has, that nbformat recurses into
        raise _NotGradable(DAMAGED) from error
    if not notebook.cells:
        raise _NotGradable(NO_CELLS)
    notebook = _validated(notebook)
    return notebook, notes + _graded_cell_notes(notebook)


def _notebook_text(path):
    try:
        status = path.lstat()
        if stat.S_ISLNK(status.st_mode):
            raise _NotGradable(NOTEBOOK_IS_LINK)
        # Checked before reading: a FIFO named .ipynb would block, a huge file fill memory.
        if not stat.S_ISREG(status.st_mode):
            raise _NotGradable(NOT_A_FILE)
        if status.st_size > MAX_NOTEBOOK_BYTES:
            raise _NotGradable(_too_big(status.st_size))
        data = path.read_bytes()
    except OSError as error:
        raise _NotGradable(UNREADABLE) from error
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is harmless: Windows editors
    except UnicodeDecodeError as error:
        raise _NotGradable(NOT_TEXT) from error
    if "\x00" in text:  # zeros decode as UTF-8 but no notebook holds them
        raise _NotGradable(NOT_TEXT)
    if not text.strip():
        raise _NotGradable(EMPTY)
    return text


def _too_big(size):
    return (f"the notebook is {_size_text(size)}, more than the "
            f"{_size_text(MAX_NOTEBOOK_BYTES)} limit; clear its outputs and submit again")


def _size_text(size):
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _parse_json(text):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise _NotGradable(PYTHON_FILE if _looks_like_python(text) else NOT_JSON) from error


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
        raise _NotGradable(NOT_A_NOTEBOOK)
    if version > 4:
        raise _NotGradable(f"the notebook is in format version {version}, which the grader "
                           "does not know")
    if version == 4:
        if not isinstance(content.get("cells"), list):
            raise _NotGradable(NOT_A_NOTEBOOK)
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
        raise _NotGradable(f"the notebook is in the old format version {version}, which "
                           "could not be converted to version 4") from error
    if not isinstance(notebook.get("cells"), list):
        raise _NotGradable(NOT_A_NOTEBOOK)
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
        raise _NotGradable(DAMAGED) from error
    return repaired


def _graded_cell_notes(notebook):
    counts = {exercise: 0 for exercise in lab.EXERCISES}
    for cell in notebook.cells:
        grade_id = _grade_id(cell)
        if grade_id in counts:
            counts[grade_id] += 1
    missing = [exercise for exercise, count in counts.items() if count == 0]
    if missing:
        raise _NotGradable(f"the notebook has no {' or '.join(missing)} answer cell; it must "
                           f"be the released lab notebook, {lab.NOTEBOOK_NAME}, with your "
                           "answers in its answer cells")
    return [f"{exercise} appears {DUPLICATE_COUNTS.get(count, f'{count} times')}; the later "
            "copy counts, as when you run the notebook"
            for exercise, count in counts.items() if count > 1]


def _grade_id(cell):
    metadata = cell.get("metadata")
    nbgrader_metadata = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return nbgrader_metadata.get("grade_id") if isinstance(nbgrader_metadata, dict) else None
