"""What a worker does for a submission besides running it: read and prepare the student's
file, and judge and publish the run, so that the coordinator of a large class only saves.

    coordinator   intake, the file's bytes, the grading's secret (saved first) --task-->
    worker        prepared(): read, prepare, hidden inputs from the secret
                  runner.run(task) -> RunOutcome
                  finish(): verdicts, graded notebook, feedback page -> FinishedRun
    coordinator   <-- writes the FinishedRun's two files, the journal row, the gradebook row

Reading and preparing a notebook, rendering its page and writing its graded notebook were
the coordinator's largest costs per student (about 0.1 CPU s with the page, in one process
for the whole class, however many workers grade); the worker holds the notebook, and many
workers work side by side.

The worker runs no student code: a kernel is a process of its own, forked from a template
started as a new interpreter (grader.run.warm_kernels), so the secret a FinishRequest
carries is never where a kernel can read it, as it never is in the coordinator. Reading,
preparing, judging, the page and its leak check are the coordinator's own functions
(grader.intake, grader.judge, grader.publish.feedback) on the same lab: a worker loads it
as the coordinator names it (grader.plugin.lab_spec) and works only at the coordinator's
grading version. The coordinator asks every worker first (workers_can_finish) and sends the
files only when all can; otherwise it prepares each notebook itself, as before.

A worker that cannot finish a run (the lab does not load there or is another version, or
finishing failed: a fault of ours, in grader.log) sends the RunOutcome as it was, and the
coordinator judges and publishes that student itself: the same result, made in one more
place.
"""

import contextlib
import dataclasses
import logging
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

from grader.intake.notebook_file import CHANGED, NotGradable, parse_notebook
from grader.intake.prepare import prepare
from grader.judge.status import OUR_FAULT, sentence, status_and_detail
from grader.judge.verdicts import judge_outcome
from grader.lateness import LatePolicy
from grader.plugin import Lab, grading_version, load_lab
from grader.publish.feedback import (
    NONE,
    REFUSED,
    FeedbackFiles,
    FeedbackWriter,
    graded_notebook,
)
from grader.publish.files import is_safe_student_id, write_atomically
from grader.publish.gradebook import results_course, save_graded_notebook
from grader.publish.handback import write_student_course_feedback
from grader.publish.journal import StudentRecord
from grader.records import ERROR, INVALID, RunEnd, RunOutcome, StudentResult
from grader.run.captures import CapturePlan
from grader.run.runner import GradingTask
from grader.stage_clock import StageClock

log = logging.getLogger(__name__)
CANNOT_PREPARE = ("this worker cannot load the coordinator's lab at its grading version (see the"
                  " worker's log): grade the student again")
FEEDBACK_FAILED = ("No feedback page could be made (a fault of the grader's, written to"
                   " grader.log); the grade stands.")


@dataclasses.dataclass(frozen=True)
class LabRef:
    """A lab as a worker loads it: load_lab's spec, and the grading version it must have."""

    spec: str
    version: str


@dataclasses.dataclass(frozen=True)
class FinishRequest:
    """What finishing one submission needs beside its run, from the coordinator."""

    lab: LabRef
    secret: bytes  # the grading's (grader.hidden_secrets): the judge draws the inputs again
    notes: tuple = ()  # sentences of intake and prepare for the student's row
    timestamp: str = ""  # when the student submitted: the late penalty the page shows
    policy: LatePolicy = LatePolicy()  # this student's due date and the penalty only
    # The student's notebook file, when the worker reads and prepares it (the task then
    # carries no notebook and no capture plan), and the file's sha256 from intake.
    submitted: bytes | None = None
    digest: str = ""
    # OUT, when the worker writes the student's files there itself (it shares the
    # coordinator's disk and user: workers_can_finish checked), and what the student's
    # folder gave nbgrader's exchange (its submission secret).
    out: str | None = None
    exchange_secret: str = ""

    def finish(self, student_id: str, outcome: RunOutcome,
               clock: StageClock | None = None) -> "FinishedRun | RunOutcome":
        """What the worker calls (grader.run.cluster, which imports no publishing)."""
        return finish(self, student_id, outcome, clock)

    def prepared(self, task: GradingTask, clock: StageClock | None = None) -> tuple[
            GradingTask, "FinishRequest", "FinishedRun | RunOutcome | None"]:
        """(the task with its notebook prepared and its capture plan, this request with the
        notes of reading and preparing, None), or the student's row as the third item when
        the notebook cannot be graded or prepared here."""
        return prepared(self, task, clock or StageClock())


