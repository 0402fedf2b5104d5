"""A JupyterLab notebook in the browser, seen and used as a student does.

Every wait is on the page's own state (the kernel indicator, the cells' prompts, the
document's dirty mark, the canvases' pixels), never a fixed sleep.
"""

import re

try:
    from playwright.sync_api import expect
except ImportError as error:  # a failure with a clear message, never a skip: CI installs it
    raise ImportError("Playwright for Python is not installed: the browser tests need it "
                      "(`.venv/bin/pip install -r requirements.txt`).") from error

from browser_answers import read_notebook

# Playwright's assertions wait 5 s by default: too short for a kernel busy on a 2-core machine.
expect.set_options(timeout=30_000)

VIEWPORT = {"width": 1400, "height": 1000}
DEFAULT_TIMEOUT_MS = 30_000  # any single action or check of the page
OPEN_TIMEOUT_MS = 90_000  # JupyterLab's first load and the kernel's start
RUN_ALL_TIMEOUT_MS = 240_000  # the whole lab: ~8-15 s of kernel time, more on a busy machine
FIGURE_TIMEOUT_MS = 20_000  # figures get their first picture once the kernel is free again
SAVE_TIMEOUT_MS = 30_000

CELLS = ".jp-Notebook .jp-Cell"
KERNEL_INDICATOR = ".jp-Notebook-ExecutionIndicator"
EXECUTED_PROMPT = re.compile(r"^\[\d+\]:$")
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
FIGURE = ".jupyter-matplotlib-figure"
# ipympl draws the figure on the first canvas; the second, on top, is for rubber bands.
FIGURE_CANVAS = ".jupyter-matplotlib-canvas-div canvas >> nth=0"
STATIC_IMAGE = ".jp-RenderedImage"
MAIN_AREA_TABS = "#jp-main-dock-panel .lm-TabBar-tab"
DIRTY = re.compile(r"\bjp-mod-dirty\b")  # the class of a tab whose document is unsaved

# Run All has finished when some cell shows an execution count ([12]:) and none is queued or
# running ([*]:). JupyterLab marks every queued cell at once, and cells after an error are
# never run, so waiting for all of them would only turn a wrong answer into a timeout.
RUN_FINISHED = """() => {
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
        .map(prompt => prompt.textContent.trim());
    return prompts.some(p => /^\\[\\d+\\]:$/.test(p)) && !prompts.includes('[*]:');
}"""
# The distinct colours on a canvas (capped): a blank canvas has one, a drawn figure many.
CANVAS_COLOURS = """canvas => {
    if (!canvas.width || !canvas.height) return 0;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const seen = new Set();
    for (let i = 0; i < pixels.length && seen.size < 64; i += 4) {
        seen.add((pixels[i] << 24 | pixels[i + 1] << 16 | pixels[i + 2] << 8) + pixels[i + 3]);
    }
    return seen.size;
}"""
MIN_COLOURS_OF_A_DRAWN_FIGURE = 3  # background, axes and ink at the very least
IMAGE_LOADED = "img => img.complete && img.naturalWidth > 0"
EDITOR_TEXT = """cell => [...cell.querySelectorAll('.jp-Editor .cm-line')]
    .map(line => line.textContent).join('\\n')"""


