"""UNQ_C2, the Sequential model: judged from its described layers, weights and output.

Runs in the grader's own process with NumPy only: activations are named by what they
computed on a probe, and the model's output on the hidden batch is recomputed from its
captured weights, so neither the model's own description nor its forward pass is taken
on trust. The judging itself is the lab's rules' (lab_rules.model_problems), the same
rules the public tests and plain nbgrader's hidden tests apply; here are only what the
grader alone knows: why a run gave no answer, and which batch this grading's secret gave.
"""

from grader.judge.failures import failure_message
from grader.judge.text import Unreadable, answer_cell_stopped, quote
from grader.labs.c2_w2.hidden_inputs import model_batch
from grader.labs.c2_w2.rules import lab_rules
from grader.plugin import Judgement
from grader.records import Message

SUBJECT = "the model"


def judge_model(run, secret):
    messages = _messages(run, secret)
    return Judgement(0.0 if messages else 1.0, tuple(messages))


def _messages(run, secret):
    if run.answer is None:
        return [failure_message(SUBJECT, run.failure) or _capture_raised(run.failure)]
    captured = run.answer
    if not isinstance(captured, dict):
        raise Unreadable("not a record")
    if captured.get("missing") == "model":
        return [Message("model.missing", f"There is no `model` when the tests run"
                        f"{answer_cell_stopped(run)}: build it with Sequential([...]) in the"
                        " UNQ_C2 cell, assign it to `model`, and run that cell without"
                        " errors.")]
    try:
        problems = lab_rules.model_problems(captured, model_batch(secret))
    except lab_rules.Unreadable as problem:
        raise Unreadable(str(problem)) from problem
    return [Message(*problem) for problem in problems]


def _capture_raised(failure):
    error = quote(f"{failure.error_name}: {failure.error_value}") if failure else "no reason"
    return Message("model.capture_raised", f"The hidden test of the model stopped with {error}:"
                   " does the notebook replace a built-in name (print, sys.stdout) or a NumPy"
                   " function?")