@dataclasses.dataclass(frozen=True)
class MadeFiles:
    """The files a finished run leaves for the coordinator to write, or says it wrote."""

    notebook: str | None  # the graded notebook as nbformat writes it; None: no notebook
    page: str | None  # the feedback page; None: none (`feedback` says why)
    feedback: str  # grader.publish.feedback's WRITTEN, NONE or REFUSED
    late_penalty: float = 0.0  # what the page shows
    has_notebook: bool = False  # the run left a graded notebook
    # Written into OUT by the worker (the two texts above are then None), and when (ISO,
    # UTC: the journal's graded_at, the course's timestamps).
    written: bool = False
    graded_at: str = ""


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """A run judged and published on its worker: what the coordinator saves of it."""

    outcome: RunOutcome  # without its notebook (`made` holds it) nor captures (judged)
    status: str
    detail: str
    verdicts: dict  # exercise id -> grader.records.ExerciseVerdict
    made: MadeFiles


_finishers: dict[LabRef, tuple[Lab, FeedbackWriter] | None] = {}  # per worker process


def finish(request: FinishRequest, student_id: str, outcome: RunOutcome,
           clock: StageClock | None = None) -> "FinishedRun | RunOutcome":
    """`outcome` finished on this worker, or `outcome` itself when it cannot be here;
    `clock` times the stages (the page renderer's CPU apart)."""
    clock = clock or StageClock()
    try:
        with clock.stage("lab on the worker", count=0):  # once per process, then a lookup
            finisher = _finisher(request.lab)
        if finisher is None:
            return outcome
        lab, pages = finisher
        return _finished(lab, pages, request, student_id, outcome, clock)
    except Exception:  # ours: the coordinator finishes this student instead
        log.exception("finishing %s on the worker failed", student_id)
        return outcome


def prepared(request: FinishRequest, task: GradingTask, clock: StageClock) -> tuple[
        GradingTask, FinishRequest, "FinishedRun | RunOutcome | None"]:
    """FinishRequest.prepared: read and prepare the submitted file as the coordinator did
    (grader.intake), and draw the hidden inputs from the grading's secret."""
    finisher = _finisher(request.lab)
    if finisher is None:
        return task, request, RunOutcome({}, RunEnd.GRADING_FAILED, CANNOT_PREPARE)
    lab = finisher[0]
    try:
        with clock.stage("read + prepare"):
            notebook, reading_notes, digest = parse_notebook(request.submitted, lab)
            if digest != request.digest:
                raise NotGradable(CHANGED)  # not what intake read: never graded silently
            preparation = prepare(notebook, lab.source)
        with clock.stage("secret + hidden inputs"):
            plan = CapturePlan(lab.test_cells, lab.capture_source(),
                               lab.hidden_inputs(request.secret))
    except NotGradable as not_gradable:
        return task, request, _row(INVALID, joined(*request.notes, str(not_gradable)))
    except Exception:  # ours: this student's error row, graded again by the next batch
        log.exception("preparing %s failed", task.student_id)
        return task, request, _row(ERROR, OUR_FAULT)
    notes = (*request.notes, *reading_notes, *preparation.notes)
    return (dataclasses.replace(task, notebook=preparation.notebook, plan=plan),
            dataclasses.replace(request, submitted=None, notes=notes), None)


def written_into_out(lab: Lab, request: FinishRequest, student_id: str,
                     made: MadeFiles) -> MadeFiles:
    """Write `made`'s files as the coordinator would (the graded notebook, the page, the
    nbgrader course's copies and small files) into OUT; what is left to say of them."""
    if not is_safe_student_id(student_id):  # never a path outside OUT: the coordinator says
        return made
    out = Path(request.out or "")
    graded_at = datetime.now(UTC).isoformat(timespec="seconds")
    save_graded_notebook(results_course(out, lab), student_id, made.notebook,
                         request.exchange_secret)
    FeedbackFiles(lab, out).save(student_id, made.page)
    record = StudentRecord(student_id, "", has_notebook=made.has_notebook,
                           feedback=made.feedback, graded_at=graded_at,
                           timestamp=request.timestamp)
    write_student_course_feedback(out, lab, record, graded_at)
    return dataclasses.replace(made, notebook=None, page=None, written=True,
                               graded_at=graded_at)


def _row(status, detail):
    """A row without a run: a notebook that cannot be graded, or a fault of ours."""
    return FinishedRun(RunOutcome({}), status, detail, {}, MadeFiles(None, None, NONE))


@dataclasses.dataclass(frozen=True)
class WorkersCan:
    """What every worker of a cluster can do for a batch (workers_can)."""

    finish: bool = False  # read, prepare, judge and publish: they load the lab
    write_out: bool = False  # write the students' files into OUT: the same disk and user


