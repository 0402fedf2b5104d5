"""Benchmark `grader validate` against `jupyter nbconvert --execute` on one notebook.

Usage, from the repository root:

    .venv/bin/python bench/bench_validate.py [--runs 5] [--json OUT] [--goal 4]
                                             [--ratio-goal 0.3] [--grader-root PATH]

The notebook is the reference solution as a student hands it in: the lab released
(`grader release`) into a scratch folder, with the corpus's STABLE softmax and MODEL typed
into it (as bench_grading.py builds its class). Three commands run on it, in turn
(validate, revalidate, nbconvert, validate, ...), each a fresh process:

* validate, a first check: `python -m grader validate -v NOTEBOOK` from the grader's root
  (--grader-root, by default this repository; point it at another checkout to time that
  one's validate), with no kernel template kept (those of the last round are ended first):
  it starts one, imports TensorFlow in it and keeps it, as a student's first check does;
* revalidate, the same command again: the student's next check, whose kernel is forked
  from the template the first one kept (grader.run.kept_templates);
* `jupyter nbconvert --to notebook --execute NOTEBOOK`, in the release folder, whose
  helpers and data the notebook needs: every cell, the 40 epochs of training included.

validate's cache (where it keeps its template) is the benchmark's own, removed at the end.

Measured per run: the wall time; the CPU time of the command and of every process it
started (counted in a cgroup v1 cpuacct group where the machine has one and we are root:
the kept template joined it when the first check started it, so a next check's kernel is
counted too; otherwise getrusage's children, which misses a warm kernel: its template never
waits for it, so validate's CPU is then too low, and the output says so); for validate,
the wall seconds of each of its stages, from the line it logs with -v:

    start     the process's start to the kernel template's: Python, the grader's imports
    prepare   the rest of the imports, reading and preparing the notebook, probing the
              sandbox, all while the template imports TensorFlow
    template  waiting for the template's imports beyond that
    kernel    forking the kernel, its sandbox, its start, the client's connection
    cells     the first cell's start to the last one's end
    end       stopping the kernel and the template, removing the scratch folders

Every run is checked before its time counts: validate must exit 0 saying that every
exercise's public tests pass, nbconvert must exit 0 (it stops at the first error);
otherwise the benchmark stops with exit status 1. Absolute times on a shared machine are
noisy, so medians (with min and max) are reported, and the ratio of each check's median to
nbconvert's. Goals (issue 22): a check's median at most 4 s, and at most 0.3 times
nbconvert's; judged for the first check and the next one apart.
"""

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_PARENT = REPO_ROOT / "tests" / "grader"
# Run as `python bench/bench_validate.py`, only bench/ is on sys.path: the grader lives at
# the root and the corpus of submissions (the reference answers) in tests/grader.
for _path in (REPO_ROOT, CORPUS_PARENT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import corpus  # noqa: E402

from grader.course.release import release  # noqa: E402
from grader.labs.c2_w2 import LAB as lab  # noqa: E402
from grader.run.kept_templates import end_all  # noqa: E402
from grader.validate import STAGES, STAGES_LINE  # noqa: E402

FIRST = "validate"  # a first check: its kernel template started and kept
NEXT = "revalidate"  # the next check, from the template the first one kept
VALIDATES = (FIRST, NEXT)
NBCONVERT = "nbconvert"
COMMANDS = (*VALIDATES, NBCONVERT)
SECONDS_GOAL = 4.0  # validate's median
RATIO_GOAL = 0.3  # validate's median over nbconvert's
LIMITS = {FIRST: 300, NEXT: 300, NBCONVERT: 1800}  # seconds: a hung command fails, never stalls
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
PASSED = "{id} ({title}): public tests pass"


class BenchmarkError(RuntimeError):
    """A run whose time means nothing: the command it timed went wrong."""


# --- The notebook ----------------------------------------------------------------------------


def reference_submission(release_dir):
    """The released notebook with the reference answers typed in, as a student would."""
    released = nbformat.read(str(Path(release_dir) / lab.notebook_name), as_version=4)
    return corpus.answered(released, corpus.STABLE, corpus.MODEL)


def prepare_notebook(scratch):
    """The lab released into `scratch`/release with the reference submission beside it;
    the submission's path."""
    release_dir = Path(scratch) / "release"
    release(lab=lab, out=release_dir)
    path = release_dir / f"submitted-{lab.notebook_name}"
    nbformat.write(reference_submission(release_dir), str(path))
    return path


def commands(notebook, grader_root, out_dir, cache):
    """Each command's (argv, working directory, environment). validate's cache (where it
    keeps its template) is `cache`, the benchmark's own."""
    validate = ([sys.executable, "-m", "grader", "validate", "-v", str(notebook)],
                grader_root, {**os.environ, "PYTHONPATH": str(grader_root),
                              "GRADER_CACHE_DIR": str(cache)})
    nbconvert = ([*jupyter(), "nbconvert", "--to", "notebook", "--execute", notebook.name,
                  "--output-dir", str(out_dir)], notebook.parent, dict(os.environ))
    return {FIRST: validate, NEXT: validate, NBCONVERT: nbconvert}


def jupyter():
    """The `jupyter` command of this Python's environment."""
    beside = Path(sys.executable).parent / "jupyter"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "jupyter"]


