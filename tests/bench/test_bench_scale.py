"""Tests for bench/bench_scale.py: its parts one by one, its memory measurement on processes
of known size, and the script itself on two tiny classes (a full-size run grades 1220
submissions: never part of the tests).

The benchmark's numbers are only meaningful if the class mixes right and wrong answers,
every grade is checked against the corpus, the coordinator's peak excludes its children's,
and the ratios are taken the right way round.
"""

import csv
import importlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from types import SimpleNamespace

import nbformat
import pytest

from grader.course.release import release
from grader.labs.c2_w2 import LAB as lab

CSV_COLUMNS = ["student_id", "UNQ_C1", "UNQ_C2", "score", "max_score", "status", "detail"]


@pytest.fixture(scope="module")
def bench():
    # Imported as tools.run_notebook is: the project root is on sys.path.
    return importlib.import_module("bench.bench_scale")


@pytest.fixture(scope="module")
def corpus(bench):
    # tests/grader/corpus, which the benchmark puts on sys.path to build its classes.
    return bench.corpus


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    return release(lab=lab, out=out).parent


def _answer_source(notebook, grade_id):
    [cell] = [cell for cell in notebook.cells
              if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return cell.source


# --- The class -------------------------------------------------------------------------------


def test_the_class_cycles_through_right_and_wrong_answers(bench, corpus):
    students = bench.student_ids(len(bench.MIX) + 2)
    assert list(students.values()) == [*bench.MIX, *bench.MIX[:2]]
    assert list(students)[0] == f"s0001-{bench.MIX[0]}"
    assert list(students)[-1] == f"s{len(bench.MIX) + 2:04d}-{bench.MIX[1]}"
    assert len(bench.student_ids(12345)) == 12345  # ids stay unique past 9999
    expected = corpus.expected_grades()
    scores = {expected[answer]["score"] for answer in bench.MIX}
    assert scores == {"100", "50", "0"}  # right, half right and wrong answers
    assert all(expected[answer]["status"] == "graded" for answer in bench.MIX)
    assert not any(answer.startswith("timeout") for answer in bench.MIX)


def test_build_class_types_each_students_answer_in(bench, corpus, release_dir,
                                                   tmp_path):
    students = bench.build_class(release_dir, tmp_path / "class", 8)
    assert sorted(path.name for path in (tmp_path / "class").iterdir()) == sorted(students)
    for student, answer in students.items():
        folder = tmp_path / "class" / student
        assert [path.name for path in folder.iterdir()] == [lab.notebook_name]
        notebook = nbformat.read(str(folder / lab.notebook_name), as_version=4)
        softmax, model = corpus.ANSWERS[answer]
        released = nbformat.read(str(release_dir / lab.notebook_name), as_version=4)
        for grade_id, code in (("UNQ_C1", softmax), ("UNQ_C2", model)):
            if code is None:  # the stub left as released
                assert (_answer_source(notebook, grade_id)
                        == _answer_source(released, grade_id))
            else:
                assert code.strip().splitlines()[-1] in _answer_source(notebook, grade_id)


# --- Checks ----------------------------------------------------------------------------------


def _write_grades(path, rows):
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return path


def _expected_row(corpus, student, answer):
    want = corpus.expected_grades()[answer]
    return [student, want["UNQ_C1"], want["UNQ_C2"], want["score"], "100", want["status"], ""]


def test_grades_check_accepts_the_corpus_grades_and_counts_scores(bench, corpus, tmp_path):
    students = bench.student_ids(7)
    path = _write_grades(tmp_path / "grades.csv",
                         [_expected_row(corpus, s, a) for s, a in students.items()])
    assert bench.check_grades_csv(path, students) == {"0": 1, "100": 3, "50": 3}


def test_grades_check_rejects_a_grade_the_corpus_does_not_expect(bench, corpus, tmp_path):
    students = bench.student_ids(2)  # right, then wrong-softmax-unnormalised (50)
    rows = [_expected_row(corpus, s, a) for s, a in students.items()]
    rows[1][1:4] = ["50", "50", "100"]
    path = _write_grades(tmp_path / "grades.csv", rows)
    with pytest.raises(bench.BenchmarkError, match="s0002-wrong-softmax-unnormalised got"):
        bench.check_grades_csv(path, students)


def test_grades_check_rejects_a_missing_student(bench, corpus, tmp_path):
    students = bench.student_ids(2)
    [first] = [_expected_row(corpus, s, a) for s, a in list(students.items())[:1]]
    path = _write_grades(tmp_path / "grades.csv", [first])
    with pytest.raises(bench.BenchmarkError, match="found 1 rows"):
        bench.check_grades_csv(path, students)


def _times(seconds):
    start = datetime(2025, 1, 1)
    return [start + timedelta(seconds=value) for value in seconds]


def test_steady_and_quarter_seconds_come_from_the_save_times(bench):
    assert bench.steady_seconds(_times([0])) is None
    assert bench.steady_seconds(_times([10, 12, 20])) == 5.0
    assert bench.quarter_seconds(_times(range(7))) is None
    assert bench.quarter_seconds(_times(range(0, 16, 2))) == [2.0, 2.0, 2.0, 2.0]
    # slowing down: the gaps grow, and so do the later quarters
    quarters = bench.quarter_seconds(_times([n * n for n in range(10)]))
    assert quarters == [1.0, 5.0, 11.0, 16.0]


# --- Measuring -------------------------------------------------------------------------------

# A parent holding about 150 MB whose child holds about 300 MB.
PARENT_AND_CHILD = """
import subprocess, sys, time
held = b"x" * (150 * 10**6)
child = subprocess.Popen([sys.executable, "-c",
    "import time; held = b'x' * (300 * 10**6); time.sleep(1.5)"])
child.wait()
time.sleep(0.5)
"""


def test_the_coordinators_peak_leaves_its_childrens_memory_out(bench, tmp_path):
    seconds, sampler = bench.measure([sys.executable, "-c", PARENT_AND_CHILD],
                                     tmp_path / "log", limit=60)
    coordinator = sampler.coordinator_hwm * 1024 / bench.MB
    child = sampler.children_hwm * 1024 / bench.MB
    assert 150 <= coordinator < 250
    assert 300 <= child < 400
    assert sampler.children_sum * 1.0 / bench.MB >= 300
    assert seconds >= 2
    assert sampler.loads and all(load >= 0 for load in sampler.loads)
    assert sampler.timeline[0][0] < 1


def test_a_failing_command_stops_the_benchmark_with_its_output(bench, tmp_path):
    with pytest.raises(bench.BenchmarkError, match="(?s)status 3.*why it failed"):
        bench.measure([sys.executable, "-c", "print('why it failed'); raise SystemExit(3)"],
                      tmp_path / "log", limit=60)


def test_status_of_a_process_that_is_gone_is_empty(bench):
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                             capture_output=True, text=True, check=True)
    assert bench.status_kib(int(process.stdout)) == {}
    own = bench.status_kib("self")
    assert own["VmHWM"] >= own["VmRSS"] > 0


