"""grader.run.unfinished_runs: the scheduler's count of each submission's runs that started
and did not finish, per batch, asked for only when a worker died under a submission."""

from grader.run import unfinished_runs
from grader.run.unfinished_runs import FINISHED, PLUGIN_NAME, STARTED, UnfinishedRuns


class FakeScheduler:
    """What the functions use of a Dask scheduler: its plugins."""

    def __init__(self):
        self.plugins = {}

    def add_plugin(self, plugin, name=None):
        self.plugins[name or plugin.name] = plugin

    def log_event(self, topic, msg):  # as the event broker calls every plugin
        for plugin in self.plugins.values():
            plugin.log_event(topic, msg)


class FakeClient:
    """Runs `run_on_scheduler` on a FakeScheduler, as Dask runs it on the real one."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def run_on_scheduler(self, function, *args):
        return function(*args, dask_scheduler=self.scheduler)


def test_a_run_that_finished_is_not_counted_and_not_kept():
    scheduler = FakeScheduler()
    runs = UnfinishedRuns(FakeClient(scheduler), "grade-1-runs")
    runs.begin()
    for what in (STARTED, FINISHED, STARTED, FINISHED):
        scheduler.log_event("grade-1-runs", ["ann", what])
    assert runs.count("ann") == 0
    assert scheduler.plugins[PLUGIN_NAME].batches == {"grade-1-runs": {}}


def test_each_run_a_worker_died_in_is_counted():
    scheduler = FakeScheduler()
    runs = UnfinishedRuns(FakeClient(scheduler), "grade-1-runs")
    runs.begin()
    scheduler.log_event("grade-1-runs", ["bob", STARTED])  # its worker died
    scheduler.log_event("grade-1-runs", ["bob", STARTED])  # and the next one too
    scheduler.log_event("grade-1-runs", ["ann", STARTED])
    scheduler.log_event("grade-1-runs", ["ann", FINISHED])
    assert (runs.count("bob"), runs.count("ann"), runs.count("cat")) == (2, 0, 0)


def test_batches_on_one_scheduler_are_counted_apart_and_forgotten_when_they_end():
    scheduler = FakeScheduler()
    first = UnfinishedRuns(FakeClient(scheduler), "grade-1-runs")
    second = UnfinishedRuns(FakeClient(scheduler), "grade-2-runs")
    first.begin()
    second.begin()  # the plugin the first batch added is shared, not replaced
    scheduler.log_event("grade-1-runs", ["bob", STARTED])
    scheduler.log_event("some-other-topic", ["bob", STARTED])
    assert (first.count("bob"), second.count("bob")) == (1, 0)
    first.end()
    scheduler.log_event("grade-1-runs", ["bob", STARTED])  # late: its batch has ended
    assert list(scheduler.plugins[PLUGIN_NAME].batches) == ["grade-2-runs"]
    assert first.count("bob") == 0


def test_ending_on_a_scheduler_that_is_gone_raises_nothing():
    class GoneClient:
        def run_on_scheduler(self, function, *args):
            raise OSError("Timed out trying to connect")

    UnfinishedRuns(GoneClient(), "grade-1-runs").end()


def test_a_worker_reports_to_the_scheduler_and_waits_for_it(monkeypatch):
    sent = []

    class Scheduler:
        async def log_event(self, topic, msg):
            sent.append((topic, msg))

    class Worker:
        scheduler = Scheduler()
        loop = None

    def sync(loop, function, **kwargs):  # distributed.utils.sync: runs it on the loop, waits
        import asyncio

        return asyncio.run(function(**kwargs))

    monkeypatch.setattr("distributed.utils.sync", sync)
    unfinished_runs.report(Worker(), "grade-1-runs", "ann", STARTED)
    assert sent == [("grade-1-runs", ["ann", STARTED])]
