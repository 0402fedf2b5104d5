"""Tests for bench/bench_grading.py: its parts one by one, and the script itself on a class
of two (one run of each setup, plain nbgrader on one submission).

The benchmark's numbers are only meaningful if the class is N real submissions, plain
nbgrader sees them where it looks, every run grades into a fresh OUT, the ratios are
computed the right way round, and a run that did not grade every copy of the reference
solution 100/100 is refused.
"""

import csv
import importlib
import json
import subprocess
import sys
from types import SimpleNamespace

import nbformat
import pytest

from grader.course.release import release
from grader.labs.c2_w2 import LAB as lab

CSV_COLUMNS = ["student_id", "UNQ_C1", "UNQ_C2", "score", "max_score", "status", "detail"]


@pytest.fixture(scope="module")
def bench():
    # Imported as tools.run_notebook is: the project root is on sys.path.
    return importlib.import_module("bench.bench_grading")


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    return release(lab=lab, out=out).parent


def _answer_source(notebook, grade_id):
    [cell] = [cell for cell in notebook.cells
              if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return cell.source


# --- The class -------------------------------------------------------------------------------


def test_student_ids_are_numbered_with_two_digits(bench):
    assert bench.student_ids(3) == ["student-01", "student-02", "student-03"]
    assert bench.student_ids(20)[-1] == "student-20"


def test_build_class_makes_one_folder_per_student_with_one_notebook(bench, release_dir,
                                                                    tmp_path):
    class_dir = bench.build_class(release_dir, tmp_path / "class", 3)
    assert sorted(path.name for path in class_dir.iterdir()) == bench.student_ids(3)
    for folder in class_dir.iterdir():
        assert [path.name for path in folder.iterdir()] == [lab.notebook_name]


def test_every_notebook_has_the_reference_answers_typed_in(bench, release_dir, tmp_path):
    import corpus

    class_dir = bench.build_class(release_dir, tmp_path / "class", 2)
    released = nbformat.read(str(release_dir / lab.notebook_name), as_version=4)
    for folder in class_dir.iterdir():
        notebook = nbformat.read(str(folder / lab.notebook_name), as_version=4)
        softmax, model = _answer_source(notebook, "UNQ_C1"), _answer_source(notebook, "UNQ_C2")
        assert all(line in softmax for line in corpus.STABLE.splitlines())
        assert lab.exercise("UNQ_C1").stub not in softmax
        assert 'Dense(25, activation=\'relu\', name="L1")' in model
        assert softmax != _answer_source(released, "UNQ_C1")
        assert model != _answer_source(released, "UNQ_C2")
        assert len(notebook.cells) == len(released.cells)


def test_place_for_nbgrader_uses_the_submitted_layout(bench, tmp_path):
    class_dir = tmp_path / "class"
    for student in bench.student_ids(3):
        (class_dir / student).mkdir(parents=True)
        (class_dir / student / lab.notebook_name).write_text(f"notebook of {student}")
    bench.place_for_nbgrader(class_dir, tmp_path / "course", bench.student_ids(2))
    placed = sorted(path.relative_to(tmp_path / "course").as_posix()
                    for path in (tmp_path / "course").rglob("*.ipynb"))
    assert placed == [f"submitted/student-0{n}/C2_W2/C2_W2_Assignment.ipynb" for n in (1, 2)]
    assert (bench.submitted_notebook(tmp_path / "course", "student-02").read_text()
            == "notebook of student-02")


# --- Checks ----------------------------------------------------------------------------------


def _write_grades(path, rows):
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return path


def _full_row(student):
    return [student, "50", "50", "100", "100", "graded", ""]


def test_grades_check_accepts_every_student_at_100(bench, tmp_path):
    students = bench.student_ids(3)
    path = _write_grades(tmp_path / "grades.csv", [_full_row(s) for s in students])
    bench.check_grades_csv(path, students)


def test_grades_check_rejects_a_row_below_100(bench, tmp_path):
    students = bench.student_ids(3)
    rows = [_full_row(s) for s in students]
    rows[1] = ["student-02", "50", "0", "50", "100", "graded", "Wrong model."]
    path = _write_grades(tmp_path / "grades.csv", rows)
    with pytest.raises(bench.BenchmarkError, match=r"student-02 got 50/100"):
        bench.check_grades_csv(path, students)


def test_grades_check_rejects_a_status_other_than_graded(bench, tmp_path):
    rows = [["student-01", "50", "50", "100", "100", "timeout", "Ran out of time."]]
    path = _write_grades(tmp_path / "grades.csv", rows)
    with pytest.raises(bench.BenchmarkError, match="timeout"):
        bench.check_grades_csv(path, ["student-01"])


def test_grades_check_rejects_a_missing_student(bench, tmp_path):
    path = _write_grades(tmp_path / "grades.csv", [_full_row("student-01")])
    with pytest.raises(bench.BenchmarkError, match="found 1 rows"):
        bench.check_grades_csv(path, bench.student_ids(2))


SUMMARY = ("Graded {n} submissions in 21.4 s with 2 workers: graded {n}, timeout 0, error 0,"
           " invalid 0{kept}.\nOUT holds {n} students: graded {n}, timeout 0, error 0,"
           " invalid 0; mean score 100.0/100\n")


def test_a_batch_that_graded_every_submission_passes(bench):
    bench.check_graded_everyone(SUMMARY.format(n=20, kept=""), 20)


def test_a_batch_of_one_that_graded_it_passes(bench):
    # "Graded 1 submission in ...": the summary says a single one in the singular
    one = SUMMARY.format(n=1, kept="").replace("submissions", "submission", 1)
    bench.check_graded_everyone(one, 1)


@pytest.mark.parametrize("stdout", [SUMMARY.format(n=19, kept=""),
                                    SUMMARY.format(n=0, kept="; kept 20 unchanged results"),
                                    "no summary at all"])
def test_a_batch_that_kept_or_skipped_submissions_is_refused(bench, stdout):
    with pytest.raises(bench.BenchmarkError, match="did not grade all 20 submissions afresh"):
        bench.check_graded_everyone(stdout, 20)


def test_plain_check_rejects_a_missing_autograded_notebook(bench, tmp_path):
    graded = bench.autograded_notebook(tmp_path, "student-01")
    graded.parent.mkdir(parents=True)
    graded.write_text("{}")
    with pytest.raises(bench.BenchmarkError, match="graded 1 of 2 submissions; none for "
                                                   "student-02"):
        bench.check_plain_graded(tmp_path, "sqlite://", bench.student_ids(2))


def test_plain_score_problems_name_each_student_short_of_full_marks(bench):
    scores = {"student-01": (100.0, 100.0), "student-02": (50.0, 100.0)}
    assert bench.plain_score_problems(scores, bench.student_ids(3)) == [
        "student-02 got 50/100", "student-03 has no submission in the gradebook"]
    assert bench.plain_score_problems(scores, ["student-01"]) == []


# --- Statistics and verdicts -----------------------------------------------------------------


def _timings(bench, ours_1, ours_2, plain, copies=20, plain_copies=4):
    timings = [bench.Timing(bench.OURS_1, run, seconds, copies, 4.5)
               for run, seconds in enumerate(ours_1, 1)]
    timings += [bench.Timing(bench.OURS_2, run, seconds, copies, 4.5)
                for run, seconds in enumerate(ours_2, 1)]
    timings += [bench.Timing(bench.PLAIN, run, seconds, plain_copies)
                for run, seconds in enumerate(plain, 1)]
    return timings


def test_summary_gives_spread_per_submission_and_throughput_ratio(bench):
    summary = bench.summarize(_timings(bench, [50, 40, 44], [30, 24, 26], [64]))
    ours_1, ours_2, plain = (summary[s] for s in (bench.OURS_1, bench.OURS_2, bench.PLAIN))
    assert (ours_1["median"], ours_1["min"], ours_1["max"]) == (44, 40, 50)
    assert ours_1["runs"] == 3 and ours_1["submissions"] == 20
    assert ours_2["per_submission"] == pytest.approx(1.3)
    assert plain["per_submission"] == pytest.approx(16.0)
    # submissions per second over plain's: (20 / 26) / (4 / 64)
    assert ours_2["throughput_vs_plain"] == pytest.approx(16.0 / 1.3)
    assert ours_1["throughput_vs_plain"] == pytest.approx(16.0 / 2.2)
    assert plain["throughput_vs_plain"] == pytest.approx(1.0)


def test_verdicts_when_both_goals_are_met(bench):
    summary = bench.summarize(_timings(bench, [44], [26], [64]))
    assert bench.verdict_lines(summary) == [
        "ours with 2 workers: 1.30 s per submission (goal <= 3 s): met",
        "throughput vs plain nbgrader: 12.3x with 2 workers (goal >= 8x): met",
    ]


def test_verdicts_when_neither_goal_is_met(bench):
    # 3.05 s per submission; plain 18 s per submission: 5.9x
    summary = bench.summarize(_timings(bench, [70], [61, 60, 62], [72]))
    assert bench.verdict_lines(summary) == [
        "ours with 2 workers: 3.05 s per submission (goal <= 3 s): NOT met",
        "throughput vs plain nbgrader: 5.9x with 2 workers (goal >= 8x): NOT met",
    ]


def _with_dask(bench, timings, seconds, copies=20):
    return timings + [bench.Timing(bench.DASK_2, run, value, copies)
                      for run, value in enumerate(seconds, 1)]


def test_the_dask_cluster_is_compared_with_as_many_local_workers(bench):
    summary = bench.summarize(_with_dask(bench, _timings(bench, [44], [26, 25, 27], [64]),
                                         [28, 27, 26]))
    assert summary[bench.DASK_2]["overhead_vs_local"] == pytest.approx(27 / 26 - 1)
    assert summary[bench.DASK_2]["throughput_vs_plain"] == pytest.approx(16.0 / 1.35)
    assert bench.verdict_lines(summary)[-1] == (
        "2 Dask workers vs 2 local workers: +3.8% wall time (goal <= +10%): met")


def test_a_dask_cluster_slower_by_more_than_a_tenth_misses_the_goal(bench):
    summary = bench.summarize(_with_dask(bench, _timings(bench, [44], [26], [64]), [30]))
    assert bench.verdict_lines(summary)[-1] == (
        "2 Dask workers vs 2 local workers: +15.4% wall time (goal <= +10%): NOT met")


def test_the_sandbox_cost_compares_2_workers_with_and_without_it(bench, tmp_path):
    timings = _timings(bench, [44], [26, 25, 27], [64])
    timings += [bench.Timing(bench.OURS_2_UNCONFINED, run, value, 20)
                for run, value in enumerate([24, 25, 23], 1)]
    summary = bench.summarize(timings)
    assert summary[bench.OURS_2]["sandbox_cost"] == pytest.approx(26 / 24 - 1)
    assert ("the sandbox's cost with 2 workers: +8.3% wall time against --no-sandbox"
            " (no goal: measured)") in bench.verdict_lines(summary)
    with bench.grading_place(bench.OURS_2_UNCONFINED, 2, tmp_path / "cluster") as where:
        assert where == ["--workers", "2", "--no-sandbox"]


def test_local_setups_grade_here_with_their_number_of_workers(bench, tmp_path):
    for setup, workers in ((bench.OURS_1, "1"), (bench.OURS_2, "2")):
        with bench.grading_place(setup, int(workers), tmp_path / "cluster") as where:
            assert where == ["--workers", workers]
    with bench.grading_place(bench.KEPT_2, 2, tmp_path / "cluster") as where:
        assert where == ["--workers", "2", "--keep-templates", "600"]
    assert not (tmp_path / "cluster").exists()  # no Dask cluster started for them


def test_kept_templates_live_in_the_benchmarks_own_cache_and_end_with_it(bench, tmp_path,
                                                                        monkeypatch):
    graded = []
    monkeypatch.setattr(bench, "grade_with_ours", lambda *args: graded.append(args))
    with bench.kept_templates(tmp_path, "class", ["a", "b"], wanted=False) as env:
        assert env is None and graded == []
    with bench.kept_templates(tmp_path, "class", ["a", "b"], wanted=True) as env:
        assert env["GRADER_CACHE_DIR"] == str(tmp_path / "kept-cache")
        [(_class, _out, where, count, warm_env)] = graded  # one untimed batch keeps them
        assert (where, count, warm_env) == (bench.keep_options(), 2, env)
        (tmp_path / "kept-cache" / "kept-templates").mkdir(parents=True)
    assert not (tmp_path / "kept-cache" / "kept-templates").exists()  # which ends them


def test_report_prints_the_table_then_the_verdicts_last(bench, capsys):
    bench.print_report(bench.summarize(_timings(bench, [44], [26], [64])))
    lines = capsys.readouterr().out.strip().splitlines()
    [row] = [line for line in lines if line.startswith(bench.OURS_2 + " ")]
    assert row.split()[3:] == ["1", "20", "26.00s", "26.00s", "26.00s", "1.30", "12.3x",
                               "4.5s"]
    assert lines[-3].startswith("ours with 2 workers: 1.30 s per submission")
    assert lines[-2].startswith("throughput vs plain nbgrader: 12.3x")
    assert lines[-1] == ("ours, 2 workers: first result after 4.5 s (goal <= 5 s): met; 12.3x"
                         " plain nbgrader (goal >= 20x): NOT met")


def test_the_start_up_goals_read_the_first_result_and_the_ratio(bench, tmp_path):
    timings = _timings(bench, [44], [26], [64])
    timings += [bench.Timing(bench.DASK_2_WARM, run, seconds, 20, first)
                for run, (seconds, first) in enumerate([(15, 3.0), (16, 4.0), (14, 9.0)], 1)]
    summary = bench.summarize(timings)
    assert summary[bench.DASK_2_WARM]["first_result"] == 4.0  # the median, on its own
    assert bench.start_up_lines(summary) == [
        "ours, 2 workers: first result after 4.5 s (goal <= 5 s): met; 12.3x plain nbgrader"
        " (goal >= 20x): NOT met",
        "ours, 2 Dask, warm: first result after 4.0 s (goal <= 5 s): met; 21.3x plain"
        " nbgrader (goal >= 20x): met"]
    unknown = bench.summarize([bench.Timing(bench.OURS_2, 1, 26, 20),
                               bench.Timing(bench.PLAIN, 1, 64, 4)])
    assert "first result after unknown (goal <= 5 s): NOT met" in \
        bench.start_up_lines(unknown)[0]
    with bench.grading_place(bench.DASK_2_WARM, 2, tmp_path / "cluster", "tcp://w:1") as where:
        assert where == ["--scheduler", "tcp://w:1"]


def test_the_first_result_is_read_from_the_batchs_profile(bench, tmp_path):
    (tmp_path / "profile.json").write_text(json.dumps(
        {"process_started_seconds": 1.5, "result_seconds": [3.25, 4.0]}))
    assert bench.first_result_seconds(tmp_path) == 4.75
    (tmp_path / "profile.json").write_text(json.dumps(
        {"process_started_seconds": 1.5, "result_seconds": []}))
    assert bench.first_result_seconds(tmp_path) is None
    assert bench.first_result_seconds(tmp_path / "missing") is None


def test_json_holds_every_raw_timing(bench, tmp_path):
    timings = _timings(bench, [44, 45], [26, 27], [64])
    args = SimpleNamespace(copies=20, plain_copies=4)
    bench.write_json(tmp_path / "out.json", args, bench.summarize(timings), timings)
    report = json.loads((tmp_path / "out.json").read_text())
    assert [run["seconds"] for run in report["runs"]] == [44, 45, 26, 27, 64]
    assert report["summary"][bench.OURS_2]["median"] == 26.5
    assert report["plain_copies"] == 4


# --- Command line ----------------------------------------------------------------------------


def test_plain_copies_default_to_every_copy(bench):
    args = bench.parse_args(["--copies", "5"])
    assert (args.copies, args.runs, args.plain_copies, args.plain_runs) == (5, 3, 5, 1)


@pytest.mark.parametrize("argv", [["--copies", "0"], ["--runs", "0"],
                                  ["--copies", "3", "--plain-copies", "4"]])
def test_bad_arguments_are_refused(bench, argv):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)


