"""A throwaway nbgrader course built from the lab, and running nbgrader inside it.

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

from grader.labs.c2_w2 import lab
from grader.run.support_files import read_support_files, write_support_files

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


# nbgrader's default course id, "", makes no row in its course table, which PostgreSQL's
# foreign keys then refuse (sqlite does not check them); the gradebook is opened with it too.
COURSE_ID = "C2_W2_lab"


class NbgraderError(RuntimeError):
    """nbgrader exited with an error; the message carries the end of its log."""


@dataclass(frozen=True)
class Course:
    root: Path

    @property
    def source_dir(self):
        return self.root / "source" / lab.ASSIGNMENT

    @property
    def release_dir(self):
        return self.root / "release" / lab.ASSIGNMENT


def create_course(root, *, db_url=None, for_release=True):
    """Lay out an nbgrader course in `root` whose only assignment is the lab; with
    `for_release`, its generate_assignment puts our exercise stubs in the student version."""
    course = Course(Path(root).resolve())
    course.source_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(lab.SOURCE_NOTEBOOK, course.source_dir / lab.NOTEBOOK_NAME)
    copy_support_files(course.source_dir)
    db_url = db_url or f"sqlite:///{course.root / 'gradebook.db'}"
    config = CONFIG_TEMPLATE.format(root=str(course.root), db_url=db_url, course_id=COURSE_ID)
    if for_release:
        config += RELEASE_CONFIG.format(stubs=json.dumps(lab.EXERCISE_STUBS))
    (course.root / "nbgrader_config.py").write_text(config)
    return course


def copy_support_files(destination):
    """Copy the files the notebook needs beside it (helpers, data, images, style)."""
    return write_support_files(read_support_files(), destination)


def run_nbgrader(course, *args, timeout=600):
    """Run `nbgrader ARGS` in the course directory; raise NbgraderError on failure."""
    env = {**os.environ, "PYTHONPATH": _python_path(), "PATH": _path()}
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
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


def _python_path():
    # The config file imports grader.course.stubs, so the subprocess needs the lab root.
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join(filter(None, [str(lab.LAB_ROOT), existing]))
