"""bench/bench_coordinator.py: the coordinator fed canned outcomes, on tiny classes, and its
arithmetic on hand-made numbers."""

import dataclasses
import importlib
import json

import pytest


@pytest.fixture(scope="module")
def bench():
    # Imported as tools.run_notebook is: the project root is on sys.path.
    return importlib.import_module("bench.bench_coordinator")


@pytest.mark.parametrize("link_files", [False, True], ids=["written", "linked"])
def test_the_script_simulates_tiny_classes_and_reports_sane_numbers(bench, tmp_path, capsys,
                                                                    link_files):
    assert bench.main(["--sizes", "8", "16", "--json", str(tmp_path / "out.json"),
                       *(["--link-files"] if link_files else [])]) == 0
    printed = capsys.readouterr().out
    assert "coordinator + renderer CPU per student at N=16" in printed
    data = json.loads((tmp_path / "out.json").read_text())
    for run, row in zip(data["runs"], data["rows"], strict=True):
        assert run["graded"] == run["size"] == row["size"]
        # Not __main__'s, which cloudpickle would send by value with every task.
        assert run["runner_module"] == "bench_coordinator"
        assert 0 < row["coordinator_ms_per_student"] < 5000
        # The worker sends each page made (a recorded finished run): none renders here.
        assert row["renderer_ms_per_student"] == row["worker_renderer_ms_per_student"] == 0
        assert 50 < row["peak_mb"] < 2000
        assert set(run["rss_kib"]) == set(run["cpu_at"]) == {str(run["size"] // 4),
                                                              str(run["size"])}
        assert 0 < row["steady_ms_per_student"] < 5000
        assert row["class_files_seconds"] > 0


def test_the_slope_and_the_extrapolations(bench):
    run = {"size": 1000, "cpu_seconds": 40.0, "renderer_cpu_seconds": 100.0,
           "seconds": 200.0, "peak_kib": 400_000, "class_files_seconds": 2.0,
           "rss_kib": {"250": 300_000, "1000": 300_750}}
    row = bench.derived(run)
    assert row["coordinator_ms_per_student"] == pytest.approx(40.0)
    assert row["renderer_ms_per_student"] == pytest.approx(100.0)
    assert row["rss_slope_kb_per_student"] == pytest.approx(1.024)
    assert row["steady_ms_per_student"] is None  # no CPU recorded along the way
    lines = bench.report_lines([row])
    assert "140.0 ms = 28.0x the goal of 5 ms" in lines[-3]
    run["cpu_at"] = {"250": 10.0, "1000": 13.0}
    assert bench.derived(run)["steady_ms_per_student"] == pytest.approx(4.0)
    assert "; each student after the first quarter: 4.0 ms" in bench.report_lines(
        [bench.derived(run)])[-3]
    assert "at 100,000 students that is 102 MB" in lines[-2]
    assert "200 s (goal 60 s)" in lines[-1]


def test_a_size_below_four_is_refused(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--sizes", "3"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--render", "--link-files"])


@dataclasses.dataclass(frozen=True)
class Made:
    graded_at: str


def test_linked_files_are_the_first_students_under_each_students_own_names(bench, tmp_path):
    out = tmp_path / "out"
    for path in ("feedback/s01/lab.html", "nbgrader/autograded/s01/C2/lab.ipynb",
                 "nbgrader/feedback/s01/C2/timestamp.txt", "nbgrader/autograded/s011/x"):
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(path)
    files = bench._files_of(out, "s01")
    assert sorted(map(str, files)) == ["feedback/s01/lab.html",
                                       "nbgrader/autograded/s01/C2/lab.ipynb",
                                       "nbgrader/feedback/s01/C2/timestamp.txt"]
    sources = {relative: out / relative for relative in files}
    made = bench._linked(out, ("s01", sources, Made("then")), "s02")
    assert made.graded_at == "then"  # what the linked timestamp files say
    linked = out / "nbgrader/autograded/s02/C2/lab.ipynb"
    assert linked.read_text() == "nbgrader/autograded/s01/C2/lab.ipynb"
    assert linked.stat().st_nlink == 2 and not (out / "nbgrader/autograded/s021").exists()


def test_with_render_the_worker_judges_and_renders_every_page_on_a_local_cluster(bench,
                                                                               tmp_path):
    assert bench.main(["--sizes", "4", "--render", "--local",
                       "--json", str(tmp_path / "out.json")]) == 0
    run, = json.loads((tmp_path / "out.json").read_text())["runs"]
    assert run["local"] is True and run["graded"] == 4
    assert run["worker_renderer_cpu_seconds"] > 0 and run["renderer_cpu_seconds"] == 0


def test_a_file_with_the_most_links_is_copied_and_the_copy_linked_next(bench, tmp_path,
                                                                       monkeypatch):
    source = tmp_path / "notebook"
    source.write_text("{}")
    real_link = bench.os.link

    def link(from_path, to_path):
        if from_path == source:  # as ext4 says past 65,000 links
            raise OSError(bench.errno.EMLINK, "Too many links")
        real_link(from_path, to_path)

    monkeypatch.setattr(bench.os, "link", link)
    first = bench.link_or_copy(source, tmp_path / "a")
    assert first == tmp_path / "a" and first.read_text() == "{}"
    assert bench.link_or_copy(first, tmp_path / "b") == first
    assert (tmp_path / "b").stat().st_nlink == 2
