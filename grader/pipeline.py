"""Grade a whole class: the pipeline a submission goes through, and the batch around it.

    SUBMISSIONS
      -> intake    one record per student folder           (grader.intake)
      -> read      the notebook, or an `invalid` row        (per student, when its turn comes)
      -> prepare   the student's answers on the lab's cells (grader.intake.prepare)
      -> run       by the runner, on a Dask worker          (grader.run.runner: the
                   sandbox by default)
      -> judge     verdicts, where no student code ran      (grader.judge)
      -> publish   graded notebook, feedback, journal row, gradebook row, as each finishes
                                                             (grader.publish)
    then grades.csv, verdicts.json and the report, from the journal, for the whole OUT
Where every worker loads the lab, reading, preparing, judging and publishing happen on the
worker (grader.publish.on_worker); the coordinator reads the bytes, saves the secret.

Every step of one student runs inside that student's error boundary: whatever fails, a
fault of ours included, becomes that student's `error` row with a sentence (and its
traceback in OUT/grader.log), never the batch's. Results are saved in the journal as they
come, so a batch killed at any moment resumes where it stopped: running `autograde` again
on the same OUT grades only the students whose submission changed, or whose last grading
failed: a new grading version (grading_version: the lab's rules and tests, the engine's
grading ABI) regrades no one by itself, the batch says how many kept results another
version made, and `regrade` grades everyone again. A batch adds to OUT; it never replaces
the students already there.

Each grading draws a secret of its own (grader.hidden_secrets), saved in the journal
before its task leaves this process; the lab makes the hidden inputs from it here, and
only those inputs travel to the kernel. The judge draws them again from the same secret.
"""

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grader
from grader import logs
from grader.intake import check_submissions_path, collect_submissions
from grader.intake.notebook_file import NotGradable
from grader.intake.prepare import prepare
from grader.judge.status import OUR_FAULT, sentence, status_and_detail
from grader.judge.verdicts import judge_outcome
from grader.lateness import LatePolicy
from grader.plugin import Lab, grading_version, lab_spec, load_lab
from grader.publish import page_server, report
from grader.publish.batch_profile import BatchProfile
from grader.publish.class_files import LATE_POLICY, write_class_files
from grader.publish.files import private_folder
from grader.publish.gradebook import (
    check_gradebook,
    gradebook_url,
    open_results_course,
    results_course,
)
from grader.publish.journal import Journal, StudentRecord
from grader.publish.on_worker import FinishedRun, FinishRequest, LabRef, WorkersCan, workers_can
from grader.publish.publisher import Publisher
from grader.records import ERROR, INVALID, StudentResult
from grader.release_files import read_release_files
from grader.republish import LateWork, lateness_to_gradebook, publish_again  # noqa: F401 (publish_again: its old home)
from grader.run import cluster, local_cluster
from grader.run.captures import CapturePlan
from grader.run.kept_templates import BatchTemplate
from grader.run.runner import GradingTask, Runner
from grader.run.sandbox import Protection, kernels_sandbox, without_cgroups
from grader.run.subprocess_runner import SubprocessRunner
from grader.run.worker import SandboxRunner
from grader.scratch import scratch_folder
from grader.settings import Limits
from grader.stage_clock import timed_context, waited_children_cpu

log = logging.getLogger(__name__)
# The runners the command line can choose (--runner); a library caller passes any Runner.
RUNNERS = {runner.name: runner for runner in (SandboxRunner, SubprocessRunner)}


@dataclass
class BatchResult:
    """What a batch did, for the command line and for a caller of `autograde`."""

    records: list  # every student OUT holds now (grader.publish.journal.StudentRecord)
    graded: list  # ids of the students this batch graded
    kept: list  # ids whose earlier result was kept (unchanged submission)
    missing: list  # ids in OUT whose folder this batch's SUBMISSIONS did not hold
    seconds: float
    workers: int
    sandbox: str
    hidden_inputs: str  # where the hidden inputs came from, in a few words
    warnings: list = field(default_factory=list)
    gradebook_problem: str | None = None  # set when some rows did not reach the gradebook
    # ids of kept results that another grading version made (grading_version): graded
    # again only on request (regrade=True)
    other_version: list = field(default_factory=list)


class BatchInterrupted(KeyboardInterrupt):
    """The batch was stopped (Ctrl-C) after `saved` of its `total` students were saved."""

    def __init__(self, *, saved: int, total: int) -> None:
        super().__init__(f"{saved} of {total}")
        self.saved, self.total = saved, total


