"""The lab plug-in: everything the engine needs to know about one lab, behind one interface.

The engine (intake, run, judge, publish) never imports a lab. A lab is a subclass of `Lab`
in a module of its own (this repository's is `grader.labs.c2_w2`; a test's lives under
tests/), loaded by name or path with `load_lab`, and passed to the engine as an object.
What a worker needs of it (the capture code, the modules to preload) travels as plain
data, so a Dask worker never imports the lab either.

A lab declares:
- where its source notebook (the nbgrader source, reference solutions and hidden tests
  inside) and the files students get beside it live;
- its exercises: the answer cell, the test cell after which it is captured, a title, the
  stub students get in place of the solution; points come from the source notebook's test
  cells (nbgrader's `points`), their only source;
- `hidden_inputs(secret)`: the hidden inputs of each exercise, plain JSON data drawn in
  the grader's process from one grading's secret (grader.hidden_secrets); the capture
  request carries them to the kernel, which never sees the secret;
- `capture_source()`: Python source of a function `capture(exercise, namespace, inputs)`
  that runs in the student's kernel after the exercise's test cell, on that exercise's
  hidden inputs, and returns plain JSON data about the student's answer (it decides
  nothing);
- `judge(run, secret)`: the verdict on one exercise from that data (a
  grader.records.ExerciseRun: the captured answer, or why there is none), in the grader's
  own process; it draws the inputs from the secret again and checks the kernel used them.
"""

import abc
import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grader
from grader import cells
from grader.errors import GraderError
from grader.records import ExerciseRun

if TYPE_CHECKING:  # imported where the notebook is read: loading a lab needs no nbformat,
    import nbformat  # and `grader validate` starts its kernel template sooner without it

DEFAULT_LAB = "grader.labs.c2_w2"
PATH_MODULE_PREFIX = "grader_lab_"  # the module name of a lab loaded from a path


@dataclass(frozen=True)
class Exercise:
    id: str  # the nbgrader grade_id of the answer cell, e.g. "UNQ_C1"
    test_cell: str  # the grade_id of the test cell after which it is captured
    title: str  # a few words for people, e.g. "my_softmax"
    stub: str = ""  # what replaces the reference solution in the student version


@dataclass(frozen=True)
class Judgement:
    """A lab's verdict on one exercise: the share of its points earned, and why not all."""

    score: float  # 0.0 to 1.0
    messages: tuple = ()  # of grader.records.Message


class LabError(GraderError, ValueError):
    """A lab plug-in that cannot be loaded or does not fit its source notebook."""


class Lab(abc.ABC):
    """Subclass, set the class attributes, implement `hidden_inputs`, `capture_source`
    and `judge`."""

    assignment: str  # nbgrader's assignment id, e.g. "C2_W2"
    notebook_name: str  # e.g. "C2_W2_Assignment.ipynb"
    root: Path  # holds the source notebook and the release files
    release_files: tuple = ()  # files and folders students get beside the notebook
    course_id: str  # the nbgrader course id of the gradebook
    exercises: tuple = ()  # of Exercise, in notebook order
    preload_modules: tuple = ()  # imported once by each worker's kernel template
    # The fixed seed of the hidden tests written into the notebook for plain nbgrader
    # (forgeable by design); `python -m grader` draws a secret per grading instead.
    default_seed: int = 0
    # What a public test prints when it passes: `grader validate` looks for it.
    public_tests_passed: str = "All tests passed!"

    @abc.abstractmethod
    def hidden_inputs(self, secret: bytes) -> dict[str, Any]:
        """exercise id -> its hidden inputs (JSON data) for one grading's `secret` (bytes):
        what the kernel is sent. The same secret must give the same inputs."""

    @abc.abstractmethod
    def capture_source(self) -> str:
        """Python source defining `capture(exercise, namespace, inputs) -> dict`; it runs
        in the student's kernel and may import nothing from the grader."""

    @abc.abstractmethod
    def judge(self, run: ExerciseRun, secret: bytes) -> Judgement:
        """The Judgement of one exercise from `run` (grader.records.ExerciseRun: its
        captured answer, or None and the Failure that says why), for the hidden inputs
        drawn from `secret`. It may raise grader.judge.text.Unreadable for data that the
        capture cannot have made."""

    @property
    def source_notebook(self) -> Path:
        return self.root / self.notebook_name

    @functools.cached_property
    def source(self) -> "nbformat.NotebookNode":
        """The source notebook (an nbformat NotebookNode, read once: do not change it)."""
        import nbformat

        try:
            return nbformat.read(str(self.source_notebook), as_version=4)
        except (OSError, ValueError) as error:
            raise LabError(f"cannot read the lab's source notebook "
                           f"{self.source_notebook}: {error}") from error

    @functools.cached_property
    def points(self) -> dict[str, float]:
        """Points per exercise, from the source notebook's test cells (nbgrader's)."""
        by_test_cell = {cells.grade_id(cell): cells.points(cell)
                        for cell in self.source.get("cells", []) if cells.is_test_cell(cell)}
        missing = [e.test_cell for e in self.exercises if e.test_cell not in by_test_cell]
        if missing:
            raise LabError(f"the source notebook has no test cell {', '.join(missing)}")
        return {exercise.id: by_test_cell[exercise.test_cell] for exercise in self.exercises}

    @property
    def max_score(self) -> float:
        return sum(self.points.values())

    @property
    def exercise_ids(self) -> tuple[str, ...]:
        return tuple(exercise.id for exercise in self.exercises)

    @property
    def test_cells(self) -> dict[str, str]:
        """grade_id of each exercise's test cell -> the exercise id."""
        return {exercise.test_cell: exercise.id for exercise in self.exercises}

    def exercise(self, exercise_id: str) -> Exercise:
        return next(exercise for exercise in self.exercises if exercise.id == exercise_id)

    def hidden_source_lines(self) -> frozenset[str]:
        """Lines only the hidden tests and the capture code hold, to look for in anything a
        student can read. Short and common lines are left out: they prove nothing, and so
        are lines the students' own files hold (the notebook's public text, the release's
        Python files): a student who prints one of those has leaked nothing."""
        hidden = "".join(cells.hidden_text(cells.source(cell))
                         for cell in self.source.get("cells", []))
        lines = {line.strip() for line in (hidden + self.capture_source()).splitlines()}
        public = {line.strip() for cell in self.source.get("cells", [])
                  for line in cells.public_text(cells.source(cell)).splitlines()}
        public |= {line.strip() for text in self._released_python()
                   for line in text.splitlines()}
        return frozenset(line for line in lines - public
                         if len(line) >= 24 and not line.startswith("#"))

    def _released_python(self):
        """The text of every Python file students get beside the notebook."""
        for name in self.release_files:
            path = self.root / name
            files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            for file in files:
                if file.suffix == ".py" and file.is_file():
                    yield file.read_text(encoding="utf-8", errors="replace")


