"""Intake: turn the instructor's SUBMISSIONS path into one record per student.

SUBMISSIONS is a folder of student folders, nbgrader's `submitted/<student>/<assignment>/`
layout (or the course root that holds `submitted`), or a .zip of either. Every student folder
yields exactly one Submission: a parsed notebook to grade, or the INVALID status with a
detail a student can act on. Only a problem with the whole input (no such path, a zip that
is unsafe or unreadable) raises IntakeError: then there are no students to report.
"""

import os
import re
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from grader.errors import GraderError
from grader.intake.notebook_file import (
    UNREADABLE,
    NotGradable,
    notebook_bytes,
    notebook_digest,
    read_notebook,
    size_text,
)
from grader.intake.student_ids import assign_ids, is_unsafe_name
from grader.lateness import read_timestamp_file
from grader.records import INVALID

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
EXCHANGE_SECRET_FILE = "submission_secret.txt"
MAX_SECRET_CHARACTERS = 256  # nbgrader writes 128 hex digits
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
FOLDER_IS_LINK = "the student's folder is a link to somewhere else; links are not accepted"


class IntakeError(GraderError):
    """The SUBMISSIONS path as a whole cannot be read: no student can be reported."""


@dataclass(frozen=True)
class Submission:
    """One student folder: the notebook to grade (read only when its turn comes, so that a
    class of any size costs little memory), or why there is none."""

    student_id: str
    notebook_path: Path | None
    status: str | None  # None when it may be gradable, else records.INVALID
    detail: str  # a note for the student and the instructor, "" if nothing to say
    digest: str = ""  # sha256 of the notebook file: the same file, the same digest
    folder: str = ""  # the student folder's name as submitted (the id may differ)
    timestamp: str = ""  # when it was submitted (ISO, UTC), from nbgrader's timestamp.txt
    # The secret nbgrader's exchange gave the student at submit time (submission_secret.txt),
    # which `nbgrader fetch_feedback` finds their feedback by; "" when none.
    exchange_secret: str = ""

    def notebook_bytes(self):
        """The file's bytes, which must not have changed since intake, or NotGradable."""
        try:
            return notebook_bytes(self.notebook_path, self.digest)
        except NotGradable:
            raise
        except Exception as error:  # as `read`: never the batch's failure
            raise NotGradable(UNREADABLE) from error

    def read(self, lab):
        """(notebook, notes) from the file, which must not have changed since intake, or
        NotGradable with the detail the student reads."""
        try:
            notebook, notes, _ = read_notebook(self.notebook_path, lab, self.digest)
        except NotGradable:
            raise
        # One student's file must never stop the batch, even by a way of breaking we missed.
        except Exception as error:
            raise NotGradable(UNREADABLE) from error
        return notebook, notes


@dataclass(frozen=True)
class Intake:
    submissions: tuple[Submission, ...]  # sorted by student id, one per student folder
    warnings: tuple[str, ...]  # for the instructor: what was ignored at the top level


def collect_submissions(path, scratch_dir, lab, known=None):
    """Read SUBMISSIONS (a folder or a .zip, unpacked into `scratch_dir`) of `lab`
    (grader.plugin.Lab) into an Intake; `known` maps the id of each student OUT already
    holds to their folder name (the journal's), so that no new folder takes their id."""
    path = Path(path)
    if path.is_dir():
        students_folder = _students_folder(path.resolve(), lab, unwrap=False)
    else:
        # Only a zip gets unwrapped: a folder is taken as given, so that one student's
        # folder is never mistaken for a wrapper.
        students_folder = _students_folder(_unzipped(path, Path(scratch_dir)), lab,
                                           unwrap=True)
    folders, notes = _student_folders(students_folder)
    submissions = [_submission(student_id, folder, problem, note, lab)
                   for student_id, folder, problem, note in _name_students(folders, known)]
    if not folders:
        notes.append(f"no student folders found in {path}")
    return Intake(tuple(sorted(submissions, key=lambda s: s.student_id)), tuple(notes))


# --- The input as a whole: a folder or a zip -------------------------------------------

def check_submissions_path(path):
    """IntakeError unless `path` is a folder or a .zip: checked before OUT is made, so that
    a mistyped path leaves nothing behind."""
    path = Path(path)
    if not path.exists():
        raise IntakeError(f"{path} does not exist")
    if not path.is_dir() and path.suffix.lower() != ".zip":
        raise IntakeError(f"{path} is a file; give a folder of submissions or a .zip of one")


def _unzipped(path, scratch_dir):
    check_submissions_path(path)
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
        raise IntakeError(f"{zip_name} unpacks to {size_text(total)}, more than the "
                          f"{size_text(MAX_ZIP_BYTES)} limit")
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

