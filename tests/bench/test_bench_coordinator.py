"""bench/bench_coordinator.py: the coordinator fed canned outcomes, on tiny classes, and its
arithmetic on hand-made numbers."""

import importlib
import json

import pytest


@pytest.fixture(scope="module")
def bench():
    # Imported as tools.run_notebook is: the project root is on sys.path.
    return importlib.import_module("bench.bench_coordinator")


def test_the_script_simulates_tiny_classes_and_reports_sane_numbers(bench, tmp_path, capsys):
    assert bench.main(["--sizes", "8", "16", "--json", str(tmp_path / "out.json")]) == 0
    printed = capsys.readouterr().out
    assert "coordinator + renderer CPU per student at N=16" in printed
    data = json.loads((tmp_path / "out.json").read_text())
    for run, row in zip(data["runs"], data["rows"], strict=True):
        assert run["graded"] == run["size"] == row["size"]
        assert 0 < row["coordinator_ms_per_student"] < 5000
        # The worker sends each page made (a recorded finished run): none renders here.
        assert row["renderer_ms_per_student"] == row["worker_renderer_ms_per_student"] == 0
        assert 50 < row["peak_mb"] < 2000
        assert set(run["rss_kib"]) == {str(run["size"] // 4), str(run["size"])}
        assert row["class_files_seconds"] > 0


def test_the_slope_and_the_extrapolations(bench):
    run = {"size": 1000, "cpu_seconds": 40.0, "renderer_cpu_seconds": 100.0,
           "seconds": 200.0, "peak_kib": 400_000, "class_files_seconds": 2.0,
           "rss_kib": {"250": 300_000, "1000": 300_750}}
    row = bench.derived(run)
    assert row["coordinator_ms_per_student"] == pytest.approx(40.0)
    assert row["renderer_ms_per_student"] == pytest.approx(100.0)
    assert row["rss_slope_kb_per_student"] == pytest.approx(1.024)
    lines = bench.report_lines([row])
    assert "140.0 ms = 28.0x the goal of 5 ms" in lines[-3]
    assert "at 100,000 students that is 102 MB" in lines[-2]
    assert "200 s (goal 60 s)" in lines[-1]


def test_a_size_below_four_is_refused(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--sizes", "3"])


def test_with_render_the_worker_judges_and_renders_every_page_on_a_local_cluster(bench,
                                                                               tmp_path):
    assert bench.main(["--sizes", "4", "--render", "--local",
                       "--json", str(tmp_path / "out.json")]) == 0
    run, = json.loads((tmp_path / "out.json").read_text())["runs"]
    assert run["local"] is True and run["graded"] == 4
    assert run["worker_renderer_cpu_seconds"] > 0 and run["renderer_cpu_seconds"] == 0