# --- The script, on a class of two -----------------------------------------------------------


def test_skip_names_the_setups_that_may_be_left_out(bench):
    args = bench.parse_args(["--skip", "1-worker", "no-sandbox", "kept"])
    assert args.skip == {bench.OURS_1, bench.OURS_2_UNCONFINED, bench.KEPT_2}
    assert bench.parse_args([]).skip == set()
    with pytest.raises(SystemExit):
        bench.parse_args(["--skip", "plain"])  # the goals compare 2 workers with plain


@pytest.mark.slow
def test_the_script_times_its_setups_on_a_tiny_class(bench, project_root, tmp_path):
    # Only the goals' setups (2 workers, the warm cluster, kept templates, plain nbgrader):
    # each setup costs a batch, and CI keeps to 30 min; the others run through the same
    # functions (grading_place says how, tested above).
    report = tmp_path / "grading.json"
    result = subprocess.run(
        [sys.executable, "bench/bench_grading.py", "--copies", "2", "--runs", "1",
         "--plain-copies", "1", "--plain-runs", "1", "--json", str(report),
         "--skip", "1-worker", "no-sandbox", "dask"],
        cwd=project_root, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    measured = [bench.OURS_2, bench.DASK_2_WARM, bench.KEPT_2, bench.PLAIN]
    for setup in measured:  # a line per run, a row per setup in the table
        assert sum(line.split(maxsplit=2)[-1].startswith(setup) for line in lines
                   if line.lstrip().startswith("run 1/1")) == 1
        assert any(line.startswith(setup) for line in lines)
    assert lines[-5].startswith("ours with 2 workers: ")
    assert lines[-4].startswith("throughput vs plain nbgrader: ")
    assert lines[-3].startswith(f"{bench.OURS_2}: first result after ")
    assert lines[-2].startswith(f"{bench.DASK_2_WARM}: first result after ")
    assert lines[-1].startswith(f"{bench.KEPT_2}: first result after ")
    assert not any(line.startswith(("the sandbox's cost", "2 Dask workers")) for line in lines)

    data = json.loads(report.read_text())
    assert (data["copies"], data["plain_copies"]) == (2, 1)
    assert [run["setup"] for run in data["runs"]] == measured
    assert all(run["seconds"] > 0 for run in data["runs"])
    assert all(run["first_result"] > 0 for run in data["runs"] if run["setup"] != bench.PLAIN)
    summary = data["summary"]
    assert list(summary) == measured
    for setup, stats in summary.items():
        assert stats["runs"] == 1
        assert stats["submissions"] == (1 if setup == bench.PLAIN else 2)
        assert 0 < stats["min"] <= stats["median"] <= stats["max"]
        assert stats["per_submission"] == pytest.approx(stats["median"] / stats["submissions"])
        assert stats["throughput_vs_plain"] > 0
    assert summary[bench.PLAIN]["throughput_vs_plain"] == pytest.approx(1.0)
    assert "sandbox_cost" not in summary[bench.OURS_2]
