"""What the grader knows about the lab: where it lives and which files students get."""

from pathlib import Path

LAB_ROOT = Path(__file__).resolve().parents[3]
ASSIGNMENT = "C2_W2"
NOTEBOOK_NAME = "C2_W2_Assignment.ipynb"
SOURCE_NOTEBOOK = LAB_ROOT / NOTEBOOK_NAME

# Everything the notebook needs beside it, relative to LAB_ROOT.
SUPPORT_FILES = (
    "autils.py",
    "lab_utils_softmax.py",
    "softmax_explorer_model.py",
    "public_tests.py",
    "deeplearning.mplstyle",
    "data",
    "images",
)

EXERCISES = ("UNQ_C1", "UNQ_C2")
EXERCISE_TITLES = {"UNQ_C1": "my_softmax", "UNQ_C2": "Sequential model"}
# The nbgrader test cell that grades each exercise (grade: true, 50 points, hidden tests).
HIDDEN_TEST_CELLS = {f"{exercise}_test": exercise for exercise in EXERCISES}

# What replaces each reference solution in the student version. UNQ_C1 keeps `a` defined
# so that running the untouched notebook reaches the public test, which then explains
# what is missing, instead of stopping at a NameError in the demo line before it.
EXERCISE_STUBS = {
    "UNQ_C1": "a = None   # replace None: compute the softmax of z",
    "UNQ_C2": "",
}
