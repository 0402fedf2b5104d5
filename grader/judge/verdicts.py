"""Points for every exercise of one submission, from the data its run captured.

Runs in the coordinating process, where no student code ever runs. The lab's judges decide
(grader.plugin.Lab.judge); this stage gives each exercise its points from the lab's source
notebook and makes sure that nothing a judge does, on data a kernel may have forged, costs
more than that one verdict.
"""

from grader.judge.text import Unreadable
from grader.plugin import Exercise, Lab
from grader.records import ExerciseRun, ExerciseVerdict, Message, RunOutcome, unreached

MAX_MESSAGES = 3


def judge_outcome(lab: Lab, outcome: RunOutcome, secret: bytes) -> dict[str, ExerciseVerdict]:
    """exercise id -> ExerciseVerdict for every exercise of `lab`, whose hidden inputs
    came from `secret`."""
    verdicts = {}
    for exercise in lab.exercises:
        run = outcome.exercises.get(exercise.id)
        if not isinstance(run, ExerciseRun):  # the run ended before its test (or never began)
            run = unreached(exercise.id, outcome.end)
        verdicts[exercise.id] = judge_exercise(lab, exercise, run, secret)
    return verdicts


def judge_exercise(lab: Lab, exercise: Exercise, run: ExerciseRun,
                   secret: bytes) -> ExerciseVerdict:
    max_points = lab.points[exercise.id]
    try:
        judgement = lab.judge(run, secret)
        score, messages = float(judgement.score), tuple(judgement.messages)
    except Unreadable as problem:
        score, messages = 0.0, (Message("grader.unreadable", (
            f"The grader could not read what the hidden test recorded for {exercise.title}"
            f" ({problem}). An ordinary solution never causes this: please ask your"
            " instructor to look at your submission.")),)
    except Exception as error:  # a grader bug must cost one verdict, not the whole batch
        score, messages = 0.0, (Message("grader.judge_failed", (
            f"The grader failed while judging {exercise.title} ({type(error).__name__})."
            " This is not your mistake: please ask your instructor to regrade it.")),)
    points = max_points * min(max(score, 0.0), 1.0)
    return ExerciseVerdict(exercise.id, points, max_points, messages[:MAX_MESSAGES])


def verdict_text(verdict: ExerciseVerdict) -> str:
    """The feedback text for one exercise: points, then one line per mistake."""
    head = f"{verdict.exercise}: {verdict.points:g}/{verdict.max_points:g} points."
    if verdict.full_marks:
        return f"{head} All hidden tests passed."
    return "\n".join([head, *(f"- {message.text}" for message in verdict.messages)])
