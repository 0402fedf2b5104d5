"""The lab as a student uses it: the released notebook in JupyterLab, in headless Chromium.

The student opens the notebook (not marked unsaved, no nbgrader instructor's tools in
sight), types the answers into the two graded cells, runs all cells from the menu, reads
the public tests' verdicts, looks at the figures, moves a softmax slider, saves, and checks
the saved notebook with `python -m grader validate`. Everything is read from the page,
never from the kernel.
"""

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from browser_answers import (
    EXERCISES,
    PROJECT_ROOT,
    PUBLIC_TEST_CELLS,
    SOURCE_NOTEBOOK,
    answered_cell,
    cell_index,
    code_cell_count,
    figure_cell_indices,
    markdown_headings,
    read_notebook,
    reference_solutions,
    release_student_version,
    unnormalised_softmax_lines,
)
from browser_notebook import DIRTY, EXECUTED_PROMPT, NotebookPage, new_notebook_page
from playwright.sync_api import expect

from grader.labs.c2_w2 import LAB

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

VALIDATE_TIMEOUT = 300  # seconds: starts TensorFlow and runs the notebook once
SLIDER_STEPS = 5  # ArrowRight presses on a softmax slider
# The readout shows each probability with 3 decimals: their sum can be off by 4 * 0.0005.
ROUNDED_SUM_TOLERANCE = 0.002
ROUNDED_VALUE_TOLERANCE = 0.0006

SOURCE = read_notebook(SOURCE_NOTEBOOK)
FIGURE_CELLS = figure_cell_indices(SOURCE)
MARKDOWN_IMAGE = re.compile(r"""<img\s[^>]*src=["'](images/[^"']+)["']""")
READOUT_VECTOR = re.compile(r"\[([^\]]*)\]")
READOUT_SUM = re.compile(r"sum = (-?[\d.]+)")

# What nbgrader's JupyterLab and server extensions would show: instructor's tools that
# make lab turns off (tools/student_lab.py).
NBGRADER_MENU = "Nbgrader"
NBGRADER_VALIDATE_BUTTON = ".jp-NotebookPanel-toolbar .validate-button"
NBGRADER_CREATE_ASSIGNMENT_PANEL = "#nbgrader-create_assignemnt"  # nbgrader's spelling
NBGRADER_CREATE_ASSIGNMENT_TAB = "Nbgrader Create Assignment"  # the side bar tab's title
NBGRADER_SERVER_PATHS = ("formgrader", "formgraders", "assignments", "assignments/validate",
                         "courses", "nbgrader_version")
NOT_FOUND = 404


def _figure_param(index):
    source = SOURCE.cells[index].source
    return pytest.param(index, id=f"cell{index:02d}-{_slug(source.splitlines()[0])}")


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:30]


@dataclass
class StudentNotebook:
    """A released notebook open in the browser, and what the student typed into it."""

    shown: NotebookPage
    url_path: str
    typed: dict = field(default_factory=dict)  # grade id -> the cell's code as typed


def _open_released(chromium, lab_server, screenshots, folder):
    """Release a fresh student version into `folder` of the server's root and open it."""
    path = release_student_version(lab_server.root_dir / folder)
    shown = new_notebook_page(chromium, path)
    screenshots.page = shown.page
    url_path = f"{folder}/{path.name}"
    shown.open(lab_server.notebook_url(url_path, workspace=folder))
    screenshots.take(f"{folder} opened")
    return StudentNotebook(shown, url_path)


def _type_answer(student, screenshots, exercise, answer_lines):
    shown = student.shown
    index = cell_index(shown.notebook, exercise)
    text = answered_cell(shown.notebook.cells[index].source, answer_lines)
    shown.type_into_cell(index, text)
    assert shown.editor_text(index) == text, f"the editor of {exercise} does not hold the answer"
    student.typed[exercise] = text
    screenshots.take(f"{exercise} typed", shown.cell(index))


def _run_all(student, screenshots):
    student.shown.run_all_cells()
    screenshots.take("after Run All")


@pytest.fixture(scope="module")
def student(chromium, lab_server, screenshots):
    student = _open_released(chromium, lab_server, screenshots, "student")
    yield student
    student.shown.close()


@pytest.fixture(scope="module")
def completed(student, screenshots):
    """The student's notebook with both reference answers typed in, after Run All."""
    for exercise, answer in reference_solutions().items():
        _type_answer(student, screenshots, exercise, answer)
    _run_all(student, screenshots)
    return student


def _explorer_cell(shown):
    return next(i for i, cell in enumerate(shown.notebook.cells)
                if cell.cell_type == "code" and "plt_softmax(" in cell.source)


def _read_readout(readout):
    """(z, softmax values, the sum shown, the softmax line) from the explorer's readout."""
    z_line = readout.locator(".softmax-z").text_content()
    softmax_line = readout.locator(".softmax-output").text_content()
    z = _vector(z_line)
    values = _vector(softmax_line)
    shown_sum = float(READOUT_SUM.search(softmax_line).group(1))
    return z, values, shown_sum, softmax_line


