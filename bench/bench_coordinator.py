"""Simulate large classes on the coordinator alone: what one student costs it, and whether
its memory stays flat (issue 22, item 5).

Usage, from the repository root:

    .venv/bin/python bench/bench_coordinator.py [--sizes 200 1000] [--workers 1]
        [--render | --link-files] [--local] [--json OUT]
    .venv/bin/python bench/bench_coordinator.py --class-files 100000

For each size N, a class of N student folders is made, each holding the released notebook
(hard links to one file: a class of 100,000 takes no more disk than one), and graded by

    python bench/bench_coordinator.py --simulate CLASS OUT REPORT

in a subprocess of its own: `grader.pipeline.autograde` on a loopback Dask cluster (a
`dask scheduler` and `--workers` workers, processes of their own, tools/loopback_cluster.py)
with a runner whose every run comes back finished: one recorded run of the released
notebook, judged and published once as a worker does (grader.publish.on_worker), in a
process of its own (its CPU is no coordinator's), whose files each run writes into OUT as
a worker sharing OUT does. The worker still reads and
prepares each student's file. So every second measured in the coordinating process is its
own: intake, reading each file, the secret saved, Dask's client, the journal, the gradebook
rows, then grades.csv, the course's folders and the report. With `--render` the worker
judges and renders every page for real (slow: a tenth of a second a page); with
`--link-files` each worker writes its first student's files and hard links them for every
other student (1.1 MB a student otherwise: 110 GB for 100,000); with `--local` a
LocalCluster, whose scheduler runs in the coordinating process and is counted with it.
Measured, in that process:

* its CPU seconds per student (getrusage of itself: every thread), over the whole run and
  between a quarter of the class saved and the last student ("steady": what each student
  adds, without the batch's start and its class files);
* the page renderers' CPU per student (the coordinator's, and the workers');
* its peak RSS (VmHWM) and its RSS once a quarter of the class was saved and at the end:
  the slope, in kB per student, says whether memory grows with N;
* the seconds grades.csv, verdicts.json, the course's folders and the report took.

`--class-files N` only times the class files for a made-up journal of N students, twice
(the second pass is what every batch after the first pays).

Every run is checked: N rows in grades.csv, all graded in this batch. Goals (issue 22):
at most 5 ms of coordinator CPU per student, memory flat in N, and the class files for
100,000 students in under a minute; the verdict lines say how far each size is from them.
"""