# --- Statistics and verdicts -----------------------------------------------------------------


def _run(bench, size, seconds, peak, run=1, quarters=None):
    return bench.Run(size=size, run=run, seconds=seconds, coordinator_peak_mb=peak,
                     workers_peak_mb=600, workers_sum_peak_mb=2000, load_mean=2.0,
                     load_max=3.0, steady_per_submission=seconds / size * 0.9,
                     quarters=quarters, scores={"100": size})


def test_summary_takes_medians_per_size_and_ratios_largest_over_smallest(bench):
    results = [_run(bench, 20, 30, 240), _run(bench, 20, 34, 250, run=2),
               _run(bench, 20, 40, 260, run=3), _run(bench, 1000, 1100, 300),
               _run(bench, 200, 220, 245)]
    summary = bench.summarize(results)
    assert list(summary) == [20, 200, 1000]
    assert summary[20]["seconds"] == 34 and summary[20]["runs"] == 3
    assert summary[20]["per_submission"] == pytest.approx(1.7)
    assert summary[20]["coordinator_peak_mb"] == 250
    found = bench.ratios(summary)
    assert found["per_submission"] == pytest.approx(1.1 / 1.7)
    assert found["coordinator_peak"] == pytest.approx(300 / 250)
    assert found["coordinator_peak_mb_at_largest"] == 300


def test_verdicts_say_which_goal_is_met(bench):
    summary = bench.summarize([_run(bench, 20, 20, 250), _run(bench, 1000, 1150, 280)])
    assert bench.verdict_lines(summary) == [
        "seconds per submission, N=1000 over N=20: 1.15x (goal <= 1.10x): NOT met",
        "coordinator peak memory, N=1000 over N=20: 1.12x (goal flat, <= 1.10x): NOT met",
        "coordinator peak memory at N=1000: 280 MB (goal < 500 MB): met",
    ]
    summary = bench.summarize([_run(bench, 20, 20, 250), _run(bench, 1000, 1000, 600)])
    assert bench.verdict_lines(summary)[0].endswith("1.00x (goal <= 1.10x): met")
    assert bench.verdict_lines(summary)[2].endswith("600 MB (goal < 500 MB): NOT met")


