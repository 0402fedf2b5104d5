"""Each student's feedback page, made as their result arrives.

The graded notebook, with each exercise's verdict under its test cell, rendered to one HTML
page with nbgrader's own feedback template (so it looks like what `nbgrader
generate_feedback` makes). The notebook is already rebuilt from the allow-list
(grader.run.rebuild); the page carries a Content-Security-Policy that runs no script
but the template's own (grader.publish.page_policy). Pages are rendered in a child process,
each within a time limit (grader.publish.page_process): a page that overruns is not made,
for that student only. The page is checked for the hidden tests' source (in its text and
in anything base64-encoded in it) before it is kept: a page that would show it is refused,
for that student only, and the reason goes into their row.

A page stands alone: it loads nothing from outside itself and runs no script. The lab's
figures and formulas are inlined as images (grader.publish.standalone), MathJax is left out
of the template (page_template/standalone_feedback), long lines wrap, and a summary at the top
gives the score and each exercise's messages (and the late penalty, when there is one).

    OUT/feedback/<student>/<notebook>.html
"""

import base64
import binascii
import copy
import functools
import html
import json
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader import cells
from grader.judge.verdicts import verdict_text
from grader.plugin import Lab
from grader.publish.files import write_atomically
from grader.publish.page_process import PAGE_SECONDS, PageProcess, PageTimeout
from grader.publish.standalone import standalone_sources
from grader.records import ExerciseVerdict, StudentResult
from grader.run.rebuild import rebuilt_notebook

log = logging.getLogger(__name__)

BASE64_RUN = re.compile(r"[A-Za-z0-9+/=\n]{40,}")
TAG = re.compile(r"<[^>]*>")
LEAK_LINES = 2
PAGE_RENDER = "grader.publish.page_render"  # the renderer's module
IMAGE_ALT_DEFAULT = "A figure without a description"  # for readers that cannot see it

WRITTEN = "written"
NONE = "none"  # no graded notebook: nothing to show (an invalid submission)
REFUSED = "refused"


@dataclass(frozen=True)
class FeedbackState:
    state: str  # WRITTEN, NONE or REFUSED
    reason: str = ""  # for REFUSED: a sentence for the student's row


class FeedbackFiles:
    """Where the feedback pages are: OUT/feedback/<student>/<notebook>.html."""

    def __init__(self, lab: Lab, out: str | Path) -> None:
        self.lab = lab
        self.folder = Path(out) / "feedback"

    def path(self, student_id: str) -> Path:
        return self.folder / student_id / f"{Path(self.lab.notebook_name).stem}.html"

    def save(self, student_id: str, page: str | None) -> None:
        """Write `page` as the student's, or remove theirs when there is none."""
        if page is None:
            self.remove(student_id)
        else:
            write_atomically(self.path(student_id), page)

    def remove(self, student_id: str) -> None:
        path = self.path(student_id)
        if path.exists():
            os.remove(path)
        if path.parent.exists() and not any(path.parent.iterdir()):
            shutil.rmtree(path.parent, ignore_errors=True)


