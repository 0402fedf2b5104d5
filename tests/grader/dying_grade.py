"""A stand-in for the sandbox runner (grader.run.worker.SandboxRunner) in the cluster's tests:
it counts its starts in files and kills its own Dask worker process when the task says so,
as a submission that crashes its worker (out of memory, a kernel bug) would.

A module of its own, not a test file: the Dask workers import it by name.
"""

import os
import signal
from pathlib import Path
from typing import NamedTuple

from grader.records import RunOutcome
from grader.run.runner import Runner


class Task(NamedTuple):
    student_id: str
    starts_dir: str  # one file per student, a line per start
    kills_its_worker: bool


class DyingRunner(Runner):
    def run(self, task, support_files):
        return grade(task, support_files)


def grade(task, support_files):
    with (Path(task.starts_dir) / task.student_id).open("a") as starts:
        starts.write(f"{os.getpid()}\n")
    if task.kills_its_worker:
        os.kill(os.getpid(), signal.SIGKILL)
    return RunOutcome({}, notebook={"graded": task.student_id,
                                    "support_files": support_files.digest})


def starts(starts_dir, student_id):
    path = Path(starts_dir) / student_id
    return len(path.read_text().splitlines()) if path.exists() else 0
