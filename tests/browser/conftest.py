"""Fixtures of the browser tests: one JupyterLab server and one headless Chromium per test
module, and screenshots a person can look at afterwards.

Screenshots go to pytest's temporary directory (their folder is printed at the end of the
run); when a test fails, they are also copied, with a picture of the page at the failure
and the server's log, to the folder in $BROWSER_ARTIFACTS, if set (CI keeps it).
"""

import contextlib
import os
import re
import shutil
from pathlib import Path

import pytest
from browser_lab_server import start_lab_server, stop_lab_server

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # reported by the chromium fixture as a failure, never a skip
    sync_playwright = None
    PlaywrightError = Exception

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; tools/install_system_packages.sh installs it
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-dev-shm-usage"]
ARTIFACTS_ENV = "BROWSER_ARTIFACTS"
ARTIFACTS_KEY = pytest.StashKey()
SCREENSHOT_FOLDERS_KEY = pytest.StashKey()


class Screenshots:
    """Numbered screenshots of one test module, in the order the moments happened."""

    def __init__(self, folder, server):
        self.folder = folder
        self.server = server
        self.page = None  # the page shown at a failure; set by whoever opens one
        self._count = 0

    def path(self, moment):
        self._count += 1
        return self.folder / f"{self._count:02d}-{_slug(moment)}.png"

    def take(self, moment, target=None):
        """Screenshot the page, or an element (a cell, a widget) scrolled into view."""
        target = target or self.page
        if hasattr(target, "scroll_into_view_if_needed"):
            target.scroll_into_view_if_needed()
        target.screenshot(path=self.path(moment))

    def keep_failure(self, test_name):
        """Picture the page as it was at the failure; copy everything for CI, if asked."""
        if self.page is not None and not self.page.is_closed():
            # A dead browser cannot be pictured; the earlier screenshots remain.
            with contextlib.suppress(PlaywrightError):
                self.page.screenshot(path=self.path(f"FAILED {test_name}"))
        destination = os.environ.get(ARTIFACTS_ENV)
        if destination:
            target = Path(destination) / self.folder.name
            shutil.copytree(self.folder, target, dirs_exist_ok=True)
            if self.server.log_path.exists():
                shutil.copy(self.server.log_path, target / "jupyterlab.log")


def _slug(text):
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")[:80]


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    server = start_lab_server(tmp_path_factory.mktemp("jupyterlab"))
    yield server
    stop_lab_server(server)


@pytest.fixture(scope="module")
def chromium():
    if sync_playwright is None:
        pytest.fail("Playwright for Python is not installed: the browser tests need it "
                    "(`.venv/bin/pip install -r requirements.txt`).", pytrace=False)
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: the browser tests need it "
                    "(`bash tools/install_system_packages.sh` installs it with apt).",
                    pytrace=False)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                 args=CHROMIUM_ARGS)
        except PlaywrightError as error:
            pytest.fail(f"Chromium at {CHROMIUM} did not start under Playwright: {error}",
                        pytrace=False)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def screenshots(request, tmp_path_factory, lab_server):
    module = request.module.__name__.rsplit(".", 1)[-1]
    book = Screenshots(tmp_path_factory.mktemp(f"screenshots-{module}"), lab_server)
    request.node.stash[ARTIFACTS_KEY] = book  # request.node is the module here
    request.config.stash.setdefault(SCREENSHOT_FOLDERS_KEY, []).append(book.folder)
    return book


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        module = item.getparent(pytest.Module)
        book = module.stash.get(ARTIFACTS_KEY, None) if module else None
        if book is not None:
            book.keep_failure(f"{item.name} {report.when}")
    return report


def pytest_terminal_summary(terminalreporter, config):
    folders = config.stash.get(SCREENSHOT_FOLDERS_KEY, [])
    for folder in folders:
        terminalreporter.write_line(f"browser screenshots: {folder}")
