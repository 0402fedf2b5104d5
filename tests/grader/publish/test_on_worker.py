"""Publishing on the workers (grader.publish.on_worker): a run judged and its page and graded
notebook made where the notebook is, the same bytes as the coordinator makes; the secret
out of the runner's reach; a worker that cannot finish leaves it to the coordinator; the
gradebook's rows written in batches, all of a batch or none."""

import csv
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import sqlite3

import nbformat
import pytest

from grader import pipeline
from grader.intake.notebook_file import CHANGED, NOT_A_NOTEBOOK, NOT_JSON
from grader.judge.status import OUR_FAULT, sentence
from grader.labs.c2_w2 import LAB as lab
from grader.lateness import LatePolicy
from grader.pipeline import autograde, grading_version
from grader.plugin import lab_spec, load_lab
from grader.publish import on_worker
from grader.publish.feedback import REFUSED, WRITTEN, FeedbackWriter, graded_notebook
from grader.publish.gradebook import GradebookError, GradebookWriter, gradebook_url
from grader.publish.journal import StudentRecord
from grader.publish.on_worker import FinishedRun, FinishRequest, LabRef, finish
from grader.records import ExerciseVerdict, RunEnd, RunOutcome, StudentResult, unreached
from grader.run.runner import CannedRunner, GradingTask

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
KEY = bytes(range(32))  # a repeat key: two batches draw the same secrets
RIGHT, WRONG = "ok-loop-softmax-input-model", "wrong-softmax-unnormalised"


@pytest.fixture(scope="module")
def released(released_lab):
    return nbformat.read(released_lab / lab.notebook_name, as_version=4)


def _outcome(notebook, end=RunEnd.FINISHED):
    return RunOutcome({exercise.id: unreached(exercise.id, end) for exercise in lab.exercises},
                      end, notebook=json.loads(json.dumps(notebook)))


def _request(**changes):
    fields = {"lab": LabRef(lab_spec(lab), grading_version(lab)), "secret": b"s" * 16,
              "notes": ("A note of intake.",), "timestamp": "2026-12-03T10:00:00+00:00",
              "policy": LatePolicy(due="2026-12-01T23:00:00+00:00", penalty="10%")}
    return FinishRequest(**{**fields, **changes})


def test_the_lab_is_found_again_by_module_or_path():
    assert lab_spec(lab) == "grader.labs.c2_w2"
    tiny = load_lab("tests/grader/tiny_lab")
    assert lab_spec(tiny).endswith("/tests/grader/tiny_lab")
    assert load_lab(lab_spec(tiny)) is tiny


def test_a_run_finished_on_a_worker_is_what_the_coordinator_makes(released, tmp_path):
    outcome = _outcome(released)
    finished = finish(_request(), "ann", outcome)
    assert isinstance(finished, FinishedRun) and finished.outcome.notebook is None
    assert finished.status == "graded" and "A note of intake." in finished.detail
    verdicts = finished.verdicts
    assert set(verdicts) == {exercise.id for exercise in lab.exercises}
    notebook = graded_notebook(outcome.notebook, verdicts, lab)
    assert finished.made.notebook == nbformat.writes(notebook)
    result = StudentResult("ann", finished.status, finished.detail, verdicts)
    writer = FeedbackWriter(lab, tmp_path)
    try:
        state, page = writer.make(result, notebook, finished.made.late_penalty)
    finally:
        writer.close()
    assert (state.state, finished.made.feedback) == (WRITTEN, WRITTEN)
    assert finished.made.page == page
    # Two days late at 10% a started day, of what the student scored.
    assert finished.made.late_penalty == min(result.score, 2 * 0.1 * lab.max_score)


