"""The student version of a lab: nbgrader's generate_assignment plus the release files, and
the student's check that needs nothing else (grader.course.check_my_work)."""

import copy
import shutil
import tempfile
from pathlib import Path

import nbformat

from grader import cells
from grader.course.check_my_work import write_check_my_work
from grader.course.course import create_course
from grader.course.generated import generate_release
from grader.errors import GraderError


class ReleaseExistsError(GraderError, FileExistsError):
    """The output folder already holds a notebook, perhaps with a student's work."""


def release(*, lab, out, force=False):
    """Write the student version of `lab` into `out`; return the notebook's path.

    Refuses to overwrite an existing notebook unless `force`: it may hold a student's work.
    """
    out = Path(out)
    notebook = out / lab.notebook_name
    if notebook.exists() and not force:
        raise ReleaseExistsError(
            f"{notebook} already exists and may hold work; use --force to replace it")
    with tempfile.TemporaryDirectory(prefix="grader-release-") as scratch:
        course = create_course(scratch, lab)
        generate_release(course)
        released = course.release_dir / lab.notebook_name
        check_student_version(released, lab)
        write_kernel_metadata(released)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(course.release_dir, out, dirs_exist_ok=True)
    write_check_my_work(out, lab, notebook)
    return notebook


def kernel_metadata():
    """The notebook's `kernelspec` and `language_info` as JupyterLab sets them once the
    kernel is ready, taken from ipykernel for the Python running this (the venv's, whose
    kernel the lab runs).

    JupyterLab writes what the kernel reports into the notebook's metadata; a notebook that
    holds less (the source has only `language_info: {name: python}`) is marked unsaved the
    moment it opens, before the student has done anything.
    """
    # Imported here: only a release needs ipykernel's kernel class.
    from ipykernel.ipkernel import IPythonKernel
    from ipykernel.kernelspec import KERNEL_NAME, get_kernel_dict

    spec = get_kernel_dict()
    return {
        "kernelspec": {"display_name": spec["display_name"], "language": spec["language"],
                       "name": KERNEL_NAME},
        "language_info": copy.deepcopy(IPythonKernel.language_info),
    }


def write_kernel_metadata(path):
    """Give the notebook at `path` the full kernel metadata (see kernel_metadata)."""
    notebook = nbformat.read(str(path), as_version=4)
    notebook.metadata.update(kernel_metadata())
    nbformat.write(notebook, str(path))


class ReleaseCheckError(GraderError, RuntimeError):
    """The generated student version is not what students must get."""


def check_student_version(path, lab):
    """Refuse a student version that still holds a solution or lacks an exercise stub.

    nbgrader only logs a broken nbgrader_config.py and goes on with its defaults, so
    this is what catches a release made without our stubs.
    """
    notebook = nbformat.read(str(path), as_version=4)
    sources = {cells.grade_id(cell): cell.source for cell in notebook.cells}
    for exercise in lab.exercises:
        grade_id, stub = exercise.id, exercise.stub
        source = sources.get(grade_id, "")
        if "BEGIN SOLUTION" in source or stub not in source or "NotImplementedError" in source:
            raise ReleaseCheckError(f"{grade_id} in the student version is not stubbed as "
                                    f"configured:\n{source}")
