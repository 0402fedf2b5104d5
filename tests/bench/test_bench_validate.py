"""Tests for bench/bench_validate.py: `grader validate` against `nbconvert --execute`.

Its numbers mean something only if both commands run on the reference solution as a
student hands it in, a run that did not do its work is refused, validate's stages are read
from the line it logs, and the ratio is validate's median over nbconvert's. The last test
runs the script once (no assertion on its speed: the machine may be busy).
"""

import importlib
import json
import subprocess
import sys
from types import SimpleNamespace

import nbformat
import pytest

from grader import validate
from grader.labs.c2_w2 import LAB as lab


@pytest.fixture(scope="module")
def bench():
    # Imported as tools.run_notebook is: the project root is on sys.path.
    return importlib.import_module("bench.bench_validate")


def _answer(notebook, grade_id):
    [cell] = [cell for cell in notebook.cells
              if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return cell.source


# --- The notebook and the commands -----------------------------------------------------------


def test_the_notebook_is_the_release_with_the_reference_answers(bench, tmp_path):
    import corpus

    path = bench.prepare_notebook(tmp_path)
    released = nbformat.read(str(path.parent / lab.notebook_name), as_version=4)
    notebook = nbformat.read(str(path), as_version=4)
    assert all(line in _answer(notebook, "UNQ_C1") for line in corpus.STABLE.splitlines())
    assert 'Dense(25, activation=\'relu\', name="L1")' in _answer(notebook, "UNQ_C2")
    assert _answer(notebook, "UNQ_C1") != _answer(released, "UNQ_C1")
    assert (path.parent / "autils.py").exists()  # nbconvert runs it beside the lab's files


def test_validate_runs_from_the_grader_root_and_nbconvert_beside_the_lab(bench, tmp_path):
    notebook = tmp_path / "release" / "submitted.ipynb"
    lines = bench.commands(notebook, tmp_path / "grader", tmp_path / "out", tmp_path / "c")
    assert lines[bench.FIRST] == lines[bench.NEXT]  # the same command: only what it finds
    argv, cwd, env = lines[bench.FIRST]
    assert argv[1:] == ["-m", "grader", "validate", "-v", str(notebook)]
    assert cwd == tmp_path / "grader" and env["PYTHONPATH"] == str(tmp_path / "grader")
    assert env["GRADER_CACHE_DIR"] == str(tmp_path / "c")  # its kept template, not yours
    argv, cwd, _ = lines[bench.NBCONVERT]
    assert argv[-7:] == ["nbconvert", "--to", "notebook", "--execute", "submitted.ipynb",
                         "--output-dir", str(tmp_path / "out")]
    assert cwd == notebook.parent


# --- Checks ----------------------------------------------------------------------------------


def _result(returncode=0, stdout="", stderr=""):
    return SimpleNamespace(returncode=returncode, stdout=stdout, stderr=stderr)


def _passing_stdout():
    return "\n".join(f"{exercise.id} ({exercise.title}): public tests pass"
                     for exercise in lab.exercises)


def test_a_validate_that_passes_both_exercises_counts(bench):
    bench.check_run(bench.FIRST, _result(stdout=_passing_stdout()))
    bench.check_run(bench.NEXT, _result(stdout=_passing_stdout()))
    bench.check_run(bench.NBCONVERT, _result())


def test_a_validate_that_fails_an_exercise_is_refused(bench):
    stdout = _passing_stdout().replace("UNQ_C2 (Sequential model): public tests pass",
                                       "UNQ_C2 (Sequential model): public tests FAIL")
    with pytest.raises(bench.BenchmarkError, match="UNQ_C2"):
        bench.check_run(bench.FIRST, _result(returncode=1, stdout=stdout))
    with pytest.raises(bench.BenchmarkError, match=r"\['UNQ_C2'\]"):
        bench.check_run(bench.NEXT, _result(stdout=stdout))


def test_a_failed_nbconvert_is_refused(bench):
    with pytest.raises(bench.BenchmarkError, match="nbconvert failed with status 1"):
        bench.check_run(bench.NBCONVERT, _result(returncode=1, stderr="CellExecutionError"))


# --- validate's stages -----------------------------------------------------------------------


def test_the_stages_are_read_from_the_line_validate_logs(bench):
    stages = validate.Stages(started=10.0)
    for offset, stage in enumerate(validate.STAGES, 1):
        stages.lap(stage, 10.0 + offset * 0.5)
    stderr = f"INFO: something else 1.00\nINFO: {stages.line()}\n"
    assert bench.stage_seconds(stderr) == {stage: 0.5 for stage in validate.STAGES}


def test_a_grader_that_logs_no_stages_gives_none(bench):
    assert bench.stage_seconds("") == {}


# --- Statistics and verdicts -----------------------------------------------------------------


def _runs(bench, first_seconds, nbconvert_seconds, next_seconds=(2.0,)):
    stages = dict.fromkeys(validate.STAGES, 0.5)
    runs = [bench.Run(command, number, seconds, seconds * 0.9, stages)
            for command, times in ((bench.FIRST, first_seconds), (bench.NEXT, next_seconds))
            for number, seconds in enumerate(times, 1)]
    return runs + [bench.Run(bench.NBCONVERT, number, seconds, seconds * 0.8)
                   for number, seconds in enumerate(nbconvert_seconds, 1)]


def test_the_summary_gives_spreads_stages_and_the_ratio_of_medians(bench):
    summary = bench.summarize(_runs(bench, [4.0, 3.0, 5.0], [18.0, 20.0, 16.0], [2.0, 1.0]))
    ours = summary[bench.FIRST]
    assert (ours["median"], ours["min"], ours["max"], ours["runs"]) == (4.0, 3.0, 5.0, 3)
    assert ours["cpu"]["median"] == pytest.approx(3.6)
    assert ours["stages"]["kernel"] == {"median": 0.5, "min": 0.5, "max": 0.5}
    assert ours["ratio"] == pytest.approx(4.0 / 18.0)
    assert summary[bench.NEXT]["median"] == 1.5  # apart from the first checks
    assert summary[bench.NEXT]["ratio"] == pytest.approx(1.5 / 18.0)


def test_verdicts_for_each_check_when_both_goals_are_met_and_when_not(bench):
    met = bench.summarize(_runs(bench, [3.5], [18.0]))
    assert bench.verdict_lines(met) == [
        "validate median 3.50 s (goal <= 4 s): met",
        "validate / nbconvert: 0.19 of 18.00 s (goal <= 0.3): met",
        "revalidate median 2.00 s (goal <= 4 s): met",
        "revalidate / nbconvert: 0.11 of 18.00 s (goal <= 0.3): met"]
    missed = bench.summarize(_runs(bench, [6.0], [18.0], [4.5]))
    assert bench.verdict_lines(missed) == [
        "validate median 6.00 s (goal <= 4 s): NOT met",
        "validate / nbconvert: 0.33 of 18.00 s (goal <= 0.3): NOT met",
        "revalidate median 4.50 s (goal <= 4 s): NOT met",
        "revalidate / nbconvert: 0.25 of 18.00 s (goal <= 0.3): met"]


def test_the_cpu_meter_falls_back_to_waited_for_children(bench, tmp_path):
    meter = bench.CpuMeter(root=tmp_path / "no-cgroup-here" / "x")
    assert meter.cgroup is None and "getrusage" in meter.method
    burn = [sys.executable, "-c", "sum(range(3 * 10**6))"]
    result, wall, cpu = meter.run(burn, tmp_path, None, 60)
    assert result.returncode == 0 and wall > 0 and cpu > 0
    meter.close()


def test_bad_arguments_are_refused(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--runs", "0"])
    args = bench.parse_args([])
    assert (args.runs, args.goal, args.ratio_goal) == (5, 4.0, 0.3)


# --- The script, once ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_script_times_each_command_once(bench, project_root, tmp_path):
    report = tmp_path / "validate.json"
    result = subprocess.run([sys.executable, "bench/bench_validate.py", "--runs", "1",
                             "--json", str(report)],
                            cwd=project_root, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    for command in bench.COMMANDS:  # a line for its run, a row in the table
        assert sum(line.lstrip().startswith(f"run 1/1  {command} ") for line in lines) == 1
        assert any(line.startswith(f"{command} ") for line in lines)
    assert [line.split()[0] for line in lines if line.startswith("  ")
            and line.split()[0] in validate.STAGES] == list(validate.STAGES) * 2
    assert [line.split(" median ")[0].split(" / ")[0] for line in lines[-4:]] == [
        "validate", "validate", "revalidate", "revalidate"]

    data = json.loads(report.read_text())
    assert [run["command"] for run in data["runs"]] == list(bench.COMMANDS)
    assert all(run["seconds"] > 0 and run["cpu_seconds"] > 0 for run in data["runs"])
    first, again, theirs = (data["summary"][command] for command in bench.COMMANDS)
    for ours in (first, again):
        assert set(ours["stages"]) == set(validate.STAGES)
        # Its stages are inside its wall time (a process's start is known to 10 ms).
        assert sum(stage["median"] for stage in ours["stages"].values()) <= \
            ours["median"] + 0.05
        assert ours["ratio"] == pytest.approx(ours["median"] / theirs["median"])
