"""A second lab, tiny, for the engine's tests: one NumPy exercise, `column_means(X)`.

    Mean_Assignment.ipynb   the nbgrader source notebook (assignment TINY, exercise EX1)
    tiny_helpers.py         the one release file: a sample matrix and the public test
    hidden_inputs.py        the hidden matrices, drawn from each grading's secret
    in_kernel.py            the capture, run in the student's kernel on the matrices sent
    judge.py                the judge of EX1, with partial credit

This package is the plug-in: the engine loads the folder (--lab tests/grader/tiny_lab) and
reads its LAB, as grader/labs/c2_w2/__init__.py declares C2_W2.
"""

from pathlib import Path

from grader.plugin import Exercise, Lab

from . import hidden_inputs, in_kernel
from .judge import judge_column_means


class TinyLab(Lab):
    assignment = "TINY"
    notebook_name = "Mean_Assignment.ipynb"
    root = Path(__file__).resolve().parent
    release_files = ("tiny_helpers.py",)
    course_id = "tiny_lab"
    exercises = (
        Exercise("EX1", "EX1_test", in_kernel.SUBJECT,
                 stub="means = None   # replace None: the mean of each column of X"),
    )
    preload_modules = ("numpy",)  # all the notebook imports besides its helper
    default_seed = hidden_inputs.DEFAULT_SEED  # of the notebook's block for nbgrader

    def capture_source(self):
        return Path(in_kernel.__file__).read_text(encoding="utf-8")

    def hidden_inputs(self, secret):
        return hidden_inputs.hidden_inputs(secret)

    def judge(self, run, secret):
        return judge_column_means(run, secret)


LAB = TinyLab()