import argparse
import contextlib
import dataclasses
import errno
import importlib
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python bench/bench_coordinator.py`
    sys.path.insert(0, str(REPO_ROOT))

# Before nbformat: the package marks the imports no grader process needs (grader/__init__.py),
# as in the command; imported after, the simulated coordinator paid a second for them.
import grader  # noqa: E402, F401

DEFAULT_SIZES = (200, 1000)
CPU_GOAL_MS = 5.0  # coordinator CPU per student
CLASS_FILES_GOAL_SECONDS = 60  # grades.csv, verdicts.json and the report, at 100,000
LIMIT_PER_STUDENT = 5  # seconds: a hung run fails the benchmark
LIMIT_MARGIN = 300
CLASS_FILE_STAGES = ("grades.csv + verdicts.json", "report", "course feedback folders")
WORKER_RENDERER_STAGES = ("feedback renderer start", "feedback page render")


class BenchmarkError(Exception):
    pass


def build_class(release_dir, class_dir, count):
    """`count` student folders, each with a hard link to the released notebook."""
    from grader.labs.c2_w2 import LAB as lab

    notebook = Path(release_dir) / lab.notebook_name
    width = max(5, len(str(count)))
    for number in range(count):
        folder = Path(class_dir) / f"s{number:0{width}d}"
        folder.mkdir(parents=True)
        notebook = link_or_copy(notebook, folder / lab.notebook_name)


def link_or_copy(source, target):
    """Hard link `target` to `source`, or copy it there when `source` has as many links
    as the file system allows (ext4: 65,000); the file to link the next one to."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno != errno.EMLINK:
            raise
        shutil.copy2(source, target)
        return target
    return source


def simulate(class_dir, out, report_path, render=False, local=False, workers=1,
             link_files=False):
    """In the subprocess: grade `class_dir` into `out` with canned outcomes (finished on
    the worker, or, with `render`, canned runs that the worker judges and publishes); write
    what was measured to `report_path` (JSON)."""
    from grader.labs.c2_w2 import LAB as lab
    from grader.pipeline import autograde
    from grader.run.runner import CannedRunner

    size = sum(1 for _ in Path(class_dir).iterdir())
    rss, cpu = {}, {}  # at a quarter of the class saved and at the last

    def progress(done, total, record):
        if done in (max(1, total // 4), total):
            rss[done] = _status_kib("VmRSS")
            cpu[done] = _cpu_seconds()

    if render:
        runner = CannedRunner({}, default=recorded_outcome(class_dir))
    else:  # the worker's judging and publishing recorded too (grader.publish.on_worker)
        runner = _canned_finishes(lab, class_dir, out, link_files)
    with contextlib.ExitStack() as stack:
        scheduler = None
        if not local:  # the scheduler in a process of its own, as on a real cluster
            from tools.loopback_cluster import loopback_cluster

            cluster = Path(out).parent / f"cluster-{Path(out).name}"  # fresh: its own files
            scheduler = stack.enter_context(loopback_cluster(cluster,
                                                             workers=workers))
        started = time.perf_counter()
        batch = autograde(submissions=class_dir, out=out, lab=lab, workers=workers,
                          runner=runner,
                          on_progress=progress, scheduler=scheduler)
        seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(report_path).write_text(json.dumps({
        "size": size, "graded": len(batch.graded), "seconds": seconds, "local": local,
        "cpu_seconds": usage.ru_utime + usage.ru_stime, "system_cpu_seconds": usage.ru_stime,
        # pickled by reference with each task, as a grader runner is (see `main`)
        "runner_module": type(runner).__module__,
        "peak_kib": _status_kib("VmHWM"),
        "rss_kib": {str(done): kib for done, kib in sorted(rss.items())},
        "cpu_at": {str(done): seconds for done, seconds in sorted(cpu.items())}}))


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def recorded_outcome(class_dir):
    """One finished run of the class's first notebook, every exercise unreached."""
    import nbformat

    from grader.labs.c2_w2 import LAB as lab
    from grader.records import KernelProtection, RunEnd, RunOutcome, unreached

    first = next(Path(class_dir).iterdir())
    notebook = nbformat.read(str(first / lab.notebook_name), as_version=4)
    return RunOutcome({exercise.id: unreached(exercise.id, RunEnd.FINISHED)
                       for exercise in lab.exercises}, RunEnd.FINISHED, notebook=notebook,
                      protection=KernelProtection(namespaces=True, cgroups=True,
                                                  syscall_policy=True))


def _finish_request(lab):
    from grader.pipeline import grading_version
    from grader.plugin import lab_spec
    from grader.publish.on_worker import FinishRequest, LabRef

    return FinishRequest(LabRef(lab_spec(lab), grading_version(lab)), b"\0" * 16)


def record_finished_run(class_dir, path):
    """In a subprocess of its own (`--record`): the recorded outcome judged and published
    once as a worker does (grader.publish.on_worker), pickled to `path`. Not in the
    simulated coordinator: its CPU (a page's formulas drawn, nbconvert imported) is no
    coordinator's."""
    from grader.labs.c2_w2 import LAB as lab
    from grader.publish.on_worker import finish

    finished = finish(_finish_request(lab), "recorded", recorded_outcome(class_dir))
    if not hasattr(finished, "made"):
        raise BenchmarkError("the recorded outcome could not be finished (see the log)")
    Path(path).write_bytes(pickle.dumps(finished))


def _canned_finishes(lab, class_dir, out, link_files=False):
    """A CannedFinishes runner of a run recorded by a subprocess (record_finished_run),
    whose every run writes its files into `out` (with `link_files`, hard links to the first
    student's)."""
    path = Path(out).parent / f"finished-run-{Path(out).name}.pickle"
    command = [sys.executable, str(Path(__file__).resolve()), "--record", str(class_dir),
               str(path)]
    recorded = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if recorded.returncode:
        raise BenchmarkError(f"recording the finished run failed:\n{recorded.stderr[-3000:]}")
    request = dataclasses.replace(_finish_request(lab), out=str(Path(out).resolve()))
    return CannedFinishes(path, request, link_files)


class CannedFinishes:
    """A runner whose every run comes back finished already: one recorded FinishedRun, so
    that the worker answers at once and the coordinator is all that is measured. A runner
    travels with every task: this one carries only the recording's path, read once per
    worker process (a real runner is as small). Pickled by reference, as a grader runner
    is (`main` runs the simulation from this module imported by name); what it reads once
    is cached in a module of its own in sys.modules."""

    name = "canned-finished"
    CACHE = "bench_coordinator_recorded_runs"

    def __init__(self, path, request, link_files=False):
        self.path = str(path)
        self.request = request  # with OUT: the files are written as a worker writes them
        # Each worker writes its first student's files, and links them for every other:
        # a class of 100,000 then takes the disk of a few students (1.1 MB each otherwise).
        self.link_files = link_files

    def run(self, task, support_files):
        from grader.plugin import load_lab
        from grader.publish.on_worker import written_into_out

        cache = sys.modules.setdefault(self.CACHE, types.ModuleType(self.CACHE))
        if not hasattr(cache, "finished"):
            cache.finished = pickle.loads(Path(self.path).read_bytes())
            cache.lab = load_lab(self.request.lab.spec)
        out = Path(self.request.out)
        if self.link_files and hasattr(cache, "first"):
            made = _linked(out, cache.first, task.student_id)
        else:
            made = written_into_out(cache.lab, self.request, task.student_id,
                                    cache.finished.made)
            if self.link_files:
                cache.first = (task.student_id, {relative: out / relative for relative
                                                 in _files_of(out, task.student_id)}, made)
        return dataclasses.replace(cache.finished, made=made)


def _files_of(out, student_id):
    """The files in `out` that a path component names as `student_id`'s (relative)."""
    return [path.relative_to(out) for path in out.rglob("*")
            if path.is_file() and student_id in path.relative_to(out).parts]


def _linked(out, first, student_id):
    """`student_id`'s files in `out` as hard links to the `first` student's (id, {path
    relative to `out`: the file to link it to}, MadeFiles); the first's MadeFiles, whose
    time of grading the linked files say (the course's timestamp files): a record with
    another would have the class files write every student's again."""
    first_id, sources, made = first
    for relative, source in sources.items():
        path = out.joinpath(*(student_id if part == first_id else part
                              for part in relative.parts))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        sources[relative] = link_or_copy(source, path)
    return made


def class_files(size, scratch):
    """The class files for a journal of `size` students (made up: four kinds of result,
    with the judges' messages), without grading: {stage: wall seconds}. Run twice: the
    first pass writes each student's nbgrader course folder, the second, as after any later
    batch, finds them written."""
    from grader.labs.c2_w2 import LAB as lab
    from grader.publish.class_files import write_class_files
    from grader.publish.journal import Journal
    from grader.records import ExerciseVerdict, Message, StudentResult
    from grader.stage_clock import StageClock

    out = Path(scratch) / f"class-files-{size}"
    out.mkdir(parents=True)
    first, second = (exercise.id for exercise in lab.exercises)
    kinds = [{}, {first: "softmax.unnormalised"}, {second: "model.units"},
             {first: "softmax.shape", second: "model.activation"}]
    with Journal(out) as journal:
        journal._db.execute("PRAGMA synchronous = OFF")  # the bench's own: filled fast
        batch = journal.begin_batch(lab=lab)
        for number in range(size):
            wrong = kinds[number % len(kinds)]
            verdicts = {exercise.id: ExerciseVerdict(
                exercise.id, 0.0 if exercise.id in wrong else lab.points[exercise.id],
                lab.points[exercise.id],
                (Message(wrong[exercise.id], f"a mistake of kind {wrong[exercise.id]}"),)
                if exercise.id in wrong else ()) for exercise in lab.exercises}
            journal.record(StudentResult(f"student-{number:06d}", "graded", "", verdicts,
                                         submission_hash=f"{number:064x}"),
                           version="v", batch=batch, has_notebook=True, feedback="none")
        passes = []
        for _ in range(2):
            clock = StageClock()
            write_class_files(out, journal, lab, clock=clock)
            passes.append({stage: numbers["wall"]
                           for stage, numbers in clock.totals().items()})
    shutil.rmtree(out)
    return passes


def _status_kib(name):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def run_size(release_dir, scratch, size, render=False, local=False, workers=1,
             link_files=False):
    """Build a class of `size`, simulate it in a subprocess; the run's numbers."""
    class_dir, out = scratch / f"class-{size}", scratch / f"out-{size}"
    report = scratch / f"report-{size}.json"
    build_class(release_dir, class_dir, size)
    command = [sys.executable, str(Path(__file__).resolve()), "--simulate", str(class_dir),
               str(out), str(report), *(["--render"] if render else []),
               *(["--local"] if local else []), *(["--link-files"] if link_files else []),
               "--workers", str(workers)]
    try:
        subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True,
                       timeout=LIMIT_PER_STUDENT * size + LIMIT_MARGIN)
    except subprocess.CalledProcessError as error:
        raise BenchmarkError(f"the simulation of {size} failed:\n{error.stderr[-3000:]}") \
            from None
    run = json.loads(report.read_text())
    check_rows(out / "grades.csv", size)
    if run["graded"] != size:
        raise BenchmarkError(f"{run['graded']} of {size} were graded in this batch")
    run.update(profile_numbers(json.loads((out / "profile.json").read_text()), size))
    shutil.rmtree(class_dir)
    shutil.rmtree(out)
    return run


def check_rows(grades_csv, size):
    rows = Path(grades_csv).read_text(encoding="utf-8").strip().splitlines()
    if len(rows) - 1 != size:
        raise BenchmarkError(f"grades.csv has {len(rows) - 1} rows for {size} students")


def profile_numbers(profile, size):
    """The page renderers' CPU per student (the coordinator's and the worker's) and the
    class files' seconds, from OUT/profile.json."""
    renderer = profile["stages"].get("renderer", {})
    coordinator = profile["stages"]["coordinator"]
    workers = profile["stages"].get("workers", {})
    return {
        "renderer_cpu_seconds": sum(stage["cpu"] for stage in renderer.values()),
        "worker_renderer_cpu_seconds": sum(workers.get(name, {}).get("cpu", 0.0)
                                           for name in WORKER_RENDERER_STAGES),
        "class_files_seconds": sum(coordinator.get(name, {}).get("wall", 0.0)
                                   for name in CLASS_FILE_STAGES),
    }


def derived(run):
    """Per-student numbers of one run."""
    size = run["size"]
    rss = sorted((int(done), kib) for done, kib in run["rss_kib"].items())
    (first_done, first_kib), (last_done, last_kib) = rss[0], rss[-1]
    slope = ((last_kib - first_kib) / (last_done - first_done)
             if last_done > first_done else 0.0)
    cpu = sorted((int(done), seconds) for done, seconds in run.get("cpu_at", {}).items())
    steady = ((cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0])
              if len(cpu) > 1 and cpu[-1][0] > cpu[0][0] else None)
    return {
        "size": size,
        "coordinator_ms_per_student": 1000 * run["cpu_seconds"] / size,
        # Between a quarter of the class saved and the last: what each student adds, without
        # the batch's start and class files (what a class of 100,000 is nearly all made of).
        "steady_ms_per_student": None if steady is None else 1000 * steady,
        "renderer_ms_per_student": 1000 * run["renderer_cpu_seconds"] / size,
        "worker_renderer_ms_per_student": 1000 * run.get("worker_renderer_cpu_seconds", 0.0)
        / size,
        "seconds_per_student": run["seconds"] / size,
        "peak_mb": run["peak_kib"] * 1024 / 10**6,
        "rss_slope_kb_per_student": slope * 1024 / 1000,
        "class_files_seconds": run["class_files_seconds"],
    }


def report_lines(rows):
    header = (f"{'N':>7} {'coord ms/st':>12} {'steady':>7} {'render ms/st':>13} "
              f"{'worker render':>14} "
              f"{'s/student':>10} "
              f"{'peak MB':>8} {'RSS kB/st':>10} {'class files s':>14}")
    lines = [header]
    for row in rows:
        steady = row.get("steady_ms_per_student")
        lines.append(f"{row['size']:>7} {row['coordinator_ms_per_student']:>12.1f} "
                     f"{'' if steady is None else format(steady, '.1f'):>7} "
                     f"{row['renderer_ms_per_student']:>13.1f} "
                     f"{row.get('worker_renderer_ms_per_student', 0.0):>14.1f} "
                     f"{row['seconds_per_student']:>10.3f} {row['peak_mb']:>8.0f} "
                     f"{row['rss_slope_kb_per_student']:>10.2f} "
                     f"{row['class_files_seconds']:>14.2f}")
    largest = rows[-1]
    per_student = largest["coordinator_ms_per_student"] + largest["renderer_ms_per_student"]
    at_100k = largest["class_files_seconds"] / largest["size"] * 100_000
    lines += [
        f"coordinator + renderer CPU per student at N={largest['size']}: {per_student:.1f} ms"
        f" = {per_student / CPU_GOAL_MS:.1f}x the goal of {CPU_GOAL_MS:g} ms"
        + ("" if largest.get("steady_ms_per_student") is None else
           f"; each student after the first quarter: {largest['steady_ms_per_student']:.1f} ms"),
        f"memory: {largest['rss_slope_kb_per_student']:.2f} kB more per student (flat: 0);"
        f" at 100,000 students that is "
        f"{largest['rss_slope_kb_per_student'] * 100_000 / 1000:.0f} MB",
        f"class files at 100,000 students, extrapolated linearly: {at_100k:.0f} s"
        f" (goal {CLASS_FILES_GOAL_SECONDS} s)",
    ]
    return lines


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help="class sizes, in the order run (default 200 1000)")
    parser.add_argument("--json", metavar="OUT", help="write every run's numbers here")
    parser.add_argument("--render", action="store_true",
                        help="the worker judges and renders every page (default: it sends"
                             " one recorded finished run back, so that only the coordinator"
                             " is measured)")
    parser.add_argument("--workers", type=int, default=1,
                        help="Dask workers, one thread each (default 1): more keep more"
                             " results on their way to the coordinator")
    parser.add_argument("--link-files", action="store_true",
                        help="each worker writes its first student's files into OUT and"
                             " hard links them for every other (a class of 100,000 takes"
                             " 110 GB otherwise); the coordinator reads none of them")
    parser.add_argument("--local", action="store_true",
                        help="a LocalCluster, whose scheduler runs in the coordinating process"
                             " and is counted with it (default: a loopback cluster, the"
                             " scheduler and the worker in processes of their own)")
    parser.add_argument("--class-files", type=int, metavar="N",
                        help="only time the class files (grades.csv, verdicts.json, the"
                             " course's folders, the report) for a journal of N students")
    parser.add_argument("--simulate", nargs=3, metavar=("CLASS", "OUT", "REPORT"),
                        help=argparse.SUPPRESS)  # the subprocess's own entry
    parser.add_argument("--record", nargs=2, metavar=("CLASS", "PICKLE"),
                        help=argparse.SUPPRESS)  # the recording subprocess's
    args = parser.parse_args(argv)
    if args.render and args.link_files:
        parser.error("--link-files links recorded files: --render renders every page")
    if any(size < 4 for size in args.sizes):
        parser.error("each size must be at least 4 (a quarter of the class is a student)")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.record:
        record_finished_run(*args.record)
        return 0
    if args.simulate:
        # By its module's name, so that the runner travels with each task by reference, as a
        # grader runner does: a class of __main__ is pickled by value (cloudpickle), which
        # cost the coordinator 0.3 ms a student that no real batch pays.
        by_name = importlib.import_module(Path(__file__).stem)
        os.environ["PYTHONPATH"] = os.pathsep.join(  # the workers import it too
            filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")]))
        by_name.simulate(*args.simulate, render=args.render, local=args.local,
                         workers=args.workers, link_files=args.link_files)
        return 0
    if args.class_files:
        with tempfile.TemporaryDirectory(prefix="bench-class-files-") as folder:
            passes = class_files(args.class_files, folder)
        for name, stages in zip(("first pass", "next pass"), passes, strict=True):
            total = sum(stages.values())
            print(f"class files for {args.class_files:,} students, {name}: {total:.1f} s ("
                  + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in stages.items())
                  + ")")
        if args.json:
            Path(args.json).write_text(json.dumps({"class_files": passes}, indent=1))
        return 0
    from grader.course.release import release
    from grader.labs.c2_w2 import LAB as lab

    with tempfile.TemporaryDirectory(prefix="bench-coordinator-") as folder:
        scratch = Path(folder)
        release(lab=lab, out=scratch / "release")
        try:
            runs = [run_size(scratch / "release", scratch, size, args.render, args.local,
                             args.workers, args.link_files) for size in args.sizes]
        except BenchmarkError as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 1
    rows = [derived(run) for run in runs]
    print("\n".join(report_lines(rows)))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