# --- CPU time of a command and everything it starts ------------------------------------------


class CpuMeter:
    """Counts the CPU a command and its descendants use: with a cpuacct cgroup (v1) of its
    own, which the grader never moves a process out of (it uses memory and pids), where
    that can be made; else getrusage's children, which counts only processes waited for."""

    def __init__(self, root=CPUACCT):
        self.root = Path(root)
        self.cgroup = self._usable_cgroup()
        self.method = ("a cpuacct cgroup per command: every process it started" if self.cgroup
                       else "getrusage of children waited for: a warm kernel is not counted")

    def _usable_cgroup(self):
        group = self.root / f"bench-validate-{os.getpid()}"
        try:
            group.mkdir(exist_ok=True)
            (group / "cpuacct.usage").write_text("0")
        except OSError:
            return None
        return group

    def run(self, argv, cwd, env, timeout):
        """(the finished process, its wall seconds, its CPU seconds)."""
        before = _children_cpu()
        if self.cgroup:
            (self.cgroup / "cpuacct.usage").write_text("0")
        started = time.perf_counter()
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                                timeout=timeout, preexec_fn=self._join if self.cgroup else None)
        wall = time.perf_counter() - started
        if self.cgroup:
            return result, wall, int((self.cgroup / "cpuacct.usage").read_text()) / 1e9
        return result, wall, _children_cpu() - before

    def _join(self):
        """In the child, before it runs the command."""
        (self.cgroup / "cgroup.procs").write_text(str(os.getpid()))

    def close(self):
        if self.cgroup:
            for _ in range(50):  # processes of the last command may still be exiting
                with contextlib.suppress(OSError):
                    self.cgroup.rmdir()
                    return
                time.sleep(0.1)


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- Timed runs ------------------------------------------------------------------------------


@dataclass
class Run:
    command: str  # one of COMMANDS
    run: int
    seconds: float  # wall
    cpu_seconds: float
    stages: dict = field(default_factory=dict)  # validate's, stage -> wall seconds


def timed_run(command, number, argv_cwd_env, meter):
    argv, cwd, env = argv_cwd_env
    result, wall, cpu = meter.run(argv, cwd, env, LIMITS[command])
    check_run(command, result)
    stages = stage_seconds(result.stderr) if command in VALIDATES else {}
    return Run(command, number, wall, cpu, stages)


def check_run(command, result):
    """Raise BenchmarkError unless the command did what it is timed for."""
    if result.returncode != 0:
        log = (result.stdout + result.stderr).strip().splitlines()
        raise BenchmarkError(f"{command} failed with status {result.returncode}:\n"
                             + "\n".join(log[-20:]))
    if command in VALIDATES:
        missing = [exercise.id for exercise in lab.exercises
                   if PASSED.format(id=exercise.id, title=exercise.title) not in result.stdout]
        if missing:
            raise BenchmarkError(f"validate did not pass the public tests of {missing} on the"
                                 f" reference solution:\n{result.stdout.strip()}")


def stage_seconds(stderr):
    """validate's stages from its -v line: {stage: wall seconds}; {} without one (a
    grader that logs none)."""
    line = next((line for line in stderr.splitlines() if STAGES_LINE in line), "")
    found = re.findall(r"\b([a-z]+) (\d+\.\d+)", line.partition(STAGES_LINE)[2].split(";")[0])
    return {stage: float(seconds) for stage, seconds in found if stage in STAGES}


def run_alternating(runs, command_lines, meter, cache):
    """The commands in turn (validate, revalidate, nbconvert, validate, ...), so that slow
    drifts in the machine's load hit all alike; each validate a first check."""
    results = []
    for number in range(1, runs + 1):
        for command in COMMANDS:
            if command == FIRST:
                end_all(cache, seconds=30)  # the next check is a first one again
            result = timed_run(command, number, command_lines[command], meter)
            print(f"  run {number}/{runs}  {command:<10} {result.seconds:7.2f} s wall"
                  f" {result.cpu_seconds:7.2f} s CPU", flush=True)
            results.append(result)
    return results