def test_a_page_that_would_show_the_hidden_tests_is_refused_on_the_worker(released):
    leaked = "\n".join(sorted(lab.hidden_source_lines())[:3])
    notebook = json.loads(json.dumps(released))
    notebook["cells"][0] = nbformat.v4.new_code_cell("print(secret_lines)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=leaked)])
    finished = finish(_request(), "eve", _outcome(notebook))
    assert finished.made.page is None and finished.made.feedback == REFUSED
    assert "hidden tests' code" in finished.detail
    assert finished.made.notebook is not None  # the graded notebook stays the instructor's


def test_a_run_without_a_notebook_has_no_page(released):
    finished = finish(_request(), "bob", dataclasses.replace(_outcome(released, RunEnd.KERNEL_DIED),
                                                             notebook=None))
    assert (finished.made.notebook, finished.made.page, finished.made.feedback) == \
        (None, None, "none")
    assert finished.status == "error"


@pytest.mark.parametrize("ref", [LabRef("no.such.lab", "abi1/x"),
                                 LabRef("grader.labs.c2_w2", "abi1/another")],
                         ids=["missing", "another-version"])
def test_a_worker_without_the_coordinators_lab_finishes_nothing(released, ref, caplog):
    outcome = _outcome(released)
    with caplog.at_level(logging.WARNING, "grader.publish.on_worker"):
        assert finish(_request(lab=ref), "ann", outcome) is outcome
    assert "the coordinator finishes its results" in caplog.text


def test_a_fault_while_finishing_leaves_the_run_to_the_coordinator(released, monkeypatch):
    def broken(*args):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(on_worker, "judge_outcome", broken)
    outcome = _outcome(released)
    assert finish(_request(), "ann", outcome) is outcome


# --- One student's file, read and prepared on the worker: a bad one is that student's row --

def _raw(released_lab, data=None, **changes):
    data = (released_lab / lab.notebook_name).read_bytes() if data is None else data
    request = _request(submitted=data, digest=hashlib.sha256(data).hexdigest(), **changes)
    return GradingTask("ann", None, lab.notebook_name, None), request


def test_a_file_is_prepared_on_the_worker_with_the_hidden_inputs_of_its_secret(released_lab):
    task, request = _raw(released_lab)
    prepared, rest, row = request.prepared(task)
    assert row is None and prepared.notebook is not None
    assert prepared.plan.inputs == lab.hidden_inputs(request.secret)
    assert rest.submitted is None and rest.notes[0] == "A note of intake."


@pytest.mark.parametrize("data, changes, words", [
    (b'{"cells": [', {}, sentence(NOT_JSON)),
    (b"{}", {}, sentence(NOT_A_NOTEBOOK)),
    (None, {"digest": "0" * 64}, sentence(CHANGED)),
], ids=["truncated", "not-a-notebook", "not-intakes-file"])
def test_a_file_the_worker_cannot_read_is_that_students_invalid_row(released_lab, data,
                                                                   changes, words):
    task, request = _raw(released_lab, data)
    _, _, row = dataclasses.replace(request, **changes).prepared(task)
    assert (row.status, row.verdicts, row.made.feedback) == ("invalid", {}, "none")
    assert words in row.detail and "A note of intake." in row.detail


def test_a_fault_of_ours_while_preparing_is_that_students_error_row(released_lab,
                                                                   monkeypatch):
    monkeypatch.setattr(on_worker, "prepare", lambda *args: 1 / 0)
    task, request = _raw(released_lab)
    _, _, row = request.prepared(task)
    assert row.status == "error" and row.detail == OUR_FAULT


def test_a_worker_without_the_lab_prepares_nothing_and_says_so(released_lab):
    task, request = _raw(released_lab, lab=LabRef("no.such.lab", "abi1/x"))
    _, _, row = request.prepared(task)
    assert row.end is RunEnd.GRADING_FAILED and row.reason == on_worker.CANNOT_PREPARE


def test_a_worker_writes_nothing_for_an_id_that_is_not_one_folder(released, tmp_path):
    made = finish(_request(), "ann", _outcome(released)).made
    for unsafe in ("../victim", "a/b", ".."):
        request = _request(out=str(tmp_path / "out"))
        assert on_worker.written_into_out(lab, request, unsafe, made) is made
    assert not (tmp_path / "out").exists() and not (tmp_path / "victim").exists()


def _render_in_a_daemon(queue):
    writer = FeedbackWriter(lab, "/nonexistent")
    try:
        page = writer.render(StudentResult("ann", "graded"), nbformat.v4.new_notebook())
        queue.put(page.startswith("<!DOCTYPE html>"))
    except Exception as error:  # pragma: no cover - said in the assertion
        queue.put(repr(error))
    finally:
        writer.close()


def test_pages_render_in_a_daemonic_process_as_a_dask_worker_is():
    # multiprocessing lets a daemonic process have no children of its own: the renderer is
    # a new interpreter, started with subprocess.
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_render_in_a_daemon, args=(queue,), daemon=True)
    child.start()
    try:
        assert queue.get(timeout=120) is True
    finally:
        child.join(30)


# --- A batch: the same OUT whether the workers or the coordinator publish -----------------

class BlindRunner(CannedRunner):
    """Recorded outcomes, and an error for any task whose finish request (the grading's
    secret in it) reached the runner: the worker takes it off first."""

    def run(self, task, support_files):
        if task.finish is not None:
            return RunOutcome({}, RunEnd.GRADING_FAILED, "the runner saw the finish request")
        return super().run(task, support_files)


