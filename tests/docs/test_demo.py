"""`make demo` works in a fresh clone of the repository and grades the demo class as
demo/README.md says; the committed demo class is what tools/build_demo.py writes.

The clone is of the commit checked out (what is not committed is not in it), and it uses
this test's own virtual environment (`make demo VENV=...`), marked as up to date (`make
-o`) so that nothing is installed: the clone's own `grader` package is imported, since
`python -m grader` runs from the clone's root.
"""

import csv
import filecmp
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
# student -> (status, score, penalty, final_score), as demo/README.md's table says
EXPECTED = {
    "right-on-time": ("graded", "100", "0", "100"),
    "wrong-softmax": ("graded", "50", "0", "50"),
    "wrong-model": ("graded", "50", "0", "50"),
    "late-by-a-day": ("graded", "100", "20", "80"),
    "broken-file": ("invalid", "0", "0", "0"),
}
FEEDBACK_PAGE = "demo/out/feedback/wrong-softmax/C2_W2_Assignment.html"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """(the clone, the finished `make demo`)."""
    clone = tmp_path_factory.mktemp("fresh") / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True,
                   capture_output=True, timeout=300)
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    made = subprocess.run(["make", "--no-print-directory", "demo", f"VENV={VENV}",
                           "-o", f"{VENV}/.installed"], cwd=clone, env=environment,
                          capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stdout + made.stderr
    return clone, made


def test_make_demo_grades_the_class_as_its_readme_says(demo_run):
    clone, _ = demo_run
    with (clone / "demo" / "out" / "grades.csv").open(newline="", encoding="utf-8") as file:
        rows = {row["student_id"]: row for row in csv.DictReader(file)}
    graded = {student: (row["status"], row["score"], row["penalty"], row["final_score"])
              for student, row in rows.items()}
    assert graded == EXPECTED
    readme = (clone / "demo" / "README.md").read_text(encoding="utf-8")
    for student, (status, score, penalty, final) in EXPECTED.items():
        assert f"| `{student}` |" in readme and f"| {status} | {score} | {penalty} | {final} |" \
            in readme, student


def test_make_demo_says_where_the_report_and_a_feedback_page_are(demo_run):
    clone, made = demo_run
    assert "Report: demo/out/report.html" in made.stdout
    assert f"A student's feedback page: {FEEDBACK_PAGE}" in made.stdout
    assert (clone / "demo" / "out" / "report.html").is_file()
    assert "exp(z) without normalising" in (clone / FEEDBACK_PAGE).read_text(encoding="utf-8")


def test_the_committed_demo_class_is_what_the_build_script_writes(tmp_path):
    build_demo = importlib.import_module("tools.build_demo")
    written = build_demo.write_demo(tmp_path)
    committed = ROOT / "demo" / "submitted"
    assert _files(written) == _files(committed)
    for name in _files(committed):
        assert filecmp.cmp(written / name, committed / name, shallow=False), \
            f"demo/submitted/{name} is stale: run .venv/bin/python tools/build_demo.py"


def _files(folder):
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                  if path.is_file())
