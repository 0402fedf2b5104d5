"""The run stage's seam (grader.run.runner): recorded outcomes, their JSON, the typed
protection and the runners the coordinator can choose. No kernel runs here."""

import dataclasses
import json
import pickle

import pytest

from grader.cli import build_parser
from grader.pipeline import RUNNERS
from grader.records import (
    ExerciseRun,
    Failure,
    FailureKind,
    KernelProtection,
    RunEnd,
    RunOutcome,
)
from grader.run.captures import CapturePlan
from grader.run.runner import (
    CannedRunner,
    GradingTask,
    Runner,
    notebook_digest,
    outcome_from_json,
    outcome_to_json,
    write_outcomes,
)
from grader.run.subprocess_runner import TRUSTED_ONLY, SubprocessRunner
from grader.run.worker import SandboxRunner

PLAN = CapturePlan({"X_test": "X"}, "def capture(e, n, i):\n    return {}\n", {"X": [1]})
ANSWERED = RunOutcome(
    {"X": ExerciseRun("X", {"value": [0.5, 0.5]}, None,
                      test_cell_error=Failure.raised("AssertionError", "close, not equal")),
     "Y": ExerciseRun("Y", None, Failure(FailureKind.CELL_TIMED_OUT))},
    RunEnd.TIMED_OUT, notebook={"cells": [], "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5},
    cell_timeouts=1, seconds=2.5, protection=KernelProtection(namespaces=True, cgroups=True,
                                                              syscall_policy=True),
    unprotected=("no seccomp here",), memory_mb=2000)


def task(student_id, notebook=None):
    return GradingTask(student_id, notebook or {"cells": [{"source": student_id}]},
                       "lab.ipynb", PLAN)


def test_an_outcome_survives_json_as_it_was():
    assert outcome_from_json(outcome_to_json(ANSWERED)) == ANSWERED
    assert outcome_from_json(outcome_to_json(RunOutcome({}))) == RunOutcome({})


def test_an_outcomes_stages_survive_json_and_a_recording_without_them_reads_as_none():
    timed = dataclasses.replace(ANSWERED, stages={
        "cell 03 UNQ_C1": {"count": 1, "wall": 0.25, "cpu": 0.5},
        "capture": {"count": 2, "wall": 0.01, "cpu": 0.02}})
    assert outcome_from_json(json.loads(json.dumps(outcome_to_json(timed)))) == timed
    recorded_before = outcome_to_json(ANSWERED)
    del recorded_before["stages"]
    assert outcome_from_json(recorded_before).stages == {}


def test_recorded_outcomes_are_found_by_student_then_by_notebook(tmp_path):
    by_notebook = RunOutcome({}, RunEnd.KERNEL_DIED)
    path = tmp_path / "outcomes.json"
    write_outcomes(path, {"ann": ANSWERED,
                          notebook_digest({"cells": [{"source": "bob"}]}): by_notebook})
    runner = CannedRunner.from_json(path)
    assert runner.run(task("ann"), support_files=None) == ANSWERED
    assert runner.run(task("bob"), support_files=None) == by_notebook
    missing = runner.run(task("cy"), support_files=None)
    assert missing.end is RunEnd.GRADING_FAILED and "no recorded outcome" in missing.reason


def test_a_default_outcome_simulates_a_class_of_any_size(tmp_path):
    path = tmp_path / "outcomes.json"
    write_outcomes(path, {}, default=ANSWERED)
    runner = CannedRunner.from_json(path)
    assert all(runner.run(task(f"s{n}"), None) == ANSWERED for n in range(50))


def test_a_notebooks_digest_ignores_key_order():
    assert notebook_digest({"a": 1, "b": [2]}) == notebook_digest({"b": [2], "a": 1})
    assert notebook_digest({"a": 1}) != notebook_digest({"a": 2})


def test_the_protection_is_typed_and_its_words_derived():
    assert KernelProtection(namespaces=True, cgroups=True).level == "namespaces+cgroups"
    assert KernelProtection(cgroups=True, syscall_policy=True).level == "cgroups"
    assert KernelProtection().level == "time limits only"
    assert ANSWERED.sandbox == "namespaces+cgroups" and RunOutcome({}).sandbox == ""


@pytest.mark.parametrize("runner", [SandboxRunner(), SubprocessRunner(),
                                    CannedRunner({"ann": ANSWERED})])
def test_every_runner_travels_to_a_worker(runner):
    assert isinstance(runner, Runner)
    copy = pickle.loads(pickle.dumps(runner))
    assert type(copy) is type(runner)


def test_the_command_line_chooses_a_runner_and_keeps_the_sandbox_by_default():
    parse = build_parser().parse_args
    assert parse(["autograde", "S", "--out", "O"]).runner == "sandbox"
    assert RUNNERS[parse(["autograde", "S", "--out", "O", "--runner", "subprocess"]).runner] \
        is SubprocessRunner
    with pytest.raises(SystemExit):
        parse(["autograde", "S", "--out", "O", "--runner", "docker"])
    assert "trusted notebooks only" in TRUSTED_ONLY


def test_the_subprocess_runner_says_it_confines_nothing(monkeypatch):
    from grader.run import subprocess_runner

    seen = {}

    def fake_grade(task, support_files, *, warm):
        seen.update(warm=warm, confine=task.limits.confine)
        return RunOutcome({}, protection=KernelProtection(cgroups=True))

    monkeypatch.setattr(subprocess_runner, "grade_submission", fake_grade)
    outcome = SubprocessRunner().run(task("ann"), support_files=None)
    assert seen == {"warm": False, "confine": False}
    assert outcome.protection == KernelProtection() and outcome.unprotected == (TRUSTED_ONLY,)
