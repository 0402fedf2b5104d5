"""A submission's status and the sentence that explains it, from how its run ended.

Every sentence here is made once, from typed data (grader.records), for a student and an
instructor to read; nothing downstream parses it.
"""

from collections.abc import Iterable

from grader.records import ERROR, GRADED, TIMEOUT, FailureKind, RunEnd, RunOutcome

OUR_FAULT = ("The grader failed while handling this submission (a fault of the grader's,"
             " written to grader.log); grade it again.")

_ENDS = {
    RunEnd.TIMED_OUT: (TIMEOUT, "Grading stopped: the notebook ran past its time limit; tests"
                                " after that got no points."),
    RunEnd.MEMORY_EXCEEDED: (ERROR, "The notebook used more than its {memory_mb} MB of memory"
                                    " and was stopped; tests after that got no points."),
    RunEnd.KERNEL_DIED: (ERROR, "The notebook's kernel stopped while grading (a cell may have"
                                " used too much memory or ended the process); tests after that"
                                " got no points."),
    RunEnd.SANDBOX_FAILED: (ERROR, "Grading failed: {reason}."),
    RunEnd.GRADING_FAILED: (ERROR, "Grading failed: {reason}."),
    RunEnd.WORKER_DIED: (ERROR, "Grading failed: {reason}."),
}


def status_and_detail(outcome: RunOutcome, notes: Iterable[str] = ()) -> tuple[str, str]:
    """(status, detail): the status of a run, and its reason and `notes` as sentences."""
    status, why = GRADED, ""
    if outcome.end in _ENDS:
        status, template = _ENDS[outcome.end]
        why = template.format(memory_mb=outcome.memory_mb,
                              reason=outcome.reason or "no reason given")
    sentences = [why, *notes, *run_notes(outcome)]
    return status, " ".join(sentence(note) for note in sentences if note)


def run_notes(outcome: RunOutcome) -> list[str]:
    notes = []
    if outcome.cell_timeouts:
        notes.append(f"{outcome.cell_timeouts} cell(s) ran past the time limit for one cell and"
                     " were stopped (an endless loop?); the cells after them still ran.")
    stopped = [exercise for exercise, run in sorted(outcome.exercises.items())
               if run.failure is not None and run.failure.kind is FailureKind.CELL_TIMED_OUT]
    if stopped:
        notes.append(f"The hidden test of {', '.join(stopped)} ran past the time limit for one"
                     " cell and was stopped.")
    if outcome.cells_not_run:
        notes.append(f"{outcome.cells_not_run} cell(s) were not run: the time of their"
                     " exercise was used up.")
    if outcome.output_dropped:
        notes.append("The notebook printed more than the grader keeps; the rest of its output"
                     " was dropped.")
    return notes


def sentence(note: str) -> str:
    """`note` as a sentence: a capital first letter and a full stop."""
    note = note.strip()
    if not note:
        return note
    return note[0].upper() + note[1:] + ("" if note.endswith((".", "?", "!")) else ".")
