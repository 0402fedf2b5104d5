"""The plain data that travels between the grader's stages: no notebooks open, no kernels,
no files. Everything here can be pickled to a Dask worker and back, and saved as JSON.

A submission's result is data, whatever happened to it: a status column in the grades,
never an exception that stops the batch. Nothing here is an English sentence to be parsed
back: what went wrong is a kind (an enum); sentences are made from it once, for people.
"""

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

GRADED = "graded"
TIMEOUT = "timeout"
ERROR = "error"
INVALID = "invalid"
STATUSES = (GRADED, TIMEOUT, ERROR, INVALID)


class FailureKind(StrEnum):
    """Why an exercise's test produced no answer, or how its test cell ended."""

    RAISED = "raised"  # the code raised: error_name and error_value say what
    CELL_TIMED_OUT = "cell_timed_out"  # ran past its time and was interrupted
    OUT_OF_TIME = "out_of_time"  # the exercise's share of the time was used up before its test
    NOTEBOOK_TIMED_OUT = "notebook_timed_out"  # the kernel was stopped at the time limit
    KERNEL_DIED = "kernel_died"
    MEMORY_EXCEEDED = "memory_exceeded"
    SANDBOX_FAILED = "sandbox_failed"
    GRADING_FAILED = "grading_failed"  # a fault of the grader's, not the student's
    IMITATED = "imitated"  # more than one answer line: something else printed one
    NO_ANSWER = "no_answer"  # the capture ended without printing an answer


# Of an error's name or message as kept: a kernel can raise a message of megabytes, and
# nothing that travels back to the coordinator may grow with what a kernel sends.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    error_name: str = ""  # RAISED: the exception's class name, e.g. "NameError"
    error_value: str = ""  # RAISED: its message, the student's own text (quote, never parse)

    @classmethod
    def raised(cls, name: object, value: object) -> "Failure":
        return cls(FailureKind.RAISED, str(name)[:MAX_ERROR_CHARS],
                   str(value)[:MAX_ERROR_CHARS])


@dataclass(frozen=True)
class ExerciseRun:
    """What one exercise's test gave: the answer its capture collected, or why there is none."""

    exercise: str
    answer: dict | None = None  # JSON data the lab's capture returned
    failure: Failure | None = None  # set when answer is None
    test_cell_error: Failure | None = None  # how the (public) test cell ended, if it failed
    answer_cell_error: Failure | None = None  # how the answer cell ended, if it failed


class RunEnd(StrEnum):
    """How the run of one notebook ended."""

    FINISHED = "finished"
    TIMED_OUT = "timed_out"  # stopped at the submission's time limit
    KERNEL_DIED = "kernel_died"
    MEMORY_EXCEEDED = "memory_exceeded"
    SANDBOX_FAILED = "sandbox_failed"  # no kernel: the sandbox could not be set up
    GRADING_FAILED = "grading_failed"  # a fault of ours, on the worker or in the cluster
    WORKER_DIED = "worker_died"  # the worker process died twice grading it


# Why an exercise has no answer when the run ended before its test.
UNREACHED = {
    RunEnd.FINISHED: FailureKind.NO_ANSWER,
    RunEnd.TIMED_OUT: FailureKind.NOTEBOOK_TIMED_OUT,
    RunEnd.KERNEL_DIED: FailureKind.KERNEL_DIED,
    RunEnd.MEMORY_EXCEEDED: FailureKind.MEMORY_EXCEEDED,
    RunEnd.SANDBOX_FAILED: FailureKind.SANDBOX_FAILED,
    RunEnd.GRADING_FAILED: FailureKind.GRADING_FAILED,
    RunEnd.WORKER_DIED: FailureKind.GRADING_FAILED,
}


def unreached(exercise: str, end: RunEnd) -> ExerciseRun:
    """The ExerciseRun of an exercise whose test the run never got to."""
    return ExerciseRun(exercise, None, Failure(UNREACHED[end]))


