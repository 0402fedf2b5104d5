"""Write the demo class, demo/submitted/, from the test corpus (tests/grader/corpus).

`make demo` grades it. Five students in nbgrader's collected layout,
`submitted/<student>/C2_W2/C2_W2_Assignment.ipynb` with the `timestamp.txt` that
`nbgrader collect` leaves beside each notebook:

    right-on-time     both exercises right, submitted before the due date     100
    wrong-softmax     exp(z) not normalised (UNQ_C1 wrong)                     50
    wrong-model       a softmax output layer (UNQ_C2 wrong)                    50
    late-by-a-day     both right, 25 hours late: 2 started days at 10% a day   100 - 20
    broken-file       a notebook cut off in the middle: not valid JSON         invalid

Each notebook is the released lab with answers typed between the code markers, as the
corpus types them. Run it again after the lab's notebook changes (a test fails until then):

    .venv/bin/python tools/build_demo.py
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "grader"))

import corpus  # noqa: E402

from grader.course.release import release  # noqa: E402
from grader.labs.c2_w2 import LAB  # noqa: E402

DEMO = ROOT / "demo"
DUE = "2026-12-01T23:00:00Z"  # what `make demo` passes as --due
PENALTY = "10%"  # what `make demo` passes as --late-penalty
ON_TIME = "2026-12-01 21:30:00.000000 UTC"
LATE = "2026-12-03 00:00:00.000000 UTC"  # 25 h after DUE: 2 started days
# student id -> (answers typed into UNQ_C1 and UNQ_C2, timestamp.txt)
STUDENTS = {
    "right-on-time": (corpus.ANSWERS["ok-loop-softmax-input-model"], ON_TIME),
    "wrong-softmax": (corpus.ANSWERS["wrong-softmax-unnormalised"], ON_TIME),
    "wrong-model": (corpus.ANSWERS["wrong-model-softmax-output"], ON_TIME),
    "late-by-a-day": (corpus.ANSWERS["ok-vectorised-softmax-no-input"], LATE),
}
BROKEN = {"broken-file": (corpus.BROKEN_FILES / "truncated.ipynb", ON_TIME)}


def write_demo(destination):
    """Write the demo class into `destination` (its `submitted/` is replaced)."""
    submitted = Path(destination) / "submitted"
    shutil.rmtree(submitted, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="demo-release-") as released:
        notebook = nbformat.read(str(release(lab=LAB, out=released)), as_version=4)
        for student, ((softmax, model), stamp) in STUDENTS.items():
            folder = _student_folder(submitted, student, stamp)
            nbformat.write(corpus.answered(notebook, softmax, model),
                           str(folder / LAB.notebook_name))
    for student, (broken, stamp) in BROKEN.items():
        shutil.copyfile(broken, _student_folder(submitted, student, stamp) / LAB.notebook_name)
    return submitted


def _student_folder(submitted, student, stamp):
    folder = submitted / student / LAB.assignment
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_text(stamp + "\n", encoding="utf-8")
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEMO,
                        help="the folder to write submitted/ into (default demo/)")
    args = parser.parse_args(argv)
    print(f"Wrote the demo class into {write_demo(args.out)}")


if __name__ == "__main__":
    main()
