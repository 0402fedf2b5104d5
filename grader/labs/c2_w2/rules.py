"""The lab's rules (lab_rules.py, beside the notebook), loaded into the grader's process.

The rules are written once, in the students' wing: the public tests import them, plain
nbgrader's hidden tests import them in the kernel, and the grader's judges call them here
on what the capture recorded. They are not secret (the hidden inputs are), and they need
only NumPy, so the grader may load them. They are loaded from their file under a name of
the grader's own, so that nothing in sys.path decides which copy the judges use.
"""

import importlib.util
import sys

from grader.labs.c2_w2.files import lab_files_folder

RULES_FILE = "lab_rules.py"
_PATH = lab_files_folder() / RULES_FILE
_NAME = "grader.labs.c2_w2.lab_rules"


def _load():
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses look their module up while it runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_NAME]
        raise
    return module


lab_rules = _load()
