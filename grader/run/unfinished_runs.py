"""How many times each submission started on a Dask worker and did not finish there,
counted on the scheduler.

Dask blames a worker's death on every task assigned to it, started or not; the grader
decides itself (grader.run.cluster): a submission that two workers died grading is not tried
a third time, one that only waited on a dying worker is submitted again. Each worker reports
a submission's start and its end to the scheduler, awaited (Worker.log_event under the
batch's topic); a scheduler plugin counts them, per batch, and the coordinator asks for a
submission's count only when a worker died under it. Forwarded to the coordinator instead,
the two reports were two more messages per student for its event loop to read.

A finished submission may run again if the worker holding its result dies before the
result reaches the coordinator; that worker's death is not counted against it. The plugin
keeps a count only while it is not 0, and a batch's counts only until the batch ends: its
memory is the submissions being graded, and those whose workers died.
"""

import collections
import contextlib

from distributed.diagnostics.plugin import SchedulerPlugin

PLUGIN_NAME = "grader-unfinished-runs"
STARTED, FINISHED = "started", "finished"


class UnfinishedRunsCounter(SchedulerPlugin):
    """On the scheduler: the count of unfinished runs of each submission, per batch topic."""

    name = PLUGIN_NAME

    def __init__(self):
        self.batches = {}  # topic: Counter of student ids

    def log_event(self, topic, msg):
        counts = self.batches.get(topic)
        if counts is None:  # not a batch's topic, or a batch that ended
            return
        student_id, what = msg
        counts[student_id] += 1 if what == STARTED else -1
        if counts[student_id] == 0:
            del counts[student_id]


def _plugin(dask_scheduler):
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME)
    if plugin is None:  # the first batch on this scheduler; later ones share it
        plugin = UnfinishedRunsCounter()
        dask_scheduler.add_plugin(plugin, name=PLUGIN_NAME)
    return plugin


def _begin(topic, dask_scheduler=None):
    _plugin(dask_scheduler).batches[topic] = collections.Counter()


def _end(topic, dask_scheduler=None):
    _plugin(dask_scheduler).batches.pop(topic, None)


def _count(topic, student_id, dask_scheduler=None):
    return _plugin(dask_scheduler).batches.get(topic, {}).get(student_id, 0)


class UnfinishedRuns:
    """The coordinator's side, for one batch: its topic counted from `begin` on (before any
    task is submitted) until `end`."""

    def __init__(self, client, topic):
        self.client, self.topic = client, topic

    def begin(self):
        """Count the topic's reports from now on; ImportError when the scheduler cannot
        unpickle the grader's functions (it runs none of this package)."""
        self.client.run_on_scheduler(_begin, self.topic)

    def end(self):
        with contextlib.suppress(Exception):  # the scheduler may be gone: nothing to undo
            self.client.run_on_scheduler(_end, self.topic)

    def count(self, student_id):
        """How many times `student_id`'s submission started and did not finish, so far."""
        return self.client.run_on_scheduler(_count, self.topic, student_id)


def report(worker, topic, student_id, what):
    """On the worker: tell the scheduler that `student_id`'s run `what` (STARTED or
    FINISHED). Awaited, not queued: a worker killed a moment later has told."""
    from distributed.utils import sync

    sync(worker.loop, worker.scheduler.log_event, topic=topic, msg=[student_id, what])
