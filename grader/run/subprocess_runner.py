"""A runner without a sandbox, for trusted notebooks only: an instructor checking the
reference solution, a lab author trying a change.

Each notebook runs in a fresh kernel that nbclient starts (`python -m ipykernel_launcher`,
the python3 kernel of this interpreter): no warm template, no namespaces, no cgroup, no
system call policy. Its kernel runs as the grader, sees every file the grader can and
reaches the network; only the time limits, the output budget, a fresh directory and the
killing of every process it started at the end still apply. Never use it on students'
submissions.

It runs the same cells and the same captures as the sandbox, so a notebook gets the same
verdicts from both (tests/grader/test_runners.py checks that on the corpus).
"""

import dataclasses

from grader.records import KernelProtection
from grader.run.runner import Runner
from grader.run.worker import grade_submission

TRUSTED_ONLY = ("the subprocess runner (--runner subprocess) does not sandbox: kernels run "
                "as the grader, with its files and network, without memory or process caps; "
                "for trusted notebooks only, never for students' submissions")


class SubprocessRunner(Runner):
    """Each notebook in a fresh `python -m ipykernel` kernel, unconfined (see above)."""

    name = "subprocess"

    def run(self, task, support_files):
        unconfined = dataclasses.replace(task, limits=dataclasses.replace(task.limits,
                                                                          confine=False))
        outcome = grade_submission(unconfined, support_files, warm=False)
        ran = outcome.protection is not None  # else no kernel ran: nothing confined it
        return dataclasses.replace(outcome, protection=KernelProtection() if ran else None,
                                   unprotected=(TRUSTED_ONLY,))