def _vector(line):
    return np.array([float(v) for v in READOUT_VECTOR.search(line).group(1).split()])


def _softmax(z):
    exp_z = np.exp(z - z.max())
    return exp_z / exp_z.sum()


def test_opened_notebook_is_not_marked_unsaved(student, screenshots):
    # Once the kernel is ready JupyterLab writes its kernelspec and language_info into the
    # notebook's metadata, which marks the notebook unsaved unless it held them already.
    # The fixture waited for the idle kernel: by then a release without them is marked.
    shown = student.shown
    expect(shown.tab()).to_have_count(1)
    screenshots.take("opened, nothing done yet", shown.tab())
    expect(shown.tab()).not_to_have_class(DIRTY)
    expect(shown.dirty_tabs()).to_have_count(0)


def test_no_nbgrader_instructor_tools_are_shown(student, lab_server, screenshots):
    page = student.shown.page
    menu_bar = page.get_by_role("menubar")
    expect(menu_bar.get_by_role("menuitem", name="Run", exact=True)).to_have_count(1)
    expect(menu_bar.get_by_role("menuitem", name=NBGRADER_MENU)).to_have_count(0)
    expect(page.locator(".jp-NotebookPanel-toolbar")).to_have_count(1)
    expect(page.locator(NBGRADER_VALIDATE_BUTTON)).to_have_count(0)
    expect(page.locator(NBGRADER_CREATE_ASSIGNMENT_PANEL)).to_have_count(0)
    expect(page.get_by_title(NBGRADER_CREATE_ASSIGNMENT_TAB)).to_have_count(0)
    screenshots.take("no nbgrader menu, button or panel")
    # Nor its server extensions: formgrader, assignment list, nbgrader's validator.
    assert {path: lab_server.status_of(path) for path in NBGRADER_SERVER_PATHS} == \
        dict.fromkeys(NBGRADER_SERVER_PATHS, NOT_FOUND)


def test_opened_notebook_shows_the_headings_and_figures_of_the_text(student, screenshots):
    shown = student.shown
    expected_headings = markdown_headings(shown.notebook)
    expect(shown.heading_elements()).to_have_count(len(expected_headings))  # all rendered
    assert shown.headings() == expected_headings
    markdown = "\n".join(c.source for c in shown.notebook.cells if c.cell_type == "markdown")
    expected_sources = MARKDOWN_IMAGE.findall(markdown)
    assert expected_sources
    images = shown.markdown_images()
    expect(images).to_have_count(len(expected_sources))
    for image, source in zip(images.all(), expected_sources, strict=True):
        shown.wait_until_image_loaded(image)  # naturalWidth > 0: the file was served and read
        assert f"/files/{student.url_path.rsplit('/', 1)[0]}/{source}" in image.evaluate(
            "img => img.src")
        screenshots.take(f"text figure {Path(source).name}", image)


def test_typed_answers_pass_both_public_tests_without_errors(completed, screenshots):
    shown = completed.shown
    prompts = shown.executed_prompts()
    assert len(prompts) == code_cell_count(shown.notebook)
    assert all(EXECUTED_PROMPT.match(prompt) for prompt in prompts), prompts
    for exercise in EXERCISES:
        index = cell_index(shown.notebook, PUBLIC_TEST_CELLS[exercise])
        expect(shown.outputs(index)).to_contain_text(LAB.public_tests_passed)
        screenshots.take(f"{exercise} public tests", shown.cell(index))
    expect(shown.stderr_and_error_outputs()).to_have_count(0)


def test_my_softmax_prints_what_tensorflow_prints(completed):
    shown = completed.shown
    printed = shown.output_text(cell_index(shown.notebook, PUBLIC_TEST_CELLS["UNQ_C1"]))
    mine = re.search(r"my_softmax\(z\):\s*(\[.*?\])", printed).group(1)
    tensorflow = re.search(r"tensorflow softmax\(z\):\s*(\[.*?\])", printed).group(1)
    assert mine == tensorflow


def test_each_figure_cell_shows_one_live_figure(completed):
    shown = completed.shown
    assert figure_cell_indices(shown.notebook) == FIGURE_CELLS  # the release kept them
    # The widget manager renders ipympl's canvases a moment after the outputs arrive.
    expect(shown.figures()).to_have_count(len(FIGURE_CELLS))
    for index in FIGURE_CELLS:
        expect(shown.figures(index)).to_have_count(1)
        # The PNG a saved notebook carries must not show as well as the live figure.
        expect(shown.static_images_in_outputs(index)).to_have_count(0)


@pytest.mark.parametrize("index", [_figure_param(index) for index in FIGURE_CELLS])
def test_figure_is_drawn_on_its_canvas(completed, screenshots, index):
    shown = completed.shown
    figure = shown.figures(index).first
    figure.scroll_into_view_if_needed()
    try:
        shown.wait_until_figure_drawn(figure)
    finally:
        screenshots.take(f"figure of cell {index}", shown.outputs(index))


