"""Tests for bench/bench_profile.py: the table from saved profiles, and the script itself on
a batch of two (one run each), read back from its output and its JSON. No time is
asserted: only that the rows are the stages, in their places, and that they add up."""

import importlib
import json
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def bench():
    return importlib.import_module("bench.bench_profile")


def _run(cpu=10.0, wall=6.0, coordinator_cpu=2.0):
    stage = {"count": 2, "wall": 0.5, "cpu": 1.0}
    return {"cpu": cpu, "wall": wall, "profile": {
        "coordinator_cpu_seconds": coordinator_cpu, "process_started_seconds": 1.0,
        "coordinator_start_cpu_seconds": 0.5,
        "result_seconds": [3.0, 4.0, 5.0],
        "stages": {"coordinator": {"judge": dict(stage)},
                   "renderer": {"feedback page render": dict(stage)},
                   "workers": {"template import": dict(stage), "worker start": dict(stage),
                               "cell 01": dict(stage), "cell 02 UNQ_C1": dict(stage),
                               "capture": dict(stage)}}}}


def test_each_stage_is_placed_where_it_ran(bench):
    assert bench.where("coordinator", "judge") == "coordinator"
    assert bench.where("renderer", "feedback page render") == "renderer"
    assert bench.where("workers", "template import") == "template"
    assert bench.where("workers", "cell 03 UNQ_C1") == "worker+kernel"
    assert bench.where("workers", "capture") == "worker+kernel"
    assert bench.where("workers", "notebook rebuild") == "worker"
    assert bench.where("workers", "judge") == "worker"
    assert bench.where("workers", "feedback page render") == "worker renderer"


def test_the_cells_are_one_row_and_the_rows_add_up_to_the_tree(bench):
    rows = bench.run_rows(_run())
    assert rows[("worker+kernel", bench.CELLS)] == {"count": 4, "wall": 1.0, "cpu": 2.0}
    assert ("worker+kernel", "cell 01") not in rows
    # judge 1.0 of the coordinator's 2.0: the other 1.0 is outside any stage
    assert rows[("coordinator", bench.COORDINATOR_OTHER)]["cpu"] == 1.0
    stages = sum(numbers["cpu"] for key, numbers in rows.items() if key[0] and
                 key[1] not in (bench.COORDINATOR_OTHER, bench.COORDINATOR_START))
    assert rows[("coordinator", bench.COORDINATOR_START)]["cpu"] == 0.5
    # 7.0 in the stages (the cells' 2.0 among them), 1.0 outside, 0.5 to start:
    # 1.5 unaccounted of 10.0
    assert rows[("", bench.UNACCOUNTED)]["cpu"] == pytest.approx(10.0 - stages - 1.0 - 0.5)
    assert rows[("", bench.TOTAL)] == {"count": 0, "wall": 6.0, "cpu": 10.0}


def test_with_cells_each_cell_is_listed_under_their_sum(bench):
    rows = bench.median_rows([_run()], cells=True)
    order = [stage for _, stage in bench.ordered(rows)]
    at = order.index(bench.CELLS)
    assert order[at + 1:at + 3] == ["cell 01", "cell 02 UNQ_C1"]
    assert order[-4:] == [bench.COORDINATOR_START, bench.COORDINATOR_OTHER, bench.UNACCOUNTED,
                          bench.TOTAL]
    # the listed cells are not counted twice
    assert rows[("", bench.UNACCOUNTED)]["cpu"] == pytest.approx(1.5)


def test_the_rows_are_medians_of_the_runs(bench):
    rows = bench.median_rows([_run(cpu=10.0), _run(cpu=14.0), _run(cpu=12.0)])
    assert rows[("", bench.TOTAL)]["cpu"] == 12.0


def test_the_table_has_a_line_per_row_and_shares_of_the_total(bench):
    rows = bench.median_rows([_run()])
    lines = bench.table_lines(rows, submissions=2)
    assert lines[0].split()[:3] == ["stage", "where", "count"]
    assert len(lines) == 1 + len(rows)
    judge = next(line for line in lines if line.startswith("judge "))
    assert judge.split()[-2:] == ["0.500", "10.0%"]  # 1.0 CPU s over 2 submissions, of 10
    assert lines[-1].split()[-1] == "100.0%"


def test_the_batch_timing_is_the_first_result_and_the_steady_pace(bench):
    timing = bench.batch_timing([_run()])
    assert timing == {"first_result_seconds": 4.0, "steady_seconds_per_submission": 1.0}
    single = _run()
    single["profile"]["result_seconds"] = [3.0]
    assert bench.batch_timing([single])["steady_seconds_per_submission"] is None


def test_the_steady_cost_counts_the_stages_every_submission_runs(bench):
    rows = bench.median_rows([_run()])
    # judge, render, cells, capture: 5.0 CPU s over 2 submissions; the worker's start and
    # the template's import are once per worker, whatever their count
    assert bench.steady_cpu_per_submission(rows, 2) == pytest.approx(2.5)


def test_the_script_profiles_one_submission_and_a_batch(bench, project_root, tmp_path):
    report = tmp_path / "profile.json"
    result = subprocess.run(
        [sys.executable, "bench/bench_profile.py", "--copies", "2", "--runs", "1",
         "--json", str(report)],
        cwd=project_root, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for setup in (bench.SINGLE, bench.BATCH):
        assert f"{setup}: " in out
    names = [line[:bench.NAME_WIDTH].strip() for line in out.splitlines()]
    for stage in ("template import", "fork + confinement", "kernel handshake", bench.CELLS,
                  "capture", "judge", "feedback page", "journal record", "gradebook row",
                  "report", "cluster start", bench.UNACCOUNTED, bench.TOTAL):
        # a row in each table (two for a stage of the coordinator's and the worker's)
        assert names.count(stage) in (2, 4), stage
    assert out.count("first result ") == 2

    data = json.loads(report.read_text())
    assert (data["copies"], data["workers"]) == (2, 2)
    for setup, submissions in ((bench.SINGLE, 1), (bench.BATCH, 2)):
        summary = data["summary"][setup]
        assert summary["submissions"] == submissions
        rows = {row["stage"]: row for row in summary["rows"]}
        total = rows[bench.TOTAL]["cpu"]
        assert total > 0 and summary["first_result_seconds"] > 0
        counted = sum(row["cpu"] for row in summary["rows"]
                      if row["stage"] not in (bench.TOTAL, bench.UNACCOUNTED))
        assert counted + rows[bench.UNACCOUNTED]["cpu"] == pytest.approx(total)
        assert rows["capture"]["count"] == 2 * submissions  # two exercises each
        [run] = data["runs"][setup]
        assert len(run["profile"]["result_seconds"]) == submissions
