"""The instructor's wing: release a lab to students and grade their submissions.

The engine treats a lab as data (grader.plugin): it reads the source notebook and copies
the release files, and never imports the lab's helper modules into its own process.
"""

import functools
import hashlib
import sys
from pathlib import Path

__version__ = "0.10.0"

# jsonschema imports rfc3987_syntax, when installed (JupyterLab brings it), only to check
# strings of the "iri" format, and that module compiles a Lark grammar as it is imported:
# 1.5 s of the start of every grader process here (the command, each Dask worker), for a
# format no schema the grader validates uses (nbformat's, nbgrader's). Marked missing in
# the grader's own processes only: a kernel forked from the template takes the mark out
# (unskip_imports), so a student's code sees the packages as installed.
SKIPPED_IMPORTS = ("rfc3987_syntax",)
for _name in SKIPPED_IMPORTS:
    sys.modules.setdefault(_name, None)


def unskip_imports():
    """Take out the marks of SKIPPED_IMPORTS as missing: import them for real from now on."""
    for name in SKIPPED_IMPORTS:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


@functools.cache
def engine_version():
    """The version and a digest of the engine's code (the labs left out): two processes
    with the same engine_version grade alike. A Dask worker must match its coordinator."""
    return f"{__version__}+{source_digest(Path(__file__).parent, skip=('labs',))[:12]}"


def source_digest(folder, skip=()):
    """sha256 of every .py file under `folder` (paths and contents), folders in `skip`
    left out."""
    folder = Path(folder)
    files = {path.relative_to(folder).as_posix(): path.read_bytes()
             for path in sorted(folder.rglob("*.py"))
             if path.relative_to(folder).parts[0] not in skip and "__pycache__" not in path.parts}
    return digest_of(files)


def digest_of(files):
    """sha256 of {name: bytes}: the same names and contents, the same digest."""
    sha = hashlib.sha256()
    for name in sorted(files):
        for part in (name.encode(), files[name]):
            sha.update(len(part).to_bytes(8, "big"))  # lengths first: no two splits alike
            sha.update(part)
    return sha.hexdigest()