def autograde(*, submissions: str | Path, out: str | Path, lab: Lab | None = None,
              limits: Limits | None = None, workers: int | None = None,
              scheduler: str | None = None, db: str | None = None,
              secret_key: bytes | None = None, regrade: bool = False,
              on_progress: Callable[[int, int, StudentRecord], None] | None = None,
              runner: Runner | None = None, late: "LateWork | None" = None,
              template: BatchTemplate | None = None) -> BatchResult:
    """Grade every student folder in `submissions` into `out` and return a BatchResult.
    `on_progress(done, total, record)` is called as each student is saved. Grading runs on
    the Dask cluster at `scheduler`, or on `workers` processes here (default: the cores).
    Hidden inputs come from a fresh random secret per grading, or from an HMAC of
    `secret_key` (bytes the instructor keeps secret: same key, same bytes). `runner` (a
    grader.run.runner.Runner) runs each submission: the sandbox by default. `late`
    (LateWork) gives timestamps, due date, extensions and penalty, replacing the journal's.
    `template`: the sandbox's template for local workers, started by the caller."""
    started = time.monotonic()
    profile = BatchProfile()
    with profile.clock.stage("batch set-up"):
        lab = lab or load_lab()
        limits = limits or Limits()
        out = Path(out).resolve()
        check_submissions_path(submissions)  # a mistyped path makes no OUT
        out_warning = private_folder(out)  # a fresh OUT is its owner's alone
        db_url = gradebook_url(out, db)
        check_gradebook(db_url)  # before grading: a class it cannot record is not graded
        version = grading_version(lab)
    with logs.batch_log(out), Journal(out) as journal:
        with profile.clock.stage("batch set-up", count=0):
            late = late or LateWork()
            policy = late.policy(journal)  # before grading: a wrong --due costs no time
            given_timestamps = late.timestamps()
            batch = journal.begin_batch(lab=lab, regrade=regrade)
            journal.set_fact("db", db)
            journal.set_fact(LATE_POLICY, policy.to_json())
        run = _Run(lab=lab, limits=limits, journal=journal, batch=batch, secret_key=secret_key,
                   regrade=regrade, version=version, on_progress=on_progress,
                   runner=runner, profile=profile)
        run.given_timestamps, run.policy, run.out = given_timestamps, policy, out
        run.template = template if scheduler is None else None
        run.early = _cluster_soon(submissions, journal, run, workers, scheduler)
        try:
            intake, publisher = _grade(run, submissions, out, db_url, workers, scheduler)
        except KeyboardInterrupt:  # Ctrl-C: what is saved stays, and the next run resumes
            _write_what_is_saved(out, journal, lab)
            raise BatchInterrupted(saved=run._done, total=run._total) from None
        except BaseException:  # the batch stops: what it graded stays, in every output
            _write_what_is_saved(out, journal, lab)
            raise
        finally:
            run.end_early_starts()
        with profile.clock.stage("batch result"):
            result = run.result(started, intake, publisher)
            result.warnings += [out_warning] if out_warning else []
        with profile.clock.stage("gradebook lateness"):
            result.gradebook_problem = result.gradebook_problem or lateness_to_gradebook(
                db_url, lab, journal)
        write_class_files(out, journal, lab, facts=run.facts(result, limits, started),
                          clock=profile.clock)
    profile.write(out, submissions=len(result.graded), workers=result.workers)
    return result


def _cluster_soon(submissions, journal, run, workers, scheduler):
    """The batch's local cluster and its workers' template, started now (StartedSoon)
    when the batch will grade (folders OUT has not seen, or a regrade), while intake reads
    the class. None otherwise (a remote cluster; a .zip; a resumed batch of known folders,
    which may need none): they start once the batch knows it needs them."""
    path = Path(submissions)
    if scheduler or not path.is_dir():
        return None
    known = set(journal.folders().values())
    try:
        with os.scandir(path) as entries:
            new = sum(1 for entry in entries if entry.is_dir() and not entry.name.startswith(".")
                      and (run.regrade or entry.name not in known))
    except OSError:  # intake says why, as it reads the folder
        return None
    if not new:
        return None
    run.start_template()
    return local_cluster.StartedSoon(local_cluster.worker_count(workers, new),
                                     cluster.worker_memory_bytes(run.limits))


