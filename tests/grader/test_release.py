"""`python -m grader release`: the student version that nbgrader's generate_assignment makes."""

import platform
import shutil
import subprocess
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel

from grader.course.release import (
    ReleaseCheckError,
    ReleaseExistsError,
    check_student_version,
    release,
)
from grader.labs.c2_w2 import LAB as lab
from tools.run_notebook import read_notebook, run_notebook

KERNEL_INFO_TIMEOUT = 60  # seconds: a kernel starting on a busy 2-core machine


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    return release(lab=lab, out=out)


def _cells_by_grade_id(notebook):
    return {cell.metadata["nbgrader"]["grade_id"]: cell for cell in notebook.cells
            if "nbgrader" in cell.metadata}


def test_release_holds_the_notebook_and_every_support_file(released):
    for name in lab.release_files:
        assert (released.parent / name).exists(), name
    assert (released.parent / "data" / "X.npy").stat().st_size == \
        (lab.root / "data" / "X.npy").stat().st_size


def test_solutions_are_replaced_by_stubs_inside_the_code_markers(released):
    cells = _cells_by_grade_id(read_notebook(released))
    for grade_id, stub in ((e.id, e.stub) for e in lab.exercises):
        source = cells[grade_id].source
        start = source.index("### START CODE HERE ###")
        end = source.index("### END CODE HERE ###")
        between_markers = {line.strip() for line in source[start:end].splitlines()[1:]}
        assert between_markers in ({stub}, {"", stub})
        assert "BEGIN SOLUTION" not in source
    assert "np.exp" not in cells["UNQ_C1"].source
    assert "Dense(" not in cells["UNQ_C2"].source


def test_no_solution_marker_and_no_output_anywhere(released):
    notebook = read_notebook(released)
    text = nbformat.writes(notebook)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    assert "HIDDEN TESTS" not in text and "__GRADER_ANSWER__" not in text
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


def test_given_cells_are_locked_and_answer_cells_editable(released):
    for grade_id, cell in _cells_by_grade_id(read_notebook(released)).items():
        editable = cell.metadata.get("editable", True)
        assert editable == (grade_id in lab.exercise_ids), grade_id


def test_student_version_holds_the_kernel_metadata_jupyterlab_writes(released):
    # JupyterLab marks a notebook unsaved on opening when these differ from what it writes.
    metadata = read_notebook(released).metadata
    assert metadata.kernelspec == {"display_name": "Python 3 (ipykernel)",
                                   "language": "python", "name": "python3"}
    assert metadata.language_info == {
        "name": "python",
        "version": platform.python_version(),
        "mimetype": "text/x-python",
        "file_extension": ".py",
        "codemirror_mode": {"name": "ipython", "version": 3},
        "pygments_lexer": "ipython3",
        "nbconvert_exporter": "python",
    }


def test_kernel_metadata_equals_what_the_installed_kernel_reports(released):
    """JupyterLab takes language_info from the kernel's kernel_info_reply and kernelspec
    from the kernel spec it started: the released notebook must hold the same."""
    metadata = read_notebook(released).metadata
    spec = KernelSpecManager().get_kernel_spec(metadata.kernelspec.name)
    assert metadata.kernelspec == {"display_name": spec.display_name,
                                   "language": spec.language, "name": "python3"}
    manager, client = start_new_kernel(kernel_name=metadata.kernelspec.name,
                                       startup_timeout=KERNEL_INFO_TIMEOUT)
    try:
        request = client.kernel_info()
        reply = client.get_shell_msg(timeout=KERNEL_INFO_TIMEOUT)
        while reply["parent_header"].get("msg_id") != request:
            reply = client.get_shell_msg(timeout=KERNEL_INFO_TIMEOUT)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert metadata.language_info == reply["content"]["language_info"]


def test_existing_notebook_is_never_overwritten_without_force(released):
    released.write_text("a student's work")
    with pytest.raises(ReleaseExistsError):
        release(lab=lab, out=released.parent)
    assert released.read_text() == "a student's work"
    release(lab=lab, out=released.parent, force=True)
    check_student_version(released, lab)


def test_check_refuses_a_notebook_that_still_has_a_solution():
    with pytest.raises(ReleaseCheckError):
        check_student_version(lab.source_notebook, lab)


def test_cli_reports_an_existing_release_as_an_error(released):
    result = subprocess.run([sys.executable, "-m", "grader", "release", "--out",
                             str(released.parent)], capture_output=True, text=True,
                            cwd=lab.root)
    assert result.returncode == 1
    assert "already exists" in result.stderr and "--force" in result.stderr


def test_untouched_release_reaches_the_public_tests_and_explains(released):
    run = run_notebook(read_notebook(released), released.parent)
    softmax_cell = run.cell_containing("a = my_softmax(z)")
    model_test_cell = run.cell_containing("test_model(model, 10, 400)")
    for cell in (softmax_cell, model_test_cell):
        assert not [o for o in cell.outputs if o.output_type == "error"]
    assert "compute the softmax of z" in run.shown_text(softmax_cell)
    assert "Expected 3 Dense layers" in run.shown_text(model_test_cell)
    assert "All tests passed!" not in run.stdout()


def test_a_student_who_completes_the_release_sees_both_tests_pass(released_lab, tmp_path):
    import corpus

    shutil.copytree(released_lab, tmp_path / "lab")
    notebook = corpus.answered(read_notebook(tmp_path / "lab" / lab.notebook_name),
                               corpus.LOOP, corpus.MODEL)
    run = run_notebook(notebook, tmp_path / "lab")
    assert run.errors() == [] and run.stderr_texts() == []
    assert run.stdout().count("All tests passed!") == 2
    assert "errors out of 5000 images" in run.stdout()