def workers_can(client: Any, ref: LabRef, out: str | Path | None) -> WorkersCan:
    """Ask every worker of the cluster (a dask Client's) whether it loads the lab of `ref`
    at its grading version (loading it meanwhile), and whether it sees OUT as this process
    does: a file of random content written here is read there, and the worker runs as this
    process's user (the files it makes, the coordinator replaces and removes later)."""
    probe = None if out is None else Path(out) / f".grader-probe-{secrets.token_hex(8)}"
    token = secrets.token_hex(16)
    try:
        if probe is not None:
            write_atomically(probe, token, durable=False)
        answers = client.run(_can, ref, probe and str(probe), token, os.getuid()).values()
    except Exception:
        log.warning("the workers could not say whether they load the lab %s: the"
                    " coordinator prepares and finishes its results", ref.spec, exc_info=True)
        return WorkersCan()
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                probe.unlink()
    answers = list(answers)
    finish = all(can.finish for can in answers)
    return WorkersCan(finish, finish and all(can.write_out for can in answers))


def _can(ref, probe, token, uid):
    finisher = _finisher(ref)
    finish = finisher is not None
    if finish:  # its first page need not wait seconds for nbconvert's imports, nor formulas
        finisher[1].pages.start_soon()
        finisher[1].prepare_soon()
    try:
        same = probe is not None and Path(probe).read_text() == token \
            and os.getuid() == uid and os.access(Path(probe).parent, os.W_OK)
    except OSError:
        same = False
    return WorkersCan(finish, same)


def _finisher(ref):
    """(lab, page writer) for `ref`, made once per worker process; None when this process
    cannot load the coordinator's lab at its grading version."""
    if ref not in _finishers:
        _finishers[ref] = _loaded(ref)
    return _finishers[ref]


def _loaded(ref):
    try:
        lab = load_lab(ref.spec)
        version = grading_version(lab)
    except Exception as error:
        log.warning("this worker cannot load the lab %s (%s): the coordinator finishes its"
                    " results", ref.spec, error)
        return None
    if version != ref.version:
        log.warning("this worker's lab %s is grading version %s, not the coordinator's %s:"
                    " the coordinator finishes its results", ref.spec, version, ref.version)
        return None
    return lab, FeedbackWriter(lab, "")


def _finished(lab, pages, request, student_id, outcome, clock):
    with clock.stage("judge"):
        verdicts = judge_outcome(lab, outcome, request.secret)
        status, detail = status_and_detail(outcome, request.notes)
        result = StudentResult(student_id, status, detail, verdicts)
        _, penalty = request.policy.lateness(student_id, request.timestamp, result.score,
                                             lab.max_score)
    notebook = text = None
    with clock.stage("graded notebook"):
        if outcome.notebook is not None:
            notebook = graded_notebook(outcome.notebook, verdicts, lab)
            text = nbformat.writes(notebook)
    page, feedback, detail = _timed_page(pages, result, notebook, penalty, clock)
    made = MadeFiles(text, page, feedback, penalty, has_notebook=text is not None)
    if request.out is not None:
        with clock.stage("files into OUT"):
            made = written_into_out(lab, request, student_id, made)
    # Judged: what the capture recorded (a model's weights) need not travel any further.
    return FinishedRun(dataclasses.replace(outcome, notebook=None, exercises={}), status,
                       detail, verdicts, made)


def _timed_page(pages, result, notebook, penalty, clock):
    """made_page, timed; the renderer process's CPU as stages of its own."""
    before = pages.pages.cpu_seconds()
    with clock.stage("feedback page"):
        made = made_page(pages, result, notebook, penalty)
    started = pages.pages.take_startup()
    if started is not None:  # the worker's renderer started ahead, or for this page
        clock.add_stage("feedback renderer start", wall=started[0], cpu=started[1])
        before = max(before, started[1])  # what of its start this page waited for
    clock.add_stage("feedback page render", cpu=max(0.0, pages.pages.cpu_seconds() - before))
    return made


def made_page(pages: FeedbackWriter, result: StudentResult,
              notebook: nbformat.NotebookNode | None,
              penalty: float) -> tuple[str | None, str, str]:
    """(page or None, feedback state, the row's detail) for `result`'s graded `notebook`:
    a page refused or failed is that student's only, and their row says so."""
    try:
        state, page = pages.make(result, notebook, penalty)
    except Exception:
        log.exception("the feedback of %s could not be made", result.student_id)
        return None, NONE, joined(result.detail, FEEDBACK_FAILED)
    if state.state == REFUSED:
        log.warning("feedback refused for %s: %s", result.student_id, state.reason)
        return None, state.state, joined(result.detail, state.reason)
    return page, state.state, result.detail


def joined(*notes: str) -> str:
    return " ".join(sentence(note) for note in notes if note)