def _grade(run, submissions, out, db_url, workers, scheduler):
    lab, journal, clock = run.lab, run.journal, run.profile.clock
    with (scratch_folder("batch") as scratch,
          ThreadPoolExecutor(1, "grader-course") as background):
        with clock.stage("intake"):
            intake = collect_submissions(Path(submissions), scratch / "intake", lab,
                                         journal.folders())
        ready = background.submit(_nbgrader_course, run.profile, out, lab, db_url, journal)
        publishing = Publisher(out=out, lab=lab, journal=journal,
                               course=results_course(out, lab), gradebook_ready=ready,
                               db_url=db_url, version=run.version, batch=run.batch,
                               policy=run.policy, profile=run.profile)
        # Its close waits for the queue and writes the rows the gradebook lacks.
        with timed_context(clock, publishing, "publisher start",
                           "publishing queue + close") as publisher:
            run.grade(intake.submissions, publisher, workers=workers, scheduler=scheduler)
    return intake, publisher


def _nbgrader_course(profile, *args):
    """open_results_course(*args), timed in its thread; the CPU of the nbgrader it runs
    apart (the only children of this process that end meanwhile)."""
    before = waited_children_cpu()
    try:
        with profile.clock.stage("nbgrader course"):
            return open_results_course(*args)
    finally:
        profile.nbgrader.add_stage("nbgrader generate_assignment",
                                   cpu=waited_children_cpu() - before)


def _write_what_is_saved(out, journal, lab):
    try:
        write_class_files(out, journal, lab)
    except Exception:
        log.exception("grades.csv could not be written from the journal; write it with:"
                      " python -m grader publish %s", out)


