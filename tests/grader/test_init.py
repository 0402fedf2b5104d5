"""What importing the grader does to its own process."""

import json
import subprocess
import sys

from grader.labs.c2_w2 import LAB as lab

PROBE = """
import json, sys
import grader.pipeline  # first, as in every grader process (python -m grader, a worker)
import nbformat
notebook = nbformat.read("C2_W2_Assignment.ipynb", as_version=4)
nbformat.validate(notebook)
notebook.cells[0]["cell_type"] = "not a cell type"
try:
    nbformat.validate(notebook)
    caught = False
except nbformat.ValidationError:
    caught = True
print(json.dumps({"caught": caught, "lark": "lark" in sys.modules}))
"""


def test_the_grader_skips_the_iri_grammar_and_still_validates_notebooks():
    # Run in a fresh interpreter: pytest's own process may have imported anything.
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            cwd=lab.root, timeout=120, check=True)
    assert json.loads(result.stdout) == {"caught": True, "lark": False}
