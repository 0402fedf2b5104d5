"""Formulas drawn for the feedback pages (grader/publish/standalone.py) are the same bytes in
every process: a resumed batch must write the pages an uninterrupted one writes."""

import subprocess
import sys

from grader.publish.standalone import _drawn

DRAW = "import sys; from grader.publish.standalone import _drawn; " \
       "sys.stdout.buffer.write(_drawn(r'a_j = \\frac{e^{z_j}}{\\sum_k e^{z_k}}')[0])"


def test_a_formula_is_the_same_bytes_in_another_process(project_root):
    here = _drawn(r"a_j = \frac{e^{z_j}}{\sum_k e^{z_k}}")[0]
    there = subprocess.run([sys.executable, "-c", DRAW], capture_output=True, check=True,
                           cwd=project_root, timeout=120).stdout
    assert here == there
    assert b"<metadata>" not in here and b"dc:date" not in here