class FeedbackWriter(FeedbackFiles):
    """Writes feedback pages into OUT/feedback, each rendered within `page_seconds` by one
    child process for the batch (setting up nbconvert's templates costs seconds, each page
    then a fraction of one)."""

    def __init__(self, lab: Lab, out: str | Path, page_seconds: float = PAGE_SECONDS) -> None:
        super().__init__(lab, out)
        # Named, not imported: nbconvert is the renderer's, not this process's.
        self.pages = PageProcess(f"{PAGE_RENDER}:render_page", f"{PAGE_RENDER}:warm_up",
                                 page_seconds)

    def close(self) -> None:
        self.pages.close()

    def prepare_soon(self) -> None:
        """Make what every page needs (the lab's formulas, read from the cache or drawn;
        its hidden lines) in a thread now, while the first submission runs, rather than in
        its page (measured: that page 0.83 -> 0.15 s wall; on 2 busy cores the first result
        barely moved, the CPU being the same, which is why the formulas are also cached). A
        failure here is met again, and said, by the first page. A page asking meanwhile
        waits for the thread's on Python 3.11 (cached_property locks there); from 3.12 it
        may make the same values beside it, once more."""
        threading.Thread(target=self._prepared, name="grader-page-inputs", daemon=True).start()

    def _prepared(self) -> None:
        try:
            self.hidden_lines, self.lab_runs  # noqa: B018 (made and cached: lab_runs draws)
        except Exception:
            log.info("the pages' inputs were not made ahead; the first page makes them",
                     exc_info=True)

    # Made at the first page, not with the writer: a coordinator whose workers render every
    # page never needs them (drawing the lab's formulas was 1.4 s of its CPU per batch).
    @functools.cached_property
    def hidden_lines(self) -> frozenset[str]:
        return self.lab.hidden_source_lines()

    @functools.cached_property
    def given_markdown(self) -> dict[str, str]:
        return standalone_sources(self.lab)

    @functools.cached_property
    def lab_runs(self) -> frozenset[str]:
        """The lab's own figures, inlined in every page: no student wrote them, and decoding
        and searching them again for each page was half the leak check's time."""
        return frozenset(BASE64_RUN.findall("".join(self.given_markdown.values())))

    def write(self, result: StudentResult, notebook: dict | None,
              late_penalty: float = 0.0) -> "FeedbackState":
        """Write the page of `result` from its graded `notebook` (with the verdicts shown,
        see add_verdict_outputs), or remove an old page when there is no notebook; the
        FeedbackState."""
        state, page = self.make(result, notebook, late_penalty)
        self.save(result.student_id, page)
        return state

    def make(self, result: StudentResult, notebook: dict | None,
             late_penalty: float = 0.0) -> tuple["FeedbackState", str | None]:
        """(its FeedbackState, the page or None) for `result`'s graded `notebook`: what
        `write` writes, made wherever the notebook is (a worker, grader.publish.on_worker)."""
        if notebook is None:
            return FeedbackState(NONE), None
        try:
            page = self.render(result, notebook, late_penalty)
        except PageTimeout:
            return FeedbackState(REFUSED, "No feedback page could be made in time (rendering"
                                          f" it took more than {self.pages.seconds:g} s); the"
                                          " grade stands."), None
        if self.leak(page):
            return FeedbackState(REFUSED, "No feedback page was made: it would have shown"
                                          " the hidden tests' code (printed by a cell)."), None
        return FeedbackState(WRITTEN), page

    def render(self, result: StudentResult, notebook: dict, late_penalty: float = 0.0) -> str:
        """The page (or PageTimeout) for `result`'s graded notebook, rendered apart."""
        node = nbformat.from_dict(copy.deepcopy(notebook))
        _set_scores(node, result.verdicts, self.lab)
        for cell in node.cells:
            if cell.cell_type == "markdown":
                given = cells.source(cell)
                cell.source = self.given_markdown.get(given, given)
        resources = page_resources(Path(self.lab.notebook_name).stem, result.score,
                                   self.lab.max_score, late_penalty)
        resources["verdicts"] = [verdict_text(verdict) for verdict in result.verdicts.values()]
        return self.pages.render(node, resources)

    def leak(self, page: str) -> list[str] | None:
        """The lines of the hidden tests' source found in `page` (in its text, its markup
        or anything base64-encoded in it), if at least LEAK_LINES of them: one line alone
        may be one a student wrote too."""
        students = []

        def without_the_labs(match):
            run = match.group()
            if run in self.lab_runs:
                return "\0"  # not "": the text on either side must not join up
            students.append(run)
            return run

        page = BASE64_RUN.sub(without_the_labs, page)
        text = html.unescape(TAG.sub("", page))
        haystacks = (page, text, *(_decoded(run) for run in students))
        found = {line for line in self.hidden_lines
                 if any(line in haystack for haystack in haystacks)}
        return sorted(found) if len(found) >= LEAK_LINES else None


def page_resources(notebook_name: str, score: float, max_score: float,
                   late_penalty: float = 0.0) -> dict:
    # The page's summary (and nbgrader's template) show a penalty above 0.
    return {"nbgrader": {"notebook": notebook_name, "score": score, "max_score": max_score,
                         "late_penalty": late_penalty},
            "image_alt_default": IMAGE_ALT_DEFAULT}


def add_verdict_outputs(notebook: nbformat.NotebookNode, verdicts: dict[str, ExerciseVerdict],
                        lab: Lab) -> None:
    """Put each verdict's text under its exercise's test cell, where a student reads it."""
    for cell in notebook.cells:
        exercise = lab.test_cells.get(cells.grade_id(cell))
        if exercise in verdicts:
            cell.setdefault("outputs", []).append(nbformat.v4.new_output(
                "stream", name="stdout", text=verdict_text(verdicts[exercise]) + "\n"))


def graded_notebook(notebook: dict, verdicts: dict[str, ExerciseVerdict],
                    lab: Lab) -> nbformat.NotebookNode:
    """`notebook` (from a run) rebuilt from the allow-list and read as nbformat reads a
    file (sources joined, checked), each verdict under its test cell."""
    node = nbformat.reads(json.dumps(rebuilt_notebook(notebook)), as_version=4)
    add_verdict_outputs(node, verdicts, lab)
    return node


def _set_scores(notebook, verdicts, lab):
    """nbgrader's score fields on the test cells, which its feedback template shows."""
    for cell in notebook.cells:
        exercise = lab.test_cells.get(cells.grade_id(cell))
        if exercise is not None:
            verdict = verdicts.get(exercise)
            cell.metadata.nbgrader["score"] = verdict.points if verdict else 0.0
            cell.metadata.nbgrader["points"] = lab.points[exercise]


def _decoded(run):
    try:
        return base64.b64decode("".join(run.split()) + "==", validate=False).decode(
            "utf-8", "ignore")
    except (binascii.Error, ValueError):
        return ""