def test_moving_a_softmax_slider_updates_the_bars_and_the_readout(completed, screenshots):
    shown = completed.shown
    cell = shown.cell(_explorer_cell(shown))
    readout, figure = cell.locator(".softmax-readout"), cell.locator(".jupyter-matplotlib-figure")
    shown.wait_until_figure_drawn(figure)
    z_before, values_before, _, _ = _read_readout(readout)
    np.testing.assert_allclose(values_before, _softmax(z_before), atol=ROUNDED_VALUE_TOLERANCE)
    picture_before = shown.canvas_picture(figure)
    screenshots.take("softmax explorer before", cell)

    handle = cell.locator(".widget-slider .noUi-handle").first
    value_before = handle.get_attribute("aria-valuenow")
    handle.focus()
    for _ in range(SLIDER_STEPS):
        shown.page.keyboard.press("ArrowRight")
    expect(handle).not_to_have_attribute("aria-valuenow", value_before)
    z0 = float(handle.get_attribute("aria-valuenow"))
    assert z0 > float(value_before)
    # The readout follows once the kernel has recomputed the softmax for the new z0.
    expect(readout.locator(".softmax-z")).to_have_text(re.compile(rf"^z = \[{z0:.3f} "))
    shown.wait_until_canvas_changes(figure, picture_before)  # the bars were redrawn
    screenshots.take("softmax explorer after", cell)

    z, values, shown_sum, line = _read_readout(readout)
    np.testing.assert_allclose(z[1:], z_before[1:])
    assert not np.allclose(values, values_before)
    np.testing.assert_allclose(values, _softmax(z), atol=ROUNDED_VALUE_TOLERANCE)
    assert abs(values.sum() - 1) <= ROUNDED_SUM_TOLERANCE, line
    assert shown_sum == pytest.approx(1.0, abs=5e-4), line


def test_saved_notebook_passes_grader_validate(completed, screenshots):
    shown = completed.shown
    shown.save()
    screenshots.take("saved")
    saved = read_notebook(shown.path)
    for exercise, typed in completed.typed.items():
        assert saved.cells[cell_index(saved, exercise)].source == typed, exercise
    result = subprocess.run([sys.executable, "-m", "grader", "validate", str(shown.path)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=VALIDATE_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    for exercise in EXERCISES:
        assert f"{exercise} ({LAB.exercise(exercise).title}): public tests pass" in result.stdout


def test_unnormalised_softmax_shows_the_public_test_failure(chromium, lab_server, screenshots):
    # Imported here: public_tests brings in Keras, which only this test needs.
    from public_tests import softmax_problems

    student = _open_released(chromium, lab_server, screenshots, "wrong-softmax")
    try:
        _answer_with_unnormalised_softmax(student, screenshots)
        shown = student.shown
        test_cell = cell_index(shown.notebook, PUBLIC_TEST_CELLS["UNQ_C1"])
        problems = softmax_problems(_defined_function(student.typed["UNQ_C1"], "my_softmax"))
        assert problems
        expect(shown.outputs(test_cell)).to_contain_text(problems[0].splitlines()[0])
        screenshots.take("UNQ_C1 failure message", shown.cell(test_cell))
        printed = shown.output_text(test_cell)
        assert LAB.public_tests_passed not in printed
        for problem in problems:
            assert problem in printed
        model_test = cell_index(shown.notebook, PUBLIC_TEST_CELLS["UNQ_C2"])  # only UNQ_C1 fails
        expect(shown.outputs(model_test)).to_contain_text(LAB.public_tests_passed)
        _assert_explorer_shows_the_wrong_sum(shown)
        expect(shown.stderr_and_error_outputs()).to_have_count(0)
    finally:
        student.shown.close()


def _answer_with_unnormalised_softmax(student, screenshots):
    notebook = student.shown.notebook
    stub = notebook.cells[cell_index(notebook, "UNQ_C1")].source
    _type_answer(student, screenshots, "UNQ_C1", unnormalised_softmax_lines(stub))
    _type_answer(student, screenshots, "UNQ_C2", reference_solutions()["UNQ_C2"])
    _run_all(student, screenshots)


def _defined_function(cell_source, name):
    """The function a cell defines, run here with the names the notebook gives it."""
    namespace = {"np": np}
    exec(cell_source, namespace)  # the test's own typed text, not outside input
    return namespace[name]


def _assert_explorer_shows_the_wrong_sum(shown):
    readout = shown.cell(_explorer_cell(shown)).locator(".softmax-readout")
    z, values, shown_sum, line = _read_readout(readout)
    np.testing.assert_allclose(values, np.exp(z), rtol=1e-3)
    assert shown_sum == pytest.approx(np.exp(z).sum(), rel=1e-3), line
    assert "should be 1" in line