def lab_spec(lab: Lab) -> str | None:
    """What load_lab loads `lab` by in another process (a worker, grader.publish.on_worker):
    the name of the module whose LAB it is, or that module's absolute path for one loaded
    from a file or folder; None for a lab no module holds as its LAB."""
    name = type(lab).__module__
    while name:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "LAB", None) is lab:
            if not name.startswith(PATH_MODULE_PREFIX):
                return name
            init = Path(module.__file__ or "")
            return str(init.parent if init.name == "__init__.py" else init)
        name = name.rpartition(".")[0]
    return None


def grading_version(lab: Lab) -> str:
    """Two batches with the same grading version grade a submission alike: the engine's
    grading ABI (grader.GRADING_ABI) and what the lab's verdicts come from, its plug-in's
    code (judges, capture, hidden inputs), its source notebook and its release files."""
    from grader.release_files import read_release_files

    plugin_folder = Path(inspect.getfile(type(lab))).parent
    lab_digest = grader.digest_of({
        # lab_files: an installed copy of what "notebook" and "release" digest
        "plugin": grader.source_digest(plugin_folder, skip=("lab_files",)).encode(),
        "notebook": lab.source_notebook.read_bytes(),
        "release": read_release_files(lab).digest.encode()})
    return f"abi{grader.GRADING_ABI}/{lab_digest[:12]}"


def load_lab(spec: str | Path = DEFAULT_LAB) -> "Lab":
    """The Lab a module defines, by module name (`grader.labs.c2_w2`) or file path
    (a module `my_lab.py`, or a package folder such as `tests/grader/tiny_lab`): the module's
    `LAB` object."""
    spec = str(spec)
    try:
        if spec.endswith(".py") or "/" in spec:
            module = _module_from_path(Path(spec))
        else:
            module = importlib.import_module(spec)
    except Exception as error:  # whatever the lab's module raised: said in one line
        raise LabError(f"cannot load the lab {spec!r}: {type(error).__name__}: {error}") \
            from error
    lab = getattr(module, "LAB", None)
    if not isinstance(lab, Lab):
        raise LabError(f"the lab module {spec!r} defines no LAB (a grader.plugin.Lab)")
    return lab


def _module_from_path(path):
    """The module (a file) or package (a folder) at `path`, imported under a name of its
    own and registered in sys.modules, as importlib's documentation does for a source file:
    a package's relative imports and inspect (which finds a class's file through its
    module) need it there."""
    path = path.resolve()
    package = path.is_dir()
    init = path / "__init__.py" if package else path
    name = PATH_MODULE_PREFIX + hashlib.sha256(str(init).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(path)] if package else None)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
