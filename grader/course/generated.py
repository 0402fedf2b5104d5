"""nbgrader's generate_assignment, run once for each set of inputs: what it made is kept in a
cache and copied into every later course made from the same inputs.

generate_assignment costs about 5 s and 6 core-seconds (nbgrader's imports, alembic, the
preprocessors), and every fresh OUT and every `grader release` ran it for the same lab. What it
writes depends only on the course's configuration, its source folder and nbgrader's version:
two courses in different folders get the same release files and the same gradebook rows, but
for nbgrader's random row ids. So the key is a digest of exactly those (the course's own
folder and gradebook file written as placeholders) and of our own preprocessors' code; an
entry holds the release folder and, for a results course whose gradebook is a fresh SQLite
file, that file. Each entry is private to its user (mode 700): the gradebook holds the hidden
tests' source.

    $GRADER_CACHE_DIR (default $XDG_CACHE_HOME/c2w2-grader, else ~/.cache/c2w2-grader)
        courses/<key>/release/<assignment>/...   what nbgrader released
        courses/<key>/gradebook.db               the gradebook it made (results courses)
        courses/<key>/manifest.json              sha256 of each file above

An entry appears whole or not at all (written beside, then renamed), and one whose files no
longer match its manifest is removed and made again. GRADER_CACHE_DIR=off turns the cache off.
The cache belongs to whoever runs the grader, like their home folder: it guards against a
half-written or damaged entry, not against someone who may write there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import grader
from grader.course.course import Course, run_nbgrader

log = logging.getLogger(__name__)

CACHE_ENV = "GRADER_CACHE_DIR"
CACHE_OFF = "off"
MANIFEST = "manifest.json"
GRADEBOOK = "gradebook.db"
ROOT_PLACEHOLDER = "<course root>"
GRADEBOOK_PLACEHOLDER = "<gradebook file>"
# What nbgrader's output depends on besides the course: its own code and the gradebook's.
TOOLS = ("nbgrader", "nbconvert", "nbformat", "sqlalchemy", "alembic")


def cache_root() -> Path | None:
    """The grader's cache folder, its user's (generated courses, the templates' import
    turns); None when the cache is off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen == CACHE_OFF:
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "c2w2-grader"


def cache_folder() -> Path | None:
    """Where generated courses are kept; None when the cache is off."""
    root = cache_root()
    return None if root is None else root / "courses"


def generate_release(course: Course) -> None:
    """What `nbgrader generate_assignment --force` releases in `course` (its gradebook is of no
    use: a scratch course's), from the cache when the same inputs made it before."""
    _generate(course, None)


def generate_results(course: Course, gradebook: Path | None) -> None:
    """`nbgrader generate_assignment --force` in a results course: its release and its
    gradebook's assignment. `gradebook` is the gradebook's SQLite file; when it is fresh
    (missing or empty) both may come from the cache. nbgrader itself writes any other
    gradebook: another database, or one that already holds students."""
    if gradebook is None or not _fresh(gradebook):
        _run(course)
    else:
        _generate(course, gradebook)


def _generate(course, gradebook):
    folder = cache_folder()
    if folder is None:
        _run(course)
        return
    entry = folder / course_key(course, gradebook)
    if not _intact(entry):
        _run(course)
        _store(course, gradebook, entry)
        return
    log.debug("nbgrader's generate_assignment taken from %s", entry)
    shutil.copytree(entry / "release", course.root / "release", dirs_exist_ok=True)
    if gradebook is not None:
        _copy_file(entry / GRADEBOOK, gradebook)


def course_key(course: Course, gradebook: Path | None) -> str:
    """The digest of what generate_assignment's output depends on (see the module's doc)."""
    config = (course.root / "nbgrader_config.py").read_text(encoding="utf-8")
    if gradebook is not None:
        config = config.replace(str(gradebook), GRADEBOOK_PLACEHOLDER)
    files = {f"source/{path.relative_to(course.source_dir).as_posix()}": path.read_bytes()
             for path in sorted(course.source_dir.rglob("*")) if path.is_file()}
    files["config"] = config.replace(str(course.root), ROOT_PLACEHOLDER).encode()
    files["tools"] = json.dumps({name: version(name) for name in TOOLS}).encode()
    # The release's stubs come from our own preprocessor (grader.course.stubs).
    files["engine"] = grader.source_digest(Path(__file__).parent).encode()
    files["assignment"] = course.lab.assignment.encode()
    files["gradebook"] = b"yes" if gradebook is not None else b"no"
    return grader.digest_of(files)[:32]


def _run(course):
    run_nbgrader(course, "generate_assignment", course.lab.assignment, "--force")


def _fresh(gradebook):
    return not gradebook.exists() or gradebook.stat().st_size == 0


def _files_of(entry):
    return {path.relative_to(entry).as_posix(): path for path in sorted(entry.rglob("*"))
            if path.is_file() and path.name != MANIFEST}


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _intact(entry):
    """The entry exists and its files are those its manifest names, unchanged; a damaged
    entry is removed (the caller makes it again)."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        files = _files_of(entry)
        if manifest == {name: _sha256(path) for name, path in files.items()}:
            return True
    except (OSError, ValueError):
        if not entry.exists():
            return False
    log.warning("the cached nbgrader course %s is damaged: it is made again", entry)
    shutil.rmtree(entry, ignore_errors=True)
    return False


def _store(course, gradebook, entry):
    """Keep what nbgrader made in `entry`. A cache that cannot be written costs only the
    time: grading goes on without it."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
        try:
            shutil.copytree(course.root / "release", staging / "release")
            if gradebook is not None:
                shutil.copy2(gradebook, staging / GRADEBOOK)
            manifest = {name: _sha256(path) for name, path in _files_of(staging).items()}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            # Another process may have stored the same entry meanwhile: theirs stays.
            with contextlib.suppress(OSError):
                staging.rename(entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as error:
        log.warning("the nbgrader course could not be kept in the cache (%s): %s", entry,
                    error)


def _copy_file(source, destination):
    """Copy, then rename into place: nobody sees a half-copied gradebook."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, destination)
