"""A stand-in for the sandbox runner (grader.run.worker.SandboxRunner) in the cgroup tests: it
makes a kernel's cgroup as grading does, puts in it a process of the kind a student
detaches from the kernel, writes both down and kills its own Dask worker, as a submission
that crashes its worker (out of memory, a kernel bug) would, leaving the group behind.

A module of its own, not a test file: the Dask workers import it by name.
"""

import os
import signal
import subprocess
from pathlib import Path
from typing import NamedTuple

from grader.run import cgroups
from grader.run.runner import Runner


class Task(NamedTuple):
    student_id: str
    record_dir: str  # a line per start: the group's name and the detached process's pid


class CgroupRunner(Runner):
    def run(self, task, support_files):
        return grade(task, support_files)


def grade(task, support_files):
    group = cgroups.kernel_cgroup(memory_mb=200, max_processes=16)
    detached = subprocess.Popen(["sleep", "1951"], start_new_session=True)
    group.add(detached.pid)
    with (Path(task.record_dir) / task.student_id).open("a") as record:
        record.write(f"{group.name} {detached.pid}\n")
    os.kill(os.getpid(), signal.SIGKILL)


def records(record_dir, student_id):
    return [line.split() for line in (Path(record_dir) / student_id).read_text().splitlines()]