def _canned_batch(class_dir, tmp_path, name, released):
    submissions = tmp_path / "submissions"
    if not submissions.exists():
        for student in (RIGHT, WRONG, "invalid-truncated"):
            (submissions / student).mkdir(parents=True)
            source = class_dir / student / lab.notebook_name
            (submissions / student / lab.notebook_name).write_bytes(source.read_bytes())
    out = tmp_path / name
    recorded = {RIGHT: _outcome(released), WRONG: _outcome(released, RunEnd.TIMED_OUT)}
    batch = autograde(submissions=submissions, out=out, lab=lab, workers=1,
                      runner=BlindRunner(recorded), secret_key=KEY)
    return out, batch


# Made for each batch, whoever publishes: nbgrader's submission secret and the time of a
# submission that came without one.
PER_BATCH = ("submission_secret.txt", "timestamp.txt")


def _out_files(out):
    files = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out).as_posix()
        if path.is_file() and relative.startswith(("feedback/", "nbgrader/autograded/",
                                                   "nbgrader/feedback/")) \
                and path.name not in PER_BATCH:
            files[relative] = path.read_bytes()
    with open(out / "grades.csv", newline="") as grades:
        files["grades.csv"] = list(csv.reader(grades))
    return files


@pytest.mark.usefixtures("copy_results_course")
def test_a_batch_published_on_the_workers_writes_what_the_coordinator_did(
        class_dir, tmp_path, released, monkeypatch):
    on_workers, batch = _canned_batch(class_dir, tmp_path, "workers", released)
    coordinator_stages = json.loads((on_workers / "profile.json").read_text())["stages"]
    assert "judge" not in coordinator_stages["coordinator"]
    workers = coordinator_stages["workers"]
    assert workers["judge"]["count"] == workers["files into OUT"]["count"] == 2
    assert workers["feedback page"]["count"] == 2
    # A worker that does not see OUT as the coordinator does sends the files instead.
    monkeypatch.setattr(on_worker, "_can", _cannot_write_out)
    sent, _ = _canned_batch(class_dir, tmp_path, "sent", released)
    stages = json.loads((sent / "profile.json").read_text())["stages"]
    assert "files into OUT" not in stages["workers"] and stages["workers"]["judge"]["count"]
    monkeypatch.setattr(pipeline, "lab_spec", lambda lab: None)  # no worker can load it
    by_coordinator, _ = _canned_batch(class_dir, tmp_path, "coordinator", released)
    stages = json.loads((by_coordinator / "profile.json").read_text())["stages"]
    assert stages["coordinator"]["judge"]["count"] == 2 and "judge" not in stages["workers"]
    header, *rows = _out_files(on_workers)["grades.csv"]
    status = header.index("status")
    assert [row[status] for row in rows] == ["invalid", "graded", "timeout"], rows
    written = _out_files(on_workers)
    assert len([name for name in written if name.endswith(".html")]) == 4  # and the course's
    assert written == _out_files(by_coordinator) == _out_files(sent)


def _cannot_write_out(ref, probe, token, uid):
    """on_worker._can of a worker on another machine: the probe file is not there."""
    return on_worker._can(ref, probe + "-elsewhere", token, uid)


# --- The gradebook's rows, in batches ------------------------------------------------------

def _record(student):
    verdicts = {exercise.id: ExerciseVerdict(exercise.id, 1.0, lab.points[exercise.id])
                for exercise in lab.exercises}
    return StudentRecord(student, "graded", verdicts=verdicts, has_notebook=True)


def _students_in(database):
    with sqlite3.connect(database) as connection:
        return sorted(row[0] for row in connection.execute("SELECT id FROM student"))


@pytest.mark.usefixtures("copy_results_course")
def test_a_batch_of_gradebook_rows_is_written_whole_or_not_at_all(tmp_path, monkeypatch,
                                                                  results_course_copier):
    out = tmp_path / "out"
    url = gradebook_url(out, None)
    results_course_copier(out, lab, url)
    writer = GradebookWriter(lab, url)
    try:
        writer.record_many([_record("ann")])
        original = GradebookWriter._record

        def failing_on_ann(self, record):  # ann's submission is held: nbgrader's API
            if record.student_id == "ann":
                raise RuntimeError("the database went away")
            original(self, record)

        monkeypatch.setattr(GradebookWriter, "_record", failing_on_ann)
        # bob and cy are new (bulk rows, written first): gone with ann's failure
        with pytest.raises(GradebookError, match="went away"):
            writer.record_many([_record("bob"), _record("cy"), _record("ann")])
        assert _students_in(out / "gradebook.db") == ["ann"]
        assert "commit" not in vars(writer.gradebook.db)  # nbgrader's commits are its own again
        writer.record_many([_record("bob"), _record("cy")])
        assert _students_in(out / "gradebook.db") == ["ann", "bob", "cy"]
    finally:
        writer.close()
