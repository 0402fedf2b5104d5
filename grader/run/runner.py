"""The run stage's seam: a Runner turns one GradingTask into a RunOutcome.

    Runner.run(task, support_files) -> RunOutcome

The coordinator (grader.pipeline) chooses the runner; Dask only carries it to the workers
(grader.run.cluster), so a runner must pickle: it holds settings and data, and anything
costly it needs (a warm kernel template, a connection) is made on the worker, once per
process. `support_files` (grader.release_files.ReleaseFiles) travel beside the tasks, once
per worker, not inside the runner: a runner is sent with every task.

A runner never raises for a submission: whatever goes wrong becomes the RunOutcome's
`end` and `reason`, and the kernel's confinement is the outcome's typed `protection`
(grader.records.KernelProtection), never words parsed back.

The runners:

    SandboxRunner      a warm forked kernel, confined (grader.run.worker): the default
    SubprocessRunner   a fresh `python -m ipykernel` kernel, unconfined: trusted notebooks
                       only (grader.run.subprocess_runner)
    CannedRunner       outcomes recorded earlier, by student id or notebook digest: for
                       tests, and to simulate classes larger than a machine can grade

This module holds what every runner shares: the interface, the task, and the outcome as
JSON, for recorded outcomes.
"""

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from grader.records import (
    ExerciseRun,
    Failure,
    FailureKind,
    KernelProtection,
    RunEnd,
    RunOutcome,
)
from grader.run.captures import CapturePlan
from grader.settings import Limits


@dataclasses.dataclass(frozen=True)
class GradingTask:
    student_id: str
    # Prepared: the source's given and test cells, the student's answers. None (with no
    # plan) when the task carries the student's file for its worker to read and prepare
    # (grader.publish.on_worker: `finish` holds it); a runner always gets both.
    notebook: dict | None
    notebook_name: str
    plan: CapturePlan | None
    limits: Limits = Limits()
    preload: tuple = ()  # modules the kernel template imports once (the lab's)
    # What its worker needs to judge and publish the run (grader.publish.on_worker's
    # FinishRequest, with the grading's secret); taken off before a runner sees the task.
    finish: Any = None


class Runner:
    """Runs one submission's notebook and captures its answers; see the module's text."""

    name = "runner"  # what the command line calls it (--runner)

    def run(self, task, support_files):
        """The RunOutcome of `task` (a GradingTask) run beside `support_files`; never an
        exception for a fault of the submission's or the runner's."""
        raise NotImplementedError

    def warm_up(self, preload):
        """Start, without waiting for it, what this runner needs to grade a lab whose
        kernels preload `preload` (its modules): called on each worker as it is set up
        for a batch, so that a worker's first submission need not wait for it. Nothing
        by default."""


def notebook_digest(notebook):
    """A prepared notebook's sha256, the same for the same cells whatever the key order."""
    text = json.dumps(notebook, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CannedRunner(Runner):
    """Returns outcomes recorded earlier: by the task's student id, else by its prepared
    notebook's digest (notebook_digest); a task with neither gets a GRADING_FAILED outcome
    saying so, or `default` when given (a large class simulated from a few outcomes)."""

    name = "canned"
    NOT_RECORDED = "no recorded outcome for this submission (CannedRunner)"

    def __init__(self, outcomes, default=None):
        self.outcomes = dict(outcomes)  # student id or notebook digest -> RunOutcome
        self.default = default

    @classmethod
    def from_json(cls, path):
        """A CannedRunner of the outcomes in the JSON file `path` (write_outcomes')."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        default = data.get("default")
        return cls({key: outcome_from_json(value) for key, value in data["outcomes"].items()},
                   default=outcome_from_json(default) if default else None)

    def run(self, task, support_files):
        outcome = self.outcomes.get(task.student_id)
        if outcome is None:
            outcome = self.outcomes.get(notebook_digest(task.notebook), self.default)
        if outcome is None:
            return RunOutcome({}, RunEnd.GRADING_FAILED, self.NOT_RECORDED)
        return outcome


def write_outcomes(path, outcomes, default=None):
    """Record `outcomes` (key -> RunOutcome) as JSON, for CannedRunner.from_json."""
    data = {"outcomes": {key: outcome_to_json(value) for key, value in outcomes.items()}}
    if default is not None:
        data["default"] = outcome_to_json(default)
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


def outcome_to_json(outcome):
    """A RunOutcome as plain JSON data (its enums as their values)."""
    data = dataclasses.asdict(outcome)
    data["end"] = outcome.end.value
    data["unprotected"] = list(outcome.unprotected)
    return data


def outcome_from_json(data):
    """The RunOutcome `outcome_to_json` wrote."""
    fields = dict(data)
    fields["end"] = RunEnd(fields.get("end", RunEnd.FINISHED))
    fields["exercises"] = {exercise: _exercise_run(run)
                           for exercise, run in fields.get("exercises", {}).items()}
    protection = fields.get("protection")
    fields["protection"] = KernelProtection(**protection) if protection else None
    fields["unprotected"] = tuple(fields.get("unprotected", ()))
    return RunOutcome(**fields)


def _exercise_run(data):
    failures = {key: _failure(data.get(key))
                for key in ("failure", "test_cell_error", "answer_cell_error")}
    return ExerciseRun(data["exercise"], data.get("answer"), **failures)


def _failure(data):
    if data is None:
        return None
    return Failure(FailureKind(data["kind"]), data.get("error_name", ""),
                   data.get("error_value", ""))
