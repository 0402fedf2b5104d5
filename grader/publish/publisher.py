"""Publishing each student's result the moment it exists, in a thread of its own, while the
rest of the class is still being graded:

    graded notebook  -> OUT/nbgrader/autograded/<student>/<assignment>/<notebook>, rebuilt
                        from the allow-list (grader.run.rebuild) whatever sent it
    feedback page    -> OUT/feedback/<student>/<notebook>.html
    the journal row  -> OUT/journal.sqlite (from here on, the result survives a crash)
    the gradebook    -> nbgrader's gradebook, then the row is marked as written

Each student is one error boundary: whatever fails while publishing one student (a fault
of ours included) is logged with its traceback, said in that student's row, and costs no
other student anything. The graded notebook leaves memory once written.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import nbformat

from grader.course.course import Course
from grader.lateness import LatePolicy
from grader.plugin import Lab
from grader.publish.batch_profile import BatchProfile
from grader.publish.feedback import (
    NONE,
    WRITTEN,
    FeedbackWriter,
    graded_notebook,
)
from grader.publish.files import is_safe_student_id
from grader.publish.gradebook import (
    GradebookError,
    GradebookWriter,
    remove_graded_notebook,
    save_graded_notebook,
)
from grader.publish.handback import write_student_course_feedback
from grader.publish.journal import Journal, StudentRecord
from grader.publish.on_worker import FEEDBACK_FAILED, joined, made_page
from grader.records import ERROR, StudentResult
from grader.settings import GRADEBOOK_BATCH, GRADEBOOK_SECONDS, PUBLISH_BACKLOG

log = logging.getLogger(__name__)
PUBLISH_FAILED = "The grader failed while saving this result (see grader.log)."
UNSAFE_ID = "The student id cannot name a folder (a path separator or '..'); rename it."


class Publisher:
    """Publishes results as they are given to `publish`, one at a time, in order."""

    def __init__(self, *, out: str | Path, lab: Lab, journal: Journal, course: Course,
                 gradebook_ready: concurrent.futures.Future, db_url: str, version: str,
                 batch: int, policy: LatePolicy | None = None,
                 profile: BatchProfile | None = None, backlog: int = PUBLISH_BACKLOG) -> None:
        self.lab, self.journal, self.course = lab, journal, course
        self.profile = profile or BatchProfile()  # where the publishing's seconds go
        self.policy = policy or LatePolicy()  # the late penalty each page shows
        # A Future: nbgrader makes the course and the gradebook's tables meanwhile.
        self.gradebook_ready = gradebook_ready
        self.db_url, self.version, self.batch = db_url, version, batch
        self.out = out
        self.feedback = FeedbackWriter(lab, out)
        self.gradebook_problem: str | None = None  # why the gradebook stopped taking rows
        self._gradebook: GradebookWriter | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "grader-publish")
        # The unfinished ones only: a class's every Future kept was memory growing with N.
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        self._failed: list[concurrent.futures.Future] = []  # raised: close raises it
        self._room = threading.BoundedSemaphore(backlog)
        # Saved, not yet in the gradebook: written together, in one transaction, once
        # GRADEBOOK_BATCH wait or the first has waited GRADEBOOK_SECONDS (a timer sees to
        # it when no more results come), and at close. A row a crash leaves unwritten is
        # in the journal, which the next batch writes from.
        self._unwritten: list[StudentRecord] = []
        self._timer: threading.Timer | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def publish(self, result: StudentResult,
                on_done: Callable[[StudentRecord], object] | None = None) -> None:
        """Queue `result` (a StudentResult); `on_done(record)` runs once it is saved. With
        `backlog` results queued already, it first waits for one to be saved."""
        self._room.acquire()
        try:
            future = self._thread.submit(self._publish, result, on_done)
        except BaseException:
            self._room.release()
            raise
        future.add_done_callback(lambda _: self._room.release())
        self._pending.append(future)
        while self._pending and self._pending[0].done():
            finished = self._pending.popleft()
            if finished.exception() is not None:  # raised after the batch, by close
                self._failed.append(finished)

    def close(self) -> None:
        """Wait for every queued result, then write the gradebook rows still missing."""
        try:
            for future in [*self._failed, *self._pending]:
                future.result()
        finally:
            self._thread.shutdown(wait=True)
            self.feedback.close()
            if self._timer is not None:
                self._timer.cancel()
        self._write_gradebook_rows()
        self.write_pending_gradebook_rows()
        if self._gradebook is not None:
            self._gradebook.close()

    # ------------------------------------------------------------ one student

    def _publish(self, result, on_done):
        written = result.made is not None and result.made.written  # by its worker, in OUT
        record = self._saved(result)
        if record is None:
            return
        if not written or record.status == ERROR:  # else its worker wrote it, with the rest
            self._course_feedback(record)
        self._unwritten.append(record)
        if len(self._unwritten) >= GRADEBOOK_BATCH:
            self._write_gradebook_rows()
        elif len(self._unwritten) == 1:
            self._timer = threading.Timer(GRADEBOOK_SECONDS, self._rows_due)
            self._timer.daemon = True
            self._timer.start()
        if on_done is not None:
            on_done(record)

    def _rows_due(self):
        """The timer's: the rows waiting go in, in the publishing thread (never beside it)."""
        with contextlib.suppress(RuntimeError):  # closed meanwhile: close writes them
            self._thread.submit(self._write_gradebook_rows)

    def _course_feedback(self, record):
        """The student's folders of the nbgrader course, now rather than all at the end:
        the class files' pass then finds them done."""
        try:
            with self.profile.clock.stage("course feedback folder"):
                write_student_course_feedback(self.out, self.lab, record, record.graded_at)
        except Exception:  # the pass after the batch writes it again
            log.exception("the course's feedback folder of %s could not be written",
                          record.student_id)

    def _saved(self, result):
        """Save one result; its journal record (None for an unsafe id, refused)."""
        if not is_safe_student_id(result.student_id):  # never a path outside OUT
            log.error("refused to publish the unsafe student id %r", result.student_id)
            self.journal.record(dataclasses.replace(result, status=ERROR, detail=UNSAFE_ID),
                                version="", batch=self.batch, has_notebook=False,
                                feedback=NONE)
            return None
        try:
            return self._save(result)
        except Exception:  # a fault of ours: this student's row says so, nobody else's
            log.exception("publishing %s failed", result.student_id)
            return self._save_failure(result)

    def _save(self, result):
        if result.made is not None:
            return self._save_made(result)
        clock = self.profile.clock
        notebook = result.notebook
        result.notebook = None  # it leaves memory with this function
        with clock.stage("graded notebook"):
            notebook = self._graded_notebook(result, notebook)
        feedback, detail = self._feedback(result, notebook)
        return self._recorded(dataclasses.replace(result, detail=detail),
                              has_notebook=notebook is not None, feedback=feedback)

    def _save_made(self, result):
        """Write the files its worker made (grader.publish.on_worker), unless it wrote them
        into OUT itself; then the row."""
        made, clock = result.made, self.profile.clock
        result = dataclasses.replace(result, made=None)
        if not made.written:
            with clock.stage("graded notebook"):
                save_graded_notebook(self.course, result.student_id, made.notebook,
                                     result.exchange_secret)
            with clock.stage("feedback page"):
                self.feedback.save(result.student_id, made.page)
        if made.feedback == WRITTEN:
            with clock.stage("journal record", count=0):
                page_penalties(self.journal, {result.student_id: made.late_penalty})
        return self._recorded(result, has_notebook=made.has_notebook, feedback=made.feedback,
                              graded_at=made.graded_at)

    def _recorded(self, result, *, has_notebook, feedback, graded_at=""):
        with self.profile.clock.stage("journal record"):
            self.journal.record(result, version=self.version, batch=self.batch,
                                has_notebook=has_notebook, feedback=feedback,
                                graded_at=graded_at)
            return self.journal.record_of(result.student_id)

    def _graded_notebook(self, result, notebook):
        """Write the student's graded notebook (or remove an old one); the notebook."""
        if notebook is not None:
            # Rebuilt again, though the worker did: what reaches OUT never depends on it.
            notebook = graded_notebook(notebook, result.verdicts, self.lab)
        save_graded_notebook(self.course, result.student_id,
                             None if notebook is None else nbformat.writes(notebook),
                             result.exchange_secret)
        return notebook

    def _feedback(self, result, notebook):
        """(feedback state, the row's detail): the page made and written, or why not."""
        _, penalty = self.policy.lateness(result.student_id, result.timestamp, result.score,
                                          self.lab.max_score)
        page, state, detail = self._timed_page(result, notebook, penalty)
        try:
            self.feedback.save(result.student_id, page)
        except Exception:
            log.exception("the feedback of %s could not be written", result.student_id)
            self.feedback.remove(result.student_id)
            return NONE, joined(result.detail, FEEDBACK_FAILED)
        if state == WRITTEN:
            with self.profile.clock.stage("journal record", count=0):
                page_penalties(self.journal, {result.student_id: penalty})
        return state, detail

    def _timed_page(self, result, notebook, penalty):
        """made_page, timed: the round trip to the renderer, the renderer's start and its
        CPU apart."""
        pages, renderer = self.feedback.pages, self.profile.renderer
        before = pages.cpu_seconds()
        with self.profile.clock.stage("feedback page") as stage:
            try:
                return made_page(self.feedback, result, notebook, penalty)
            finally:
                started = pages.take_startup()
                if started is not None:  # this page waited for a new renderer
                    renderer.add_stage("feedback renderer start", wall=started[0], cpu=started[1])
                    stage.add(wall=-started[0])
                    before = max(before, started[1])  # the start is not this page's
                rendering = max(0.0, pages.cpu_seconds() - before)
                renderer.add_stage("feedback page render", cpu=rendering)

    def _save_failure(self, result):
        """The row of a student whose publishing failed: an error, without notebook."""
        failed = dataclasses.replace(result, status=ERROR, notebook=None,
                                     detail=joined(PUBLISH_FAILED, result.detail))
        try:
            self.feedback.remove(result.student_id)
            remove_graded_notebook(self.course, result.student_id)
        except Exception:
            log.exception("removing the outputs of %s failed", result.student_id)
        self.journal.record(failed, version="", batch=self.batch, has_notebook=False,
                            feedback=NONE)
        return self.journal.record_of(result.student_id)

    # ------------------------------------------------------------ the gradebook

    def _write_gradebook_rows(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows, self._unwritten = self._unwritten, []
        self._to_gradebook(rows)

    def _to_gradebook(self, records):
        """Write `records` into the gradebook in one transaction, then mark them there."""
        if self.gradebook_problem is not None or not records:
            return  # it stopped taking rows: the journal keeps them for `grader publish`
        try:
            with self.profile.clock.stage("gradebook row", count=len(records)):
                if self._gradebook is None:
                    self.gradebook_ready.result()
                    self._gradebook = GradebookWriter(self.lab, self.db_url)
                self._gradebook.record_many(records)
        except Exception as error:
            self.gradebook_problem = str(error) if isinstance(error, GradebookError) \
                else f"{type(error).__name__}: {error}"
            log.error("the gradebook stopped taking rows (%s); they are kept in the journal",
                      self.gradebook_problem)
            return
        with self.profile.clock.stage("journal record", count=0):
            self.journal.mark_in_gradebook(*(record.student_id for record in records))

    def write_pending_gradebook_rows(self) -> None:
        """Write the rows the gradebook does not have yet (from this or an earlier batch)."""
        pending = [record for record in self.journal.records() if not record.in_gradebook]
        for start in range(0, len(pending), GRADEBOOK_BATCH):
            self._to_gradebook(pending[start:start + GRADEBOOK_BATCH])


PAGE_PENALTIES = "feedback_late_penalties"  # the journal's fact: the penalty each page shows


def page_penalties(journal: Journal,
                   changed: dict[str, float] | None = None) -> dict[str, float]:
    """student id -> the late penalty their feedback page shows; `changed` saved first."""
    shown = journal.fact(PAGE_PENALTIES, {})
    if changed:
        # No penalty is what a student without an entry is shown: kept out, so that a class
        # on time never rewrites the fact (it was rewritten whole for every student saved:
        # a cost that grew with the class).
        updated = {student: penalty for student, penalty in {**shown, **changed}.items()
                   if penalty}
        if updated != shown:
            journal.set_fact(PAGE_PENALTIES, updated)
        shown = updated
    return shown


def refresh_late_penalties(out: str | Path, lab: Lab, journal: Journal, course: Course,
                           policy: LatePolicy,
                           records: list[StudentRecord] | None = None) -> None:
    """Render again the feedback pages whose late penalty changed under `policy` (a new due
    date, an extension, another penalty), from the graded notebooks in the course; the
    journal's `records` when read already."""
    shown = page_penalties(journal)
    records = journal.records() if records is None else records
    stale = [(record, penalty) for record in records
             if record.feedback == WRITTEN and record.has_notebook
             and (penalty := policy.lateness(record.student_id, record.timestamp,
                                             record.score, lab.max_score)[1])
             != shown.get(record.student_id, 0.0)]
    if not stale:
        return
    writer = FeedbackWriter(lab, out)
    try:
        for record, penalty in stale:
            notebook = nbformat.read(course.autograded_notebook(record.student_id), 4)
            result = StudentResult(record.student_id, record.status, record.detail,
                                   record.verdicts, timestamp=record.timestamp)
            if writer.write(result, notebook, penalty).state == WRITTEN:
                page_penalties(journal, {record.student_id: penalty})
    finally:
        writer.close()


