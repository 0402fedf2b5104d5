"""What a student reads when an exercise's test gave no answer for a reason of the run's
(a time limit, a dead kernel, the grader's own fault), the same for every lab. A lab's
judge says the rest: what the student's code did wrong."""

from grader.records import Failure, FailureKind, Message

_NOT_YOURS = " This is not your mistake. Please ask your instructor to grade it again."

_SENTENCES = {
    FailureKind.CELL_TIMED_OUT: (
        "The hidden test of {subject} ran past its time limit and was stopped: usually a"
        " loop that never ends (e.g. a while loop whose counter never changes)."),
    FailureKind.OUT_OF_TIME: (
        "The test of {subject} did not run: earlier cells used up the time this exercise"
        " has (does a loop never end?)."),
    FailureKind.NOTEBOOK_TIMED_OUT: (
        "The notebook ran out of time and was stopped before the hidden test of {subject}"
        " could run."),
    FailureKind.KERNEL_DIED: (
        "Python stopped (the kernel died) before the hidden test of {subject} could finish:"
        " usually code that used far too much memory, or ended the process."),
    FailureKind.MEMORY_EXCEEDED: (
        "The notebook used more memory than it may and was stopped before the hidden test"
        " of {subject} could finish."),
    FailureKind.SANDBOX_FAILED: (
        "The hidden test of {subject} could not run: the grader could not set up a place"
        " to run the notebook." + _NOT_YOURS),
    FailureKind.GRADING_FAILED: (
        "The hidden test of {subject} could not run because the grader failed." + _NOT_YOURS),
    FailureKind.IMITATED: (
        "The hidden test of {subject} was imitated: its result line was printed more than"
        " once, so none of them can be believed. Code that prints the grader's own output"
        " gets no points; an instructor may review this notebook."),
    FailureKind.NO_ANSWER: (
        "The hidden test of {subject} returned nothing: something in the notebook kept it"
        " from printing its result (a replaced print or sys.stdout?). Run the whole"
        " notebook (Restart & Run All) and check that every cell works."),
}


def failure_message(subject: str, failure: Failure | None) -> Message | None:
    """The Message for a test that gave no answer because of `failure`; None for a RAISED
    failure, whose meaning only the lab's judge knows."""
    sentence = _SENTENCES.get(failure.kind) if failure is not None else None
    if failure is None or sentence is None:
        return None
    return Message(f"run.{failure.kind.value}", sentence.format(subject=subject))
