"""The stage clock (grader.stage_clock) and the batch's profile (grader.publish.batch_profile):
seconds counted where they were spent, once each, at a cost of microseconds."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from grader.publish.batch_profile import PROFILE_JSON, BatchProfile
from grader.publish.page_process import PageProcess
from grader.records import RunOutcome
from grader.stage_clock import ProcessCPU, StageClock, timed_context


def _busy(seconds):
    """Spend about `seconds` of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_stage_counts_its_runs_wall_and_cpu():
    clock = StageClock()
    for _ in range(3):
        with clock.stage("judge"):
            _busy(0.01)
    with clock.stage("journal"):
        time.sleep(0.02)
    totals = clock.totals()
    assert totals["judge"]["count"] == 3
    assert totals["judge"]["cpu"] >= 0.03 and totals["judge"]["wall"] >= 0.03
    assert totals["journal"]["wall"] >= 0.02
    assert totals["journal"]["cpu"] < totals["journal"]["wall"]  # asleep: no CPU


def test_a_stage_counts_its_own_threads_cpu_only():
    clock = StageClock()
    other = threading.Thread(target=_busy, args=(0.1,))
    with clock.stage("waiting"):
        other.start()
        other.join()
    assert clock.totals()["waiting"]["cpu"] < 0.05


def test_a_helper_process_cpu_is_added_to_the_stage():
    spent = iter([1.0, 1.5])
    clock = StageClock()
    with clock.stage("cell 03", helper_cpu=lambda: next(spent)):
        pass
    assert 0.5 <= clock.totals()["cell 03"]["cpu"] < 0.51


def test_what_another_stage_counts_is_taken_out_and_never_below_zero():
    clock = StageClock()
    with clock.stage("fork + confinement") as stage:
        time.sleep(0.01)
        stage.add(wall=-0.01, cpu=-1.0)
    clock.add_stage("template import", wall=0.01, cpu=1.0)
    totals = clock.totals()
    assert totals["fork + confinement"]["cpu"] == 0.0
    assert totals["fork + confinement"]["wall"] < 0.01
    assert totals["template import"] == {"count": 1, "wall": 0.01, "cpu": 1.0}


def test_a_stage_of_count_zero_adds_seconds_not_runs():
    clock = StageClock()
    with clock.stage("cluster start"):
        pass
    with clock.stage("cluster start", count=0):
        pass
    assert clock.totals()["cluster start"]["count"] == 1


def test_a_stage_that_raises_is_counted_and_the_error_goes_on():
    clock = StageClock()
    with pytest.raises(KeyError), clock.stage("judge"):
        raise KeyError("x")
    assert clock.totals()["judge"]["count"] == 1


def test_clocks_merge_as_json():
    worker, coordinator = StageClock(), StageClock()
    worker.add_stage("capture", wall=0.1, cpu=0.2, count=2)
    coordinator.merge(json.loads(json.dumps(worker.totals())))
    coordinator.merge(worker.totals())
    coordinator.merge({})
    assert coordinator.totals() == {"capture": {"count": 4, "wall": 0.2, "cpu": 0.4}}


def test_threads_adding_at_once_lose_nothing():
    clock = StageClock()

    def add():
        for _ in range(2000):
            clock.add_stage("row", wall=0.001, cpu=0.001)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.totals()["row"]["count"] == 8000


def test_a_stage_costs_microseconds():
    clock = StageClock()
    started = time.perf_counter()
    for _ in range(10_000):
        with clock.stage("journal"):
            pass
    # About 2 µs each here; 100 µs is the bound of a very loaded machine.
    assert (time.perf_counter() - started) / 10_000 < 100e-6


def test_timed_context_times_the_entering_and_the_leaving_apart():
    class Slow:
        def __enter__(self):
            time.sleep(0.02)
            return "client"

        def __exit__(self, *exc_info):
            time.sleep(0.03)

    clock = StageClock()
    with timed_context(clock, Slow(), "cluster start", "cluster stop") as client:
        assert client == "client"
        time.sleep(0.05)  # neither's
    totals = clock.totals()
    assert 0.02 <= totals["cluster start"]["wall"] < 0.05
    assert 0.03 <= totals["cluster stop"]["wall"] < 0.08


def test_timed_context_leaves_the_context_when_the_block_fails():
    left = []

    class Context:
        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            left.append(exc_info[0])

    clock = StageClock()
    with pytest.raises(RuntimeError), timed_context(clock, Context(), "start", "stop"):
        raise RuntimeError("stopped")
    assert left == [RuntimeError] and clock.totals()["stop"]["count"] == 1