@dataclass(frozen=True)
class KernelProtection:
    """What confined one kernel, as the machine that ran it says: typed, so that nothing
    reads it back from the words shown to people (`level`)."""

    namespaces: bool = False  # a private root, no network, a user id of its own
    cgroups: bool = False  # a memory and process cap on the kernel and all it started
    syscall_policy: bool = False  # the seccomp filter (grader.run.syscalls)

    @property
    def level(self) -> str:
        """A few words for the grades' run facts. The system call policy is not among
        them: where it is missing, the run's warnings say so."""
        parts = [name for name, on in (("namespaces", self.namespaces),
                                       ("cgroups", self.cgroups)) if on]
        return "+".join(parts) or "time limits only"


@dataclass(frozen=True)
class RunOutcome:
    """What a worker sends back for one submission."""

    exercises: dict  # exercise id -> ExerciseRun, for every exercise of the lab
    end: RunEnd = RunEnd.FINISHED
    reason: str = ""  # for SANDBOX_FAILED and GRADING_FAILED: the grader's own words
    notebook: dict | None = None  # the graded notebook (nbformat JSON), outputs capped
    cell_timeouts: int = 0  # cells interrupted at their time limit
    cells_not_run: int = 0  # cells left out when their exercise's time was used up
    output_dropped: bool = False  # the submission's output budget ran out
    seconds: float = 0.0
    protection: KernelProtection | None = None  # None: no kernel ran (or no runner said)
    unprotected: tuple = ()  # what that machine could not enforce, in the grader's words
    memory_mb: int = 0
    # Where the run's seconds went, per stage (grader.stage_clock.StageClock.totals): for
    # the profile only, never for a verdict.
    stages: dict = field(default_factory=dict)

    @property
    def sandbox(self) -> str:
        """What confined the kernel, in words ("" when nothing says)."""
        return self.protection.level if self.protection is not None else ""


@dataclass(frozen=True)
class Message:
    """One thing a student should know about an exercise. `kind` names the mistake
    (e.g. "softmax.unnormalised"): the report groups students by it."""

    kind: str
    text: str


@dataclass(frozen=True)
class ExerciseVerdict:
    """Points for one exercise and, for every point lost, a message naming the mistake."""

    exercise: str  # the nbgrader grade_id of the answer cell, e.g. "UNQ_C1"
    points: float
    max_points: float
    messages: tuple = ()  # of Message

    @property
    def full_marks(self) -> bool:
        return self.points == self.max_points

    def to_json(self) -> dict[str, Any]:
        return {"points": self.points, "max_points": self.max_points,
                "messages": [asdict(message) for message in self.messages]}

    @classmethod
    def from_json(cls, exercise: str, data: dict[str, Any]) -> "ExerciseVerdict":
        messages = tuple(Message(**message) for message in data.get("messages", ()))
        return cls(exercise, data["points"], data["max_points"], messages)


@dataclass
class StudentResult:
    """Everything the publish stage needs about one student."""

    student_id: str
    status: str
    detail: str = ""
    verdicts: dict = field(default_factory=dict)  # exercise -> ExerciseVerdict
    notebook: dict | None = None  # the graded notebook, until it is written
    seconds: float = 0.0
    sandbox: str = ""  # what confined the kernel, as the machine that ran it said
    submission_hash: str = ""  # of the submitted notebook file: a resumed batch keeps it
    folder: str = ""  # the student's folder name as submitted ("": the id itself)
    timestamp: str = ""  # when the student submitted (ISO, UTC; "" when nothing says)
    exchange_secret: str = ""  # nbgrader's submission secret, from the submission's folder
    # The graded notebook and feedback page its worker made (grader.publish.on_worker's
    # MadeFiles), to be written as they are; None: the coordinator makes them.
    made: Any = None

    @property
    def score(self) -> float:
        return sum(verdict.points for verdict in self.verdicts.values())
