"""An nbgrader course built from a lab, and running nbgrader inside it.

nbgrader changes the working directory of the process it runs in (os.chdir in
converters/base.py), so it always runs here as a subprocess with its own cwd: our own
process never changes directory and stays safe to use from several threads.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grader
from grader.errors import GraderError
from grader.release_files import read_release_files, write_release_files

CONFIG_TEMPLATE = """\
# Written by grader.course: the configuration of a course made from the lab.
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = {db_url!r}
c.CourseDirectory.course_id = {course_id!r}
"""
# Only for releasing: it imports grader.course.stubs, which an instructor running nbgrader's own
# commands in a results course (export, formgrader) would not have on the path.
RELEASE_CONFIG = """
from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import ClearSolutions

from grader.course.stubs import ExerciseStubs

c.ClearSolutions.code_stub = {{"python": ""}}
c.ExerciseStubs.stubs = {stubs}
c.GenerateAssignment.preprocessors = [
    ExerciseStubs if step is ClearSolutions else step
    for step in GenerateAssignment.class_traits()["preprocessors"].default()
]
"""


class NbgraderError(GraderError, RuntimeError):
    """nbgrader exited with an error; the message carries the end of its log."""


@dataclass(frozen=True)
class Course:
    root: Path
    lab: object  # grader.plugin.Lab

    @property
    def source_dir(self):
        return self.root / "source" / self.lab.assignment

    @property
    def release_dir(self):
        return self.root / "release" / self.lab.assignment

    def autograded_notebook(self, student_id):
        return (self.root / "autograded" / student_id / self.lab.assignment
                / self.lab.notebook_name)


def create_course(root, lab, *, db_url=None, for_release=True, exchange=None):
    """Lay out an nbgrader course in `root` whose only assignment is `lab`; with
    `for_release`, its generate_assignment puts the lab's stubs in the student version;
    with `exchange` (a folder), nbgrader's exchange is there."""
    course = Course(Path(root).resolve(), lab)
    course.source_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(lab.source_notebook, course.source_dir / lab.notebook_name)
    copy_release_files(lab, course.source_dir)
    db_url = db_url or f"sqlite:///{course.root / 'gradebook.db'}"
    config = CONFIG_TEMPLATE.format(root=str(course.root), db_url=db_url,
                                    course_id=lab.course_id)
    if exchange is not None:
        config += f"c.Exchange.root = {str(exchange)!r}\n"
    if for_release:
        stubs = {exercise.id: exercise.stub for exercise in lab.exercises}
        config += RELEASE_CONFIG.format(stubs=json.dumps(stubs))
    (course.root / "nbgrader_config.py").write_text(config)
    return course


def copy_release_files(lab, destination):
    """Copy the files the notebook needs beside it (helpers, data, images, style)."""
    return write_release_files(read_release_files(lab), destination)


# nbgrader, killed with the grader: a grader killed while nbgrader sets up the gradebook must
# not leave it writing to the course beside the next batch's nbgrader. The signal comes when
# the thread that started it ends, and that thread waits for it: so, with the grader.
DIE_WITH_PARENT = """
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() == 1:
    sys.exit(1)
from nbgrader.apps.nbgraderapp import main
sys.argv[0] = "nbgrader"
sys.exit(main())
"""


def run_nbgrader(course, *args, timeout=600):
    """Run `nbgrader ARGS` in the course directory; raise NbgraderError on failure."""
    env = {**os.environ, "PYTHONPATH": python_path_with_grader(), "PATH": _path()}
    result = subprocess.run(
        [sys.executable, "-c", DIE_WITH_PARENT, *args],
        cwd=course.root, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        log = (result.stdout + result.stderr).strip().splitlines()
        raise NbgraderError(f"nbgrader {' '.join(args)} failed:\n" + "\n".join(log[-20:]))
    return result


def _path():
    # nbgrader runs the `alembic` command, which lives beside this interpreter even when
    # the virtualenv was never activated.
    return os.pathsep.join(filter(None, [str(Path(sys.executable).parent),
                                         os.environ.get("PATH")]))


def python_path_with_grader() -> str:
    """PYTHONPATH for a subprocess that imports this grader wherever it runs: the folder
    holding the package, then this process's PYTHONPATH. (The release config imports
    grader.course.stubs; the feedback page renderer imports its functions by name.)"""
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join(filter(None, [str(Path(grader.__file__).resolve().parents[1]),
                                         existing]))