def test_a_context_that_fails_to_start_raises_its_own_error():
    # A cluster whose nanny fails to start: its error, not one of the clock's, reaches the
    # instructor (an AttributeError of the never-entered stop stage hid it).
    class Failing:
        def __enter__(self):
            raise RuntimeError("Nanny failed to start.")

        def __exit__(self, *exc_info):
            raise AssertionError("never entered, never left")

    clock = StageClock()
    with pytest.raises(RuntimeError, match="Nanny failed"), timed_context(
            clock, Failing(), "cluster start", "cluster stop"):
        raise AssertionError("not reached")
    assert set(clock.totals()) == {"cluster start"}


def test_a_processs_cpu_is_read_and_kept_once_it_is_gone():
    assert ProcessCPU(os.getpid())() > 0
    child = subprocess.Popen([sys.executable, "-c", "sum(range(10**7))"])
    meter = ProcessCPU(child.pid)
    seen = 0.0
    while child.poll() is None:
        seen = meter()
    assert meter() >= seen
    assert ProcessCPU()() == 0.0  # none watched


def test_a_page_process_not_started_has_spent_nothing():
    pages = PageProcess(str, dict)
    assert pages.cpu_seconds() == 0.0 and pages.take_startup() is None


def test_the_profile_sums_the_outcomes_and_is_saved_in_out(tmp_path):
    profile = BatchProfile()
    with profile.clock.stage("judge"):
        pass
    profile.renderer.add_stage("feedback page render", cpu=0.3)
    for _ in range(2):
        profile.add_outcome(RunOutcome({}, stages={"capture": {"count": 2, "wall": 0.1,
                                                               "cpu": 0.2}}))
    profile.add_outcome(RunOutcome({}))  # e.g. a recorded outcome, no stages
    profile.write(tmp_path, submissions=3, workers=2)
    saved = json.loads((tmp_path / PROFILE_JSON).read_text())
    assert (saved["submissions"], saved["workers"]) == (3, 2)
    assert saved["stages"]["workers"] == {"capture": {"count": 4, "wall": 0.2, "cpu": 0.4}}
    assert saved["stages"]["coordinator"]["judge"]["count"] == 1
    assert saved["stages"]["renderer"]["feedback page render"]["cpu"] == 0.3
    assert len(saved["result_seconds"]) == 3
    assert saved["result_seconds"] == sorted(saved["result_seconds"])
    assert saved["coordinator_cpu_seconds"] >= 0 and saved["process_started_seconds"] > 0


def test_a_profile_that_cannot_be_written_is_only_logged(tmp_path, caplog):
    (tmp_path / PROFILE_JSON).mkdir()  # a folder where the file goes
    BatchProfile().write(tmp_path, submissions=0, workers=0)
    assert "profile could not be written" in caplog.text


def test_a_cell_is_named_by_its_grade_id_only_when_the_lab_knows_it():
    from grader.run.execution import cell_stage

    def cell(grade_id):
        return {"cell_type": "code", "source": "", "metadata": {"nbgrader": {
            "grade_id": grade_id}}}

    known = {"UNQ_C1", "UNQ_C1_test"}
    assert cell_stage(7, cell("UNQ_C1_test"), known) == "cell 07 UNQ_C1_test"
    # A student's own cell with a grade id of a megabyte adds no row of its own.
    assert cell_stage(12, cell("x" * 2**20), known) == "cell 12"
    assert cell_stage(3, {"cell_type": "code", "source": "", "metadata": {}}, known) == "cell 03"
    assert cell_stage(4, cell(["UNQ_C1"]), known) == "cell 04"  # unhashable: no error


def test_a_processs_age_is_known_to_a_tick_not_to_the_boot_times_whole_second():
    # psutil's create_time adds a process's start to the boot time in whole seconds: a
    # process looked up to a second older than it was, and validate's stages came out
    # longer than the run that held them.
    before = time.monotonic()
    child = subprocess.run([sys.executable, "-c", "from grader.stage_clock import"
                            " seconds_since_started; print(seconds_since_started())"],
                           capture_output=True, text=True, check=True)
    elapsed = time.monotonic() - before
    assert 0 < float(child.stdout) <= elapsed + 0.02  # one tick of the kernel's clock