def new_notebook_page(browser, path):
    """A page for the notebook at `path`, in a fresh browser context: no cookies or
    storage shared with other tests."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    return NotebookPage(context.new_page(), path)


class NotebookPage:
    """One notebook open in JupyterLab in a Playwright page."""

    def __init__(self, page, path):
        self.page = page
        self.path = path
        # The notebook as it was opened: cell indices and counts to compare the page with.
        self.notebook = read_notebook(path)

    def close(self):
        self.page.context.close()

    def open(self, url):
        self.page.goto(url)
        expect(self.page.locator(CELLS)).to_have_count(len(self.notebook.cells),
                                                       timeout=OPEN_TIMEOUT_MS)
        self.wait_for_idle_kernel(OPEN_TIMEOUT_MS)

    def wait_for_idle_kernel(self, timeout_ms):
        expect(self.page.locator(f'{KERNEL_INDICATOR}[data-status="idle"]')).to_have_count(
            1, timeout=timeout_ms)
        expect(self.page.get_by_title(re.compile("^Change kernel"))).to_have_text(
            re.compile(r"\| Idle$"), timeout=timeout_ms)

    def cell(self, index):
        return self.page.locator(CELLS).nth(index)

    def heading_elements(self):
        return self.page.locator(".jp-MarkdownOutput :is(h1, h2, h3, h4, h5, h6)")

    def headings(self):
        """The text of the rendered markdown headings, without JupyterLab's anchor mark."""
        texts = self.heading_elements().all_text_contents()
        return [text.replace("\N{PILCROW SIGN}", "").strip() for text in texts]

    def markdown_images(self):
        return self.page.locator(".jp-MarkdownOutput img")

    def wait_until_image_loaded(self, image):
        image.scroll_into_view_if_needed()
        self.page.wait_for_function(IMAGE_LOADED, arg=image.element_handle())

    def type_into_cell(self, index, text):
        """Replace a cell's code through its editor: click, select all, insert."""
        editor = self.cell(index).locator(".jp-Editor .cm-content")
        editor.click()
        self.page.keyboard.press("ControlOrMeta+a")
        self.page.keyboard.insert_text(text)
        self.page.keyboard.press("Escape")  # back to command mode, as after typing

    def editor_text(self, index):
        return self.cell(index).evaluate(EDITOR_TEXT)

    def run_all_cells(self):
        """Run > Run All Cells on a notebook not run yet; wait until no cell is queued or
        running any more."""
        assert not any(EXECUTED_PROMPT.match(p) for p in self.executed_prompts()), \
            "Run All is only waited for on a notebook that has not run yet"
        self._menu("Run", "runmenu:run-all")
        self.page.wait_for_function(RUN_FINISHED, timeout=RUN_ALL_TIMEOUT_MS)
        self.wait_for_idle_kernel(RUN_ALL_TIMEOUT_MS)

    def executed_prompts(self):
        prompts = self.page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
        return [text.strip() for text in prompts.all_text_contents()]

    def outputs(self, index):
        return self.cell(index).locator(".jp-Cell-outputWrapper")

    def output_text(self, index):
        return self.cell(index).locator(".jp-OutputArea").text_content()

    def stderr_and_error_outputs(self):
        return self.page.locator(f"{STDERR_OUTPUT}, {ERROR_OUTPUT}")

    def figures(self, index=None):
        scope = self.page if index is None else self.cell(index)
        return scope.locator(FIGURE)

    def static_images_in_outputs(self, index):
        return self.cell(index).locator(f".jp-OutputArea {STATIC_IMAGE}")

    def wait_until_figure_drawn(self, figure):
        canvas = figure.locator(FIGURE_CANVAS)
        self.page.wait_for_function(
            f"canvas => ({CANVAS_COLOURS})(canvas) >= {MIN_COLOURS_OF_A_DRAWN_FIGURE}",
            arg=canvas.element_handle(), timeout=FIGURE_TIMEOUT_MS)

    def canvas_picture(self, figure):
        """The figure's current picture, as a data URL: to tell whether it changed."""
        return figure.locator(FIGURE_CANVAS).evaluate("canvas => canvas.toDataURL()")

    def wait_until_canvas_changes(self, figure, picture_before):
        self.page.wait_for_function(
            "([canvas, before]) => canvas.toDataURL() !== before",
            arg=[figure.locator(FIGURE_CANVAS).element_handle(), picture_before],
            timeout=FIGURE_TIMEOUT_MS)

    def tab(self):
        """The notebook's tab in the main area."""
        return self.page.locator(MAIN_AREA_TABS, has_text=self.path.name)

    def dirty_tabs(self):
        """The main area's tabs marked unsaved (JupyterLab's dot instead of the x)."""
        return self.page.locator(f"{MAIN_AREA_TABS}.jp-mod-dirty")

    def save(self):
        """File > Save Notebook, then wait until the document is no longer marked dirty."""
        expect(self.dirty_tabs()).to_have_count(1)  # something to save: outputs, answers
        self._menu("File", "docmanager:save")
        expect(self.dirty_tabs()).to_have_count(0, timeout=SAVE_TIMEOUT_MS)

    def _menu(self, menu, command):
        """Open a menu of the menu bar and click its item for `command`."""
        self.page.get_by_role("menuitem", name=menu, exact=True).click()
        self.page.locator(f'.lm-Menu-item[data-command="{command}"]').click()
