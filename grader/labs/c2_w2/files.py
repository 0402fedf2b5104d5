"""Where the lab's own files (its source notebook, helpers, lab_rules.py, data and figures)
are: at the repository's root, the students' side, in a checkout (an editable install
too); in lab_files/ beside this module when the grader is installed (`pip install .`:
setup.py copies them there as it builds the package)."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def lab_files_folder():
    """The installed package's copy of the lab's files, or else the checkout's root."""
    installed = _PACKAGE / "lab_files"
    return installed if installed.is_dir() else _PACKAGE.parents[2]
