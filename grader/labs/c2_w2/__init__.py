"""The C2_W2 lab as a grader plug-in: everything the engine knows about it, declared once.

    hidden_inputs.py    the hidden inputs' recipes, drawn from each grading's secret
    in_kernel.py        the capture, run in the student's kernel on the inputs it is sent
    rules.py            loads the lab's rules (lab_rules.py, beside the notebook), which the
                        public tests, the judges and the hidden tests all apply
    softmax.py          the judge of UNQ_C1 (my_softmax)
    model.py            the judge of UNQ_C2 (the Sequential model)
    nbgrader_tests.py   the hidden tests plain nbgrader runs, written into the notebook

The lab's own files (the source notebook, its helpers, data and figures) live at the
repository's root, the students' side; this package only describes them. An installed
grader (`pip install .`) carries a copy of them in lab_files/ (setup.py makes it).
"""

from pathlib import Path

from grader.labs.c2_w2 import hidden_inputs, in_kernel
from grader.labs.c2_w2.files import lab_files_folder
from grader.labs.c2_w2.model import judge_model
from grader.labs.c2_w2.softmax import judge_softmax
from grader.plugin import Exercise, Lab


class C2W2(Lab):
    assignment = "C2_W2"
    notebook_name = "C2_W2_Assignment.ipynb"
    root = lab_files_folder()
    # lab_rules.py holds what counts as right and every message: the public tests import
    # it, and so do the hidden tests plain nbgrader runs; the grader loads it too
    # (grader/labs/c2_w2/rules.py). Rules are not secret; the hidden inputs are.
    release_files = ("autils.py", "lab_utils_softmax.py", "softmax_explorer_model.py",
                     "public_tests.py", "lab_rules.py", "deeplearning.mplstyle", "data",
                     "images")
    # nbgrader's default course id, "", makes no row in its course table, which
    # PostgreSQL's foreign keys then refuse (sqlite does not check them).
    course_id = "C2_W2_lab"
    exercises = (
        # UNQ_C1's stub keeps `a` defined so that running the untouched notebook reaches
        # the public test, which then explains what is missing, instead of stopping at a
        # NameError in the demo line before it.
        Exercise("UNQ_C1", "UNQ_C1_test", "my_softmax",
                 stub="a = None   # replace None: compute the softmax of z"),
        Exercise("UNQ_C2", "UNQ_C2_test", "Sequential model"),
    )
    # Imported once by each worker's kernel template, so that no submission pays for them.
    # ipywidgets' hook into a running kernel is installed in each kernel the template
    # forks (import_turns.hook_preloaded_into_kernel); ipympl is left to `%matplotlib
    # widget`, since importing it switches matplotlib's backend, and its own import is
    # small once ipywidgets and the web backend are in (measured in a kernel: 0.008 CPU s
    # against their 0.038).
    # numpy.random is left out: imported once, every kernel would draw the same numbers.
    preload_modules = ("numpy", "tensorflow", "tensorflow.keras.models",
                       "tensorflow.keras.layers", "tensorflow.keras.activations",
                       "matplotlib", "matplotlib.pyplot", "ipywidgets",
                       "matplotlib.backends.backend_webagg_core")
    default_seed = hidden_inputs.NBGRADER_SEED
    _judges = {"UNQ_C1": judge_softmax, "UNQ_C2": judge_model}

    def capture_source(self):
        return Path(in_kernel.__file__).read_text(encoding="utf-8")

    def hidden_inputs(self, secret):
        return hidden_inputs.hidden_inputs(secret)

    def judge(self, run, secret):
        return self._judges[run.exercise](run, secret)


LAB = C2W2()