# --- Statistics ------------------------------------------------------------------------------


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(results):
    """Per command: the spread of wall and CPU seconds; validate's stages; the ratio."""
    summary = {}
    for command in COMMANDS:
        runs = [result for result in results if result.command == command]
        summary[command] = {**spread([run.seconds for run in runs]), "runs": len(runs),
                            "cpu": spread([run.cpu_seconds for run in runs])}
    for command in VALIDATES:
        staged = [run.stages for run in results if run.command == command and run.stages]
        summary[command]["stages"] = {
            stage: spread([stages.get(stage, 0.0) for stages in staged])
            for stage in STAGES} if staged else {}
        summary[command]["ratio"] = summary[command]["median"] / summary[NBCONVERT]["median"]
    return summary


# --- Printing --------------------------------------------------------------------------------


def print_report(summary, cpu_method, goal=SECONDS_GOAL, ratio_goal=RATIO_GOAL):
    print()
    print(f"{'command':<10} {'runs':>4} {'median':>8} {'min':>8} {'max':>8} {'CPU median':>11}")
    for command in COMMANDS:
        stats = summary[command]
        print(f"{command:<10} {stats['runs']:>4} {stats['median']:>7.2f}s {stats['min']:>7.2f}s"
              f" {stats['max']:>7.2f}s {stats['cpu']['median']:>10.2f}s")
    print(f"\nCPU: {cpu_method}")
    for command in VALIDATES:
        print_stages(command, summary[command]["stages"])
    print()
    for line in verdict_lines(summary, goal, ratio_goal):
        print(line)


def print_stages(command, stages):
    if not stages:
        print(f"\n{command}'s stages: none logged (a grader without the -v stages line)")
        return
    print(f"\n{command}'s stages (wall seconds: median, min-max)")
    for stage, stats in stages.items():
        print(f"  {stage:<9} {stats['median']:6.2f}  ({stats['min']:.2f}-{stats['max']:.2f})")


def verdict_lines(summary, goal=SECONDS_GOAL, ratio_goal=RATIO_GOAL):
    lines = []
    for command in VALIDATES:
        seconds, ratio = summary[command]["median"], summary[command]["ratio"]
        lines += [f"{command} median {seconds:.2f} s (goal <= {goal:g} s):"
                  f" {verdict(seconds <= goal)}",
                  f"{command} / nbconvert: {ratio:.2f} of {summary[NBCONVERT]['median']:.2f} s"
                  f" (goal <= {ratio_goal:g}): {verdict(ratio <= ratio_goal)}"]
    return lines


def verdict(met):
    return "met" if met else "NOT met"


def write_json(path, args, cpu_method, summary, results):
    report = {"runs_per_command": args.runs, "grader_root": str(args.grader_root),
              "goal_seconds": args.goal, "ratio_goal": args.ratio_goal,
              "cpu_method": cpu_method, "summary": summary,
              "runs": [asdict(result) for result in results]}
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


# --- Command line ----------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (default 5)")
    parser.add_argument("--json", metavar="OUT", help="write every raw timing to this file")
    parser.add_argument("--goal", type=float, default=SECONDS_GOAL,
                        help=f"validate's median, seconds (default {SECONDS_GOAL:g})")
    parser.add_argument("--ratio-goal", type=float, default=RATIO_GOAL,
                        help=f"validate's median over nbconvert's (default {RATIO_GOAL:g})")
    parser.add_argument("--grader-root", type=Path, default=REPO_ROOT,
                        help="the checkout whose `python -m grader validate` is timed"
                        " (default: this one)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.grader_root = args.grader_root.resolve()
    return args


def main(argv=None):
    args = parse_args(argv)
    meter = CpuMeter()
    scratch = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    try:
        notebook = prepare_notebook(scratch)
        cache = scratch / "cache"
        command_lines = commands(notebook, args.grader_root, scratch / "nbconvert-out", cache)
        print(f"benchmarking `grader validate` against `jupyter nbconvert --execute` on the"
              f" reference solution ({args.runs} runs each, alternating)", flush=True)
        results = run_alternating(args.runs, command_lines, meter, cache)
    except BenchmarkError as error:
        print(f"benchmark stopped: {error}", file=sys.stderr)
        return 1
    finally:
        end_all(scratch / "cache")
        meter.close()
        shutil.rmtree(scratch, ignore_errors=True)
    summary = summarize(results)
    print_report(summary, meter.method, args.goal, args.ratio_goal)
    if args.json:
        write_json(args.json, args, meter.method, summary, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
