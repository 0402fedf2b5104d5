"""The build's one step beyond pyproject.toml: the C2_W2 lab's own files (its source
notebook, helpers, data and figures) stay at the repository's root, the students' side,
and travel in the built package as grader/labs/c2_w2/lab_files/, where the plug-in finds
them when the grader is installed rather than run from a checkout."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# folder in the package -> the root's files and folders copied there; the same list as the
# plug-in's notebook_name and release_files (tests/grader/test_packaging.py checks it).
LAB_FILES = {
    "grader/labs/c2_w2/lab_files": (
        "C2_W2_Assignment.ipynb", "autils.py", "lab_utils_softmax.py",
        "softmax_explorer_model.py", "public_tests.py", "lab_rules.py",
        "deeplearning.mplstyle", "data", "images"),
}


class BuildWithLabFiles(build_py):
    """build_py, then a copy of LAB_FILES into the built package. An editable install
    reads the checkout itself, so it gets no copy."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for folder, names in LAB_FILES.items():
            for name in names:
                self._copy(ROOT / name, Path(self.build_lib) / folder / name)

    def _copy(self, source, target):
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", ".*"))
        else:
            shutil.copy2(source, target)


setup(cmdclass={"build_py": BuildWithLabFiles})
