"""A lab's release files (what students get beside the notebook) as data that can travel to
another machine: read once by the coordinating process, written where they are needed (a
worker's folder, an nbgrader course, a student release)."""

from dataclasses import dataclass
from pathlib import Path

from grader import digest_of


@dataclass(frozen=True, eq=False)
class ReleaseFiles:
    digest: str  # sha256 of every path and content: the same files, the same digest
    files: dict  # path relative to the notebook (POSIX) -> content (bytes)


def read_release_files(lab):
    """The release files of `lab` (grader.plugin.Lab): folders walked, caches left out."""
    root = Path(lab.root)
    files = {}
    for name in lab.release_files:
        for path in _files_under(root / name):
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return ReleaseFiles(digest=digest_of(files), files=files)


def _files_under(path):
    if not path.is_dir():
        return [path]
    return sorted(found for found in path.rglob("*")
                  if found.is_file() and "__pycache__" not in found.parts)


def write_release_files(release, destination):
    """Write `release`'s files under `destination`; return it."""
    destination = Path(destination)
    for name, content in release.files.items():
        path = destination / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return destination