def _students_folder(root, lab, *, unwrap):
    """The folder whose subfolders are the students, in any of the accepted layouts."""
    for _ in range(MAX_WRAPPER_DEPTH + 1):
        submitted = root / NBGRADER_SUBMITTED
        if submitted.is_dir() and not submitted.is_symlink():
            return submitted
        wrapped = _wrapped_folder(root, lab) if unwrap else None
        if wrapped is None:
            return root
        root = wrapped
    return root


def _wrapped_folder(folder, lab):
    """The only entry of `folder` if it is a folder that wraps the layout, else None.

    A student's own folder is not a wrapper, even if it is the only one: it holds a
    notebook or nbgrader's assignment folder, and a wrapper holds folders only.
    """
    entries = _visible_entries(folder)
    if len(entries) != 1 or not _is_real_dir(entries[0]):
        return None
    inside = _visible_entries(entries[0])
    holds_folders = any(_is_real_dir(entry) for entry in inside)
    looks_like_student = any(entry.name == lab.assignment or _is_notebook_name(entry.name)
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

def _name_students(folders, known):
    """(student_id, folder, problem, note) per folder, ids unique across the batch and OUT
    (grader.intake.student_ids); a folder whose name cannot be an id is invalid."""
    ids = assign_ids([folder.name for folder in folders], known)
    named = []
    for folder in folders:
        assigned = ids[folder.name]
        problem = None
        if is_unsafe_name(folder.name):
            problem = (f"the folder name {folder.name!r} cannot be a student id because it"
                       " holds a path separator or a control character; rename the folder")
        named.append((assigned.student_id, folder, problem, assigned.note))
    return named


# --- One student: find the notebook and read it ---------------------------------------------

def _submission(student_id, folder, problem, note, lab):
    """`note` says why the id is not the folder name, if it is not: kept in every row."""
    if problem is None and folder.is_symlink():
        problem = FOLDER_IS_LINK
    if problem is not None:
        return Submission(student_id, None, INVALID, _joined(problem, note), folder=folder.name)
    notebook_path = None
    try:
        notebook_path, choice_notes = _choose_notebook(folder, lab)
        digest = notebook_digest(notebook_path)
    except NotGradable as not_gradable:
        return Submission(student_id, notebook_path, INVALID, _joined(str(not_gradable), note),
                          folder=folder.name)
    # One student's file must never stop the batch, even by a way of breaking we missed.
    except Exception:
        return Submission(student_id, notebook_path, INVALID, _joined(UNREADABLE, note),
                          folder=folder.name)
    return Submission(student_id, notebook_path, None, _joined(*choice_notes, note), digest,
                      folder=folder.name, timestamp=_timestamp(folder, notebook_path),
                      exchange_secret=_exchange_secret(folder, notebook_path))


def _timestamp(folder, notebook_path):
    """nbgrader's timestamp.txt beside the notebook, or in a folder between it and the
    student's folder (submitted/<student>/<assignment>/timestamp.txt); "" if none."""
    place = notebook_path.parent
    while True:
        timestamp = read_timestamp_file(place)
        if timestamp or place == folder or folder not in place.parents:
            return timestamp
        place = place.parent


def _exchange_secret(folder, notebook_path):
    """nbgrader's submission_secret.txt beside the notebook or between it and the student's
    folder, if it is what nbgrader writes (hex digits, at most MAX_SECRET_CHARACTERS); else
    "". It is written into OUT's course and read by nbgrader, so nothing else passes."""
    place = notebook_path.parent
    while folder == place or folder in place.parents:
        path = place / EXCHANGE_SECRET_FILE
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as stream:
                text = stream.read(MAX_SECRET_CHARACTERS + 2).decode("ascii", "replace").strip()
            ok = 0 < len(text) <= MAX_SECRET_CHARACTERS and set(text) <= HEX_DIGITS
            return text if ok else ""
        place = place.parent
    return ""


def _joined(*notes):
    return "; ".join(note for note in notes if note)


def _choose_notebook(folder, lab):
    """The notebook to grade in a student's folder, and a note if it is not the obvious one."""
    found = _notebooks_in(folder)
    by_name = [path for path in found if path.name == lab.notebook_name]
    if len(by_name) == 1:
        return by_name[0], []
    if len(by_name) > 1:
        raise NotGradable(f"{lab.notebook_name} is in several places "
                           f"({_listing(by_name, folder)}), so it is unclear which to grade")
    if not found:
        raise NotGradable(NO_NOTEBOOK)
    if len(found) > 1:
        raise NotGradable(f"several notebooks and none named {lab.notebook_name} "
                           f"({_listing(found, folder)}), so it is unclear which to grade")
    graded = found[0].relative_to(folder).as_posix()
    return found[0], [f"graded {graded}: the notebook was not named {lab.notebook_name}"]


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