def test_report_prints_the_table_the_quarters_then_the_verdicts(bench, capsys):
    bench.print_report(bench.summarize([
        _run(bench, 20, 30, 240), _run(bench, 200, 220, 245, quarters=[1.0, 1.1, 1.2, 1.3])]))
    lines = capsys.readouterr().out.strip().splitlines()
    [row] = [line for line in lines if line.split()[:1] == ["200"]]
    assert row.split() == ["200", "1", "220.0s", "1.10", "0.99", "245", "MB", "600", "MB",
                           "2000", "MB", "2.0"]
    assert ("N=200: seconds per submission in each quarter of the batch (save order):"
            " 1.00 1.10 1.20 1.30") in lines
    assert lines[-3].startswith("seconds per submission, N=200 over N=20: 0.73x")
    assert lines[-1].startswith("coordinator peak memory at N=200: 245 MB")


def test_bad_arguments_are_refused(bench):
    assert bench.parse_args([]).sizes == [20, 200, 1000]
    assert bench.parse_args(["--sizes", "4", "2"]).sizes == [2, 4]
    for argv in (["--sizes", "0", "2"], ["--sizes", "5"], ["--sizes", "5", "5"],
                 ["--runs", "0"], ["--workers", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)


# --- The script, on two tiny classes ---------------------------------------------------------


def test_the_script_grades_tiny_classes_and_reports_sane_numbers(corpus, project_root,
                                                                tmp_path):
    report = tmp_path / "scale.json"
    result = subprocess.run(
        [sys.executable, "bench/bench_scale.py", "--sizes", "2", "4", "--runs", "1",
         "--workers", "2", "--json", str(report)],
        cwd=project_root, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-3].startswith("seconds per submission, N=4 over N=2: ")
    assert lines[-2].startswith("coordinator peak memory, N=4 over N=2: ")
    assert lines[-1].startswith("coordinator peak memory at N=4: ")

    data = json.loads(report.read_text())
    assert (data["sizes"], data["workers"], data["runs_per_size"]) == ([2, 4], 2, 1)
    assert sorted(data["summary"]) == ["2", "4"]
    assert [run["size"] for run in data["runs"]] == [2, 4]
    expected = corpus.expected_grades()
    for run in data["runs"]:
        # every student graded as the corpus expects (the script checked each row)
        want = {}
        for answer in data["mix"][:run["size"]]:
            want[expected[answer]["score"]] = want.get(expected[answer]["score"], 0) + 1
        assert run["scores"] == dict(sorted(want.items()))
        assert 0 < run["per_submission"] == pytest.approx(run["seconds"] / run["size"])
        # Save times have a 1 s resolution: a tiny class may be saved within one second.
        assert 0 <= run["steady_per_submission"] < run["seconds"]
        # a Python process with nbgrader, Dask and the scheduler: some 100 MB, far below
        # the workers, which import TensorFlow
        assert 80 < run["coordinator_peak_mb"] < 1000
        assert run["workers_peak_mb"] > 200
        assert run["workers_sum_peak_mb"] >= run["workers_peak_mb"]
        assert run["load_max"] >= run["load_mean"] >= 0
        assert run["timeline"] and all(mb > 0 for _, mb in run["timeline"])
    ratios = data["ratios"]
    assert (ratios["smallest"], ratios["largest"]) == (2, 4)
    assert ratios["per_submission"] == pytest.approx(
        data["summary"]["4"]["per_submission"] / data["summary"]["2"]["per_submission"])
    assert ratios["coordinator_peak"] > 0


def test_the_json_names_the_goals(bench, tmp_path):
    results = [_run(bench, 20, 30, 240), _run(bench, 200, 220, 245)]
    args = SimpleNamespace(sizes=[20, 200], workers=2, runs=1)
    bench.write_json(tmp_path / "out.json", args, bench.summarize(results), results)
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["goals"] == {"per_submission_ratio": 1.1, "coordinator_peak_ratio": 1.1,
                             "coordinator_peak_mb": 500}
    assert data["runs"][1]["per_submission"] == pytest.approx(1.1)
    assert data["summary"]["200"]["coordinator_peak_mb"] == 245


def test_a_status_read_while_the_process_execs_is_no_point_of_the_timeline(bench, monkeypatch):
    # Between fork and exec /proc/<pid>/status has no VmRSS, and while ld.so maps the
    # interpreter a few KiB (CI's timeline once began with a 0.0 MB point): neither is a reading.
    readings = iter([{"VmHWM": 0}, {"VmHWM": 40, "VmRSS": 40},
                     {"VmHWM": 2048, "VmRSS": 1024}])
    monkeypatch.setattr(bench, "status_kib", lambda pid, names=(): next(readings, {}))
    sampler = bench.Sampler(os.getpid())
    sampler._next_point = 0.0
    for _ in range(3):
        sampler.sample()
    assert [mb for _, mb in sampler.timeline] == [round(1024 * 1024 / bench.MB, 1)]
    assert sampler.coordinator_hwm == 2048
