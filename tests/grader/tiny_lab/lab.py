"""The tiny lab's plug-in file: `python -m grader --lab tests/grader/tiny_lab/lab.py ...`.

grader.plugin.load_lab runs this file under a module name of its own that it does not put
in sys.modules. Neither can this file's siblings be imported relatively from it, nor can a
class defined here be found by inspect (grader.pipeline.grading_version digests the folder
of the lab's class, inspect.getfile(type(lab)), which looks the class's module up in
sys.modules). So the folder is loaded here as a package, registered in sys.modules as
importlib's documentation does for a source file imported directly, and the lab is
declared there (__init__.py); this file only makes it.
"""

import hashlib
import importlib.util
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
# One name per folder: a copy of the lab elsewhere (a test's) is a package of its own.
PACKAGE = f"grader_tests_tiny_lab_{hashlib.sha256(str(FOLDER).encode()).hexdigest()[:12]}"


def _package():
    """This folder as the package PACKAGE, loaded once per process."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACKAGE, FOLDER / "__init__.py", submodule_search_locations=[str(FOLDER)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = package
        try:
            spec.loader.exec_module(package)
        except BaseException:
            del sys.modules[PACKAGE]
            raise
    return sys.modules[PACKAGE]


TinyLab = _package().TinyLab
LAB = TinyLab()