class _Run:
    """One batch: which students to grade, and each one's way through the pipeline."""

    def __init__(self, *, lab, limits, journal, batch, secret_key, regrade, version,
                 on_progress, runner=None, profile=None):
        self.lab, self.limits, self.journal = lab, limits, journal
        self.lab_spec = lab_spec(lab)  # how a worker loads it, to publish there
        self.workers_can = WorkersCan()  # what every worker can do for the batch
        self.out = None  # OUT, where workers sharing it write the students' files
        self.profile = profile or BatchProfile()
        self.runner = runner or SandboxRunner()  # the command line's default
        self.batch, self.secret_key = batch, secret_key
        self.regrade, self.version = regrade, version
        self.on_progress = on_progress
        self.graded, self.kept, self.protections, self.unprotected = [], [], [], set()
        self.other_version = []
        self.graded_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.workers = 0
        self.given_timestamps, self.timestamps = {}, {}  # student id -> ISO text
        self.exchange_secrets = {}  # student id -> nbgrader's submission secret, if any
        self.policy = LatePolicy()
        self.memory_warning = None  # the cluster's workers may use more memory than needed
        self.early = None  # the local cluster, started as the batch began (StartedSoon)
        self.template = None  # the kernel template its workers share (BatchTemplate)
        self._total = self._done = 0

    def grade(self, submissions, publisher, *, workers, scheduler):
        clock = self.profile.clock
        with clock.stage("batch set-up", count=0):
            todo = [submission for submission in submissions if not self._keep(submission)]
            self.journal.mark_seen([submission.student_id for submission in submissions],
                                   self.batch)
            self.timestamps = {submission.student_id: self._timestamp_of(submission)
                               for submission in submissions}
            self.exchange_secrets = {submission.student_id: submission.exchange_secret
                                     for submission in submissions}
            self.journal.set_timestamps(self.timestamps)
        self._total = len(todo)
        self.publisher = publisher
        tasks = self._tasks(todo)
        if any(submission.status != INVALID for submission in todo):
            memory_limit = cluster.worker_memory_bytes(self.limits)
            runner = self._runner_here() if scheduler is None else self.runner
            connection = cluster.connect(scheduler=scheduler,
                                         workers=local_cluster.worker_count(workers, len(todo)),
                                         memory_limit=memory_limit, early=self.early)
            with timed_context(clock, connection, "cluster start", "cluster stop") as client:
                with clock.stage("cluster start", count=0):
                    # First: the workers' kernel templates import while the rest goes on.
                    cluster.prepare_workers(client, runner, self.lab.preload_modules)
                    self.workers = len(client.nthreads())
                    self.memory_warning = cluster.memory_limit_warning(client, memory_limit)
                    support_files = read_release_files(self.lab)
                with clock.stage("lab on the workers"):
                    if self.lab_spec is not None:
                        self.workers_can = workers_can(client, LabRef(self.lab_spec,
                                                                      self.version), self.out)
                cluster.run_tasks(client, tasks, runner=runner,
                                  support_files=support_files,
                                  on_outcome=self._on_outcome, clock=clock)
        else:
            for _ in tasks:  # only invalid rows: published as the generator runs
                pass

    def end_early_starts(self):
        """Stop the early cluster unless taken; count the template's import (and the page
        server's CPU), end it."""
        if self.early is not None:
            self.early.close()
        page_server.count_cpu(self.profile.workers)
        if self.template is not None:
            self.template.end(self.profile.workers)

    def start_template(self):
        """Start the template this machine's workers share (once; the sandbox's only)."""
        if self.template is None and isinstance(self.runner, SandboxRunner):
            self.template = BatchTemplate(self.lab.preload_modules, self.runner.keep_templates)

    def _runner_here(self):
        """The runner for this machine's cluster: its workers fork from the batch's template."""
        self.start_template()
        shared = self.template and self.template.for_workers()
        return self.runner.with_shared_template(shared) if shared else self.runner

    def _timestamp_of(self, submission):
        """When the student submitted: the instructor's CSV wins over the folder's
        timestamp.txt; with neither, the same file keeps the time saved for it before."""
        stamp = self.given_timestamps.get(submission.student_id, submission.timestamp)
        if stamp:
            return stamp
        record = self.journal.record_of(submission.student_id)
        return record.timestamp if record and record.digest == submission.digest else ""

    def _keep(self, submission):
        """Whether the student's saved result stands: same file, not an error, not
        regraded. One of another grading version stands too, and is counted: regrading a
        class is the instructor's decision (grades already seen change), not a side effect
        of updating the grader."""
        if self.regrade or submission.status == INVALID:
            return False
        record = self.journal.record_of(submission.student_id)
        keep = (record is not None and record.digest == submission.digest
                and record.status != ERROR)
        if keep:
            self.kept.append(submission.student_id)
            if record.version != self.version:
                self.other_version.append(submission.student_id)
        return keep

    def _tasks(self, submissions):
        """A GradingTask per gradable student, made only when the cluster can take it;
        an invalid student's row is published on the way."""
        self._notes = {}
        for submission in submissions:
            try:
                task, notes = self._task(submission)
            except NotGradable as not_gradable:
                self._publish(self._invalid(submission, str(not_gradable)))
                continue
            except Exception:  # ours: this student's error row, the batch goes on
                log.exception("preparing %s failed", submission.student_id)
                self._publish(StudentResult(submission.student_id, ERROR, OUR_FAULT,
                                            submission_hash=submission.digest,
                                            folder=submission.folder))
                continue
            if task is None:
                self._publish(self._invalid(submission, submission.detail))
                continue
            yield task

    def _task(self, submission):
        if submission.status == INVALID:
            return None, []
        if self.workers_can.finish:
            return self._raw_task(submission), [submission.detail]
        clock = self.profile.clock
        with clock.stage("read + prepare"):
            notebook, reading_notes = submission.read(self.lab)
            prepared = prepare(notebook, self.lab.source)
        notes = [submission.detail, *reading_notes, *prepared.notes]
        # Saved before the task leaves: a resumed batch grades it on the same inputs.
        with clock.stage("secret + hidden inputs"):
            secret = self.journal.secret_for(submission.student_id, submission.digest,
                                             self.secret_key)
            plan = CapturePlan(self.lab.test_cells, self.lab.capture_source(),
                               self.lab.hidden_inputs(secret))
        self._notes[submission.student_id] = (notes, submission, secret)
        return GradingTask(submission.student_id, prepared.notebook, self.lab.notebook_name,
                           plan, self.limits, self.lab.preload_modules,
                           finish=self._finish_request(submission.student_id, secret, notes)
                           ), notes

    def _raw_task(self, submission):
        """A task that carries the student's file: its worker reads and prepares it, draws
        the hidden inputs from the secret, runs, judges and publishes (grader.publish.
        on_worker). The coordinator reads the bytes and saves the secret, nothing more."""
        clock = self.profile.clock
        with clock.stage("read"):
            data = submission.notebook_bytes()
        with clock.stage("secret"):
            secret = self.journal.secret_for(submission.student_id, submission.digest,
                                             self.secret_key)
        notes = [submission.detail] if submission.detail else []
        self._notes[submission.student_id] = (notes, submission, secret)
        request = dataclasses.replace(
            self._finish_request(submission.student_id, secret, notes),
            submitted=data, digest=submission.digest,
            out=str(self.out) if self.workers_can.write_out else None,
            exchange_secret=self.exchange_secrets.get(submission.student_id, ""))
        return GradingTask(submission.student_id, None, self.lab.notebook_name, None,
                           self.limits, self.lab.preload_modules, finish=request)

    def _finish_request(self, student_id, secret, notes):
        """What the worker needs to judge and publish the run itself (grader.publish.
        on_worker); None for a lab no worker can load (no module holds it)."""
        if self.lab_spec is None:
            return None
        return FinishRequest(LabRef(self.lab_spec, self.version), secret,
                             tuple(note for note in notes if note),
                             timestamp=self.timestamps.get(student_id, ""),
                             policy=self.policy.of_student(student_id))

    def _invalid(self, submission, detail):
        return StudentResult(submission.student_id, INVALID, sentence(detail),
                             submission_hash=submission.digest, folder=submission.folder)

    def _on_outcome(self, task, outcome):
        """Judge one run and queue its publishing: all of it this student's only."""
        notes, submission, secret = self._notes.pop(task.student_id)
        digest = submission.digest
        if isinstance(outcome, FinishedRun):  # judged and published on its worker
            self.profile.add_outcome(outcome.outcome)
            self._publish(self._finished(task, outcome, submission))
            return
        self.profile.add_outcome(outcome)
        try:
            with self.profile.clock.stage("judge"):
                verdicts = judge_outcome(self.lab, outcome, secret)
                status, detail = status_and_detail(outcome, notes)
            result = StudentResult(task.student_id, status, detail, verdicts, outcome.notebook,
                                   outcome.seconds, outcome.sandbox, digest,
                                   submission.folder)
            self.protections.append(outcome.protection)
            self.unprotected.update(outcome.unprotected)
        except Exception:
            log.exception("judging %s failed", task.student_id)
            result = StudentResult(task.student_id, ERROR, OUR_FAULT, submission_hash=digest,
                                   folder=submission.folder)
        self._publish(result)

    def _finished(self, task, finished, submission):
        outcome = finished.outcome
        self.protections.append(outcome.protection)
        self.unprotected.update(outcome.unprotected)
        return StudentResult(task.student_id, finished.status, finished.detail,
                             finished.verdicts, None, outcome.seconds, outcome.sandbox,
                             submission.digest, submission.folder, made=finished.made)

    def _publish(self, result):
        result = dataclasses.replace(
            result, timestamp=self.timestamps.get(result.student_id, ""),
            exchange_secret=self.exchange_secrets.get(result.student_id, ""))
        self.graded.append(result.student_id)
        self.publisher.publish(result, on_done=self._progress)

    def _progress(self, record):  # in the publisher's thread, once per student, in order
        self._done += 1
        if self.on_progress is not None:
            self.on_progress(self._done, self._total, record)

    def result(self, started, intake, publisher):
        ids = {submission.student_id for submission in intake.submissions}
        missing = [record.student_id for record in self.journal.records()
                   if record.student_id not in ids]
        # What the machines that ran the kernels said they could not enforce (with
        # --scheduler, other machines than this one).
        warnings = [*intake.warnings, *sorted(self.unprotected), *without_cgroups(
            self.protections, Protection(namespaces=False, cgroups=any(
                kernel.cgroups for kernel in self.protections if kernel is not None)))]
        if self.memory_warning:
            warnings.append(self.memory_warning)
        if missing:
            warnings.append(f"{len(missing)} student(s) in the output have no folder in these"
                            f" submissions; their earlier results are kept:"
                            f" {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        return BatchResult(records=self.journal.records(), graded=sorted(self.graded),
                           kept=sorted(self.kept), other_version=sorted(self.other_version),
                           missing=missing,
                           seconds=time.monotonic() - started, workers=self.workers,
                           sandbox=kernels_sandbox([kernel.level for kernel in self.protections
                                                    if kernel is not None]),
                           hidden_inputs=self.inputs_origin(), warnings=warnings,
                           gradebook_problem=publisher.gradebook_problem)

    def facts(self, result, limits, started):
        return report.RunFacts(
            graded_at=self.graded_at, submissions=len(result.graded),
            wall_seconds=round(time.monotonic() - started, 1), workers=result.workers,
            sandbox=result.sandbox, timeout=limits.timeout, cell_timeout=limits.cell_timeout,
            memory_mb=limits.memory_mb, hidden_inputs=result.hidden_inputs,
            grading_version=self.version, grader_version=grader.engine_version())

    def inputs_origin(self):
        """Where each grading's hidden inputs came from, for the run facts."""
        if self.secret_key is None:
            return "a fresh random 128-bit secret per graded submission"
        return ("a fresh 128-bit secret per graded submission, derived from the instructor's"
                " repeat key (--secret-key)")
