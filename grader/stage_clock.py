"""Where grading's time goes: wall and CPU seconds per named stage, always on, for the
per-stage profile (bench/bench_profile.py).

    clock = StageClock()
    with clock.stage("journal"):
        ...
    clock.totals()  ->  {"journal": {"count": 1, "wall": 0.002, "cpu": 0.0019}}

A stage's CPU is the CPU time of the thread that runs it (time.thread_time), plus what a
helper process it waits on spent meanwhile (`helper_cpu`, a callable returning that
process's CPU seconds so far: a kernel, the feedback page renderer). Stages of one thread
do not nest: each second is counted in one stage only, so that the rows add up. Entering
and leaving a stage costs about a microsecond; a helper's CPU, a read of /proc, tens.

The totals are plain JSON data: a worker's travel back with its RunOutcome (`stages`),
and the coordinator sums them with its own into OUT/profile.json (grader.pipeline).
"""

import contextlib
import os
import resource
import threading
import time
from collections.abc import Callable

COUNT, WALL, CPU = "count", "wall", "cpu"


class StageClock:
    """Totals of wall and CPU seconds, and counts, per stage name; safe across threads."""

    def __init__(self) -> None:
        self._totals: dict[str, list[float]] = {}  # name -> [count, wall, cpu]
        self._lock = threading.Lock()

    def stage(self, name: str, helper_cpu: Callable[[], float] | None = None,
              count: int = 1) -> "Stage":
        """A context manager timing one run of the stage `name` (`count` 0: more of a
        run already counted, done elsewhere)."""
        return Stage(self, name, helper_cpu, count)

    def add_stage(self, name: str, *, wall: float = 0.0, cpu: float = 0.0,
                  count: int = 1) -> None:
        """Count `count` runs of `name` that took `wall` and `cpu` seconds."""
        with self._lock:
            totals = self._totals.setdefault(name, [0, 0.0, 0.0])
            totals[0] += count
            totals[1] += wall
            totals[2] += cpu

    def merge(self, totals: dict) -> None:
        """Add another clock's `totals()` (e.g. a worker's) to this one's."""
        for name, stage in (totals or {}).items():
            self.add_stage(name, wall=stage.get(WALL, 0.0), cpu=stage.get(CPU, 0.0),
                     count=stage.get(COUNT, 0))

    def totals(self) -> dict[str, dict[str, float]]:
        """{stage: {"count", "wall", "cpu"}}, as JSON data."""
        with self._lock:
            return {name: {COUNT: int(count), WALL: round(wall, 6), CPU: round(cpu, 6)}
                    for name, (count, wall, cpu) in self._totals.items()}


class Stage:
    """One run of a stage; `add` puts seconds in or (negative) takes out what another
    stage already counts, such as a template's start-up inside a kernel's start."""

    __slots__ = ("clock", "name", "helper_cpu", "count", "_wall", "_cpu", "_helper", "wall",
                 "cpu")

    def __init__(self, clock: StageClock, name: str,
                 helper_cpu: Callable[[], float] | None = None, count: int = 1) -> None:
        self.clock, self.name, self.helper_cpu, self.count = clock, name, helper_cpu, count
        self.wall = self.cpu = 0.0

    def __enter__(self) -> "Stage":
        self._helper = self.helper_cpu() if self.helper_cpu else 0.0
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.thread_time() - self._cpu
        if self.helper_cpu:
            self.cpu += self.helper_cpu() - self._helper
        self.clock.add_stage(self.name, wall=max(0.0, self.wall), cpu=max(0.0, self.cpu),
                       count=self.count)

    def add(self, *, wall: float = 0.0, cpu: float = 0.0) -> None:
        self.wall += wall
        self.cpu += cpu


class ProcessCPU:
    """A process's CPU seconds so far (user and system, its threads included), read from
    /proc; what it last read once the process is gone, 0 before it is known."""

    def __init__(self, pid: int | None = None) -> None:
        self._process = None
        self.last = 0.0
        if pid is not None:
            self.watch(pid)

    def watch(self, pid: int) -> None:
        import psutil

        try:
            self._process = psutil.Process(pid)
        except psutil.Error:
            self._process = None

    def __call__(self) -> float:
        if self._process is not None:
            try:
                times = self._process.cpu_times()
                self.last = times.user + times.system
            except Exception:  # gone (killed at the end, or confined out of sight)
                self._process = None
        return self.last


@contextlib.contextmanager
def timed_context(clock: StageClock, context, start: str, stop: str):
    """Enter `context` and leave it, the entering timed as the stage `start` of `clock`,
    the leaving as `stop` (a cluster's start and its stop)."""
    stopping = clock.stage(stop)
    leaving = False  # a context that failed to start is not stopped: its error stands

    def stopped():
        if leaving:
            stopping.__exit__()

    with contextlib.ExitStack() as stack:
        stack.callback(stopped)  # last: once `context` has been left
        with clock.stage(start):
            value = stack.enter_context(context)
        try:
            yield value
        finally:
            stopping.__enter__()
            leaving = True


def waited_children_cpu() -> float:
    """CPU seconds of this process's children that ended and were waited for, so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def seconds_since_started() -> float:
    """Wall seconds since this process was started, to the kernel's clock tick (10 ms):
    its start in /proc/self/stat, in ticks since boot, against CLOCK_BOOTTIME. Not
    psutil's create_time(): it adds that start to the boot time /proc/stat gives in whole
    seconds, so a process looked up to a second older than it was (0.47 s on the machine
    where a stage total came out longer than the run it was part of)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            started = int(stat.read().rsplit(")", 1)[1].split()[19])  # starttime, field 22
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME)
                   - started / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
