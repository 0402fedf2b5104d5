"""A batch's per-stage profile, saved as OUT/profile.json for bench/bench_profile.py.

    coordinator   the coordinating process's stages, each in the thread that runs it
                  (intake, prepare, cluster start, judge, publishing, class files)
    renderer      the feedback page renderer's CPU (grader.publish.page_process)
    nbgrader      the CPU of the nbgrader commands it runs (the results course)
    workers       every submission's worker stages, summed (RunOutcome.stages: the
                  worker's thread, the kernel's and the template's CPU)

with the coordinator's own process CPU before the batch (the interpreter, the imports) and
during it (all its threads: Dask's scheduler and client included, which no stage names),
and when each result reached the coordinator. Nothing in
it decides a grade; it is written after the class files, and a failure to write it is
only logged.
"""

import json
import logging
import os
import time
from pathlib import Path

from grader.publish.files import write_atomically
from grader.records import RunOutcome
from grader.stage_clock import StageClock, seconds_since_started

log = logging.getLogger(__name__)
PROFILE_JSON = "profile.json"


class BatchProfile:
    """The clocks of one batch, and when its results came."""

    def __init__(self) -> None:
        self.clock = StageClock()  # the coordinator's threads
        self.renderer = StageClock()  # the feedback page renderer process
        self.nbgrader = StageClock()  # the nbgrader commands it runs
        self.workers = StageClock()  # the workers' stages, summed over submissions
        self.started = time.monotonic()
        self.cpu_started = time.process_time()  # the interpreter's start and the imports
        # The process's own start (the interpreter, the grader's imports) to this batch's.
        self.process_started = seconds_since_started()
        self.result_seconds: list[float] = []  # when each outcome arrived, from the start

    def add_outcome(self, outcome: RunOutcome) -> None:
        """Count a RunOutcome's stages, as it reaches the coordinator."""
        self.result_seconds.append(round(time.monotonic() - self.started, 3))
        # getattr: an outcome pickled by a worker of an earlier release has no stages
        self.workers.merge(getattr(outcome, "stages", None) or {})

    def as_json(self, *, submissions: int, workers: int) -> dict:
        children = os.times()
        return {
            "submissions": submissions,
            "workers": workers,
            "wall_seconds": round(time.monotonic() - self.started, 3),
            "process_started_seconds": round(self.process_started, 3),
            "coordinator_start_cpu_seconds": round(self.cpu_started, 3),
            "coordinator_cpu_seconds": round(time.process_time() - self.cpu_started, 3),
            # Only of children already waited for (the workers' processes once stopped),
            # and not of what those did not wait for (kernels): a floor, not the tree.
            "waited_children_cpu_seconds": round(children.children_user
                                                 + children.children_system, 3),
            "result_seconds": self.result_seconds,
            "stages": {"coordinator": self.clock.totals(),
                       "renderer": self.renderer.totals(),
                       "nbgrader": self.nbgrader.totals(),
                       "workers": self.workers.totals()},
        }

    def write(self, out: str | Path, *, submissions: int, workers: int) -> None:
        """Save the profile as OUT/profile.json; a failure is logged, never raised."""
        try:
            write_atomically(Path(out) / PROFILE_JSON, json.dumps(
                self.as_json(submissions=submissions, workers=workers), indent=1) + "\n")
        except Exception:
            log.exception("the batch's profile could not be written")
