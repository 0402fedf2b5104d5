"""The instructor's wing: release a lab to students and grade their submissions.

The engine treats a lab as data (grader.plugin): it reads the source notebook and copies
the release files, and never imports the lab's helper modules into its own process.
"""

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


# What decides a verdict, on the engine's side: bumped by hand whenever the engine changes how
# verdicts are made (what a capture may see, how answers are prepared and judged, how
# hidden inputs are drawn). With the lab's own digest it makes the grading version
# (grader.plugin.grading_version); a docstring fixed anywhere else changes neither.
GRADING_ABI = 1
# The engine modules whose code can change a verdict, and their digest when GRADING_ABI
# was last decided: tests/grader/test_grading_version.py fails when they change, asking
# for a bump of GRADING_ABI or a new recorded digest (a change that makes no verdict
# differ).
VERDICT_MODULES = ("judge", "run/captures.py", "intake/prepare.py", "cells.py",
                   "hidden_secrets.py")
# Recorded again, ABI unchanged: for the capture's cap of 4 MB (was 32; C2_W2's largest
# honest answer is 0.23 MB, so no real answer's verdict changes), then for type hints, then
# for the "our fault" sentence moving into judge/status.py (a worker writes it too).
VERDICT_MODULES_DIGEST = "4d7ed4a0f0b91027"


def engine_version():
    """The package's version and its grading ABI: a Dask worker grades for a coordinator
    only when both match."""
    return f"{__version__}+abi{GRADING_ABI}"


def verdict_modules_digest():
    """sha256 of VERDICT_MODULES' code, as it is now (for the reminder's test)."""
    package = Path(__file__).parent
    files = {}
    for name in VERDICT_MODULES:
        path = package / name
        paths = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        files.update({item.relative_to(package).as_posix(): item.read_bytes()
                      for item in paths if "__pycache__" not in item.parts})
    return digest_of(files)


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
