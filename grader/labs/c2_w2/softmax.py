"""UNQ_C1, my_softmax: judged from what it returned on the hidden inputs.

Runs in the grader's own process with NumPy only. The captured data is never trusted:
whatever its shape or type, the result is full or no marks with messages that name the
mistake, never an exception (grader.judge turns an Unreadable into a message).
"""

from dataclasses import dataclass

import numpy as np

from grader.judge.failures import failure_message
from grader.judge.text import (
    Unreadable,
    answer_cell_stopped,
    captured_error,
    fmt,
    listed,
    number_array,
    quote,
)
from grader.labs.c2_w2.hidden_inputs import ORDINARY, softmax_inputs
from grader.plugin import Judgement
from grader.records import Message

SUBJECT = "my_softmax"
RTOL = 1e-5
ATOL = 1e-8
SUM_ATOL = 1e-6
PUBLIC_EXAMPLE = np.array([1.0, 2.0, 3.0, 4.0])

# Between mistakes seen on as many inputs, the most telling first: a recognised formula
# explains the other symptoms.
_KIND_RANK = ("unnormalised", "sum_of_z", "off_by_one", "none", "order", "raised", "index",
              "shape", "not_finite", "negative", "above_one", "sum", "values")
# Plain facts, true whatever the formula: worth reporting beside another mistake.
_FACT_KINDS = ("none", "raised", "index", "shape")

_HINTS = {
    "NameError": "A name is used before it is defined: did you assign your result to `a`, and"
                 " spell every variable as you defined it?",
    "UnboundLocalError": "A variable is used before it gets a value: assign `a` (e.g."
                         " a = np.zeros(N)) before filling it in.",
    "IndexError": "An index went out of range: loop over range(N), with N = z.shape[0].",
    "TypeError": "A value has the wrong type: z is a NumPy array of numbers; compute with"
                 " np.exp and np.sum and return a NumPy array.",
    "ZeroDivisionError": "A denominator is zero: divide by the sum of exp(z_k) over all k,"
                         " computed before the division.",
}
_NONE_HINT = ("Something is None: did you replace `a = None` with the softmax of z, and does"
              " my_softmax end with `return a`?")


@dataclass(frozen=True)
class _Case:
    label: str  # what is special about z (hidden_inputs.ORDINARY or a description)
    z: np.ndarray
    answer: np.ndarray | None  # None when my_softmax raised
    error: str | None  # "Name: message", quoted

    @property
    def described(self):
        if self.label == ORDINARY:
            return f"size {self.z.size}"
        return f"{self.label} (size {self.z.size})"


@dataclass(frozen=True)
class _Failure:
    kind: str
    text: str


def judge_softmax(run, secret):
    messages = _messages(run, secret)
    return Judgement(0.0 if messages else 1.0, tuple(messages))


def reference_softmax(z):
    """The true softmax, computed stably: subtracting the max leaves softmax unchanged."""
    exp_z = np.exp(z - np.max(z))
    return exp_z / exp_z.sum()


def _messages(run, secret):
    if run.answer is None:
        return [failure_message(SUBJECT, run.failure) or _capture_raised(run.failure)]
    if not isinstance(run.answer, dict):
        raise Unreadable("not a record")
    if run.answer.get("missing") == SUBJECT:
        return [Message("softmax.missing", "my_softmax is not defined when the tests run"
                        f"{answer_cell_stopped(run)}: run its cell without errors and keep the"
                        " name my_softmax.")]
    cases = _cases(run.answer, secret)
    if cases is None:
        return [Message("softmax.tampered", "The hidden test inputs were changed while grading:"
                        " my_softmax was not given the test's inputs. Submit a notebook whose"
                        " tests are untouched.")]
    return _case_messages(cases)


def _capture_raised(failure):
    error = quote(f"{failure.error_name}: {failure.error_value}") if failure else "no reason"
    return Message("softmax.capture_raised", f"The hidden test of my_softmax stopped with"
                   f" {error}: does the notebook replace a built-in name (print, sys.stdout)"
                   " or a NumPy function?")


def _cases(captured, secret):
    """The captured cases; None if their inputs are not the hidden inputs that `secret`
    gives (the kernel was sent those: anything else is tampering)."""
    entries = captured.get("cases")
    if not isinstance(entries, list):
        raise Unreadable("no list of cases")
    hidden = softmax_inputs(secret)
    if len(entries) != len(hidden):
        return None
    cases = []
    for entry, (label, expected_z) in zip(entries, hidden, strict=True):
        if not isinstance(entry, dict):
            raise Unreadable("a case is not a record")
        z = number_array(entry.get("z"))
        # JSON carries floats exactly, so anything but equality means other inputs.
        if z is None or z.shape != expected_z.shape or not np.array_equal(z, expected_z):
            return None
        cases.append(_case(label, expected_z, entry))
    return cases


def _case(label, z, entry):
    error = captured_error(entry, "error")
    if error is not None:
        return _Case(label, z, None, error)
    answer = number_array(entry.get("a"))
    if answer is None:
        raise Unreadable("an answer that is not an array of numbers")
    return _Case(label, z, answer, None)


def _case_messages(cases):
    failing = [(case, failure) for case in cases if (failure := _diagnose(case))]
    if not failing:
        return []
    constant = _constant_output_message(cases)
    if constant:
        return [constant]
    case, failure = _most_telling(failing)
    messages = [_case_message(case, failure)]
    # e.g. an IndexError for long inputs and too many values for short ones: a fixed length.
    other_facts = [(case, other) for case, other in failing
                   if other.kind in _FACT_KINDS and other.kind != failure.kind]
    if other_facts:
        messages.append(_case_message(*_most_telling(other_facts)))
    where = _where_message(cases, [case for case, _ in failing])
    return messages + ([where] if where else [])


def _most_telling(failing):
    """The failure to explain: the mistake seen on most inputs, shown on a small input.

    On a single input two formulas can coincide (for two values, skipping the first term
    is exp(z - max(z)) when the second is the larger); across inputs the real one prevails.
    """
    kinds = [failure.kind for _, failure in failing]
    kind = min(kinds, key=lambda kind: (-kinds.count(kind), _KIND_RANK.index(kind)))
    # The smallest input that shows it, but one of two values or more if there is one:
    # a single value says little about a formula (its softmax is always 1).
    return min(((case, failure) for case, failure in failing if failure.kind == kind),
               key=lambda pair: (pair[0].z.size == 1, pair[0].z.size))


def _case_message(case, failure):
    text = f"On a hidden input of {case.described}, z = {fmt(case.z)}: {failure.text}"
    if case.answer is not None:
        text += f" Expected a = {fmt(reference_softmax(case.z))}, got a = {fmt(case.answer)}."
    return Message(f"softmax.{failure.kind}", text)


def _where_message(cases, failing):
    """Which inputs fail, said so that it points at the cause: the length of z (ordinary
    inputs of some lengths pass, of others fail) or its values (every ordinary input
    passes). Length 1 proves nothing: many wrong formulas give 1.0 for a single value."""
    failed = {id(case) for case in failing}
    ordinary = [case for case in cases if case.label == ORDINARY and case.z.size > 1]
    wrong_sizes = [case.z.size for case in ordinary if id(case) in failed]
    right_sizes = [case.z.size for case in ordinary if id(case) not in failed]
    if wrong_sizes and right_sizes:
        return Message("softmax.length", f"my_softmax is right for inputs of size"
                       f" {listed(right_sizes)} but wrong for size {listed(wrong_sizes)}: the"
                       " outcome depends on the length of z. Does your code assume a fixed"
                       " length? Use N = z.shape[0].")
    if not wrong_sizes:
        special = [case.described for case in cases if id(case) in failed]
        return Message("softmax.values", f"my_softmax is right for ordinary inputs of every"
                       f" length but wrong for inputs with {listed(special)}: the mistake"
                       " depends on the values in z, not on its length. Does the code add a"
                       " constant, round, or clip somewhere?")
    return None


def _diagnose(case):
    """What is wrong with one answer, most specific mistake first; None if it is right."""
    if case.error is not None:
        return _raised_failure(case.error)
    z, got = case.z, case.answer
    # The capture's numpy.asarray(None, dtype=float) turns a returned None into a lone NaN.
    if got.ndim == 0 and np.isnan(got):
        return _Failure("none", "my_softmax returned None (or NaN) instead of an array: compute"
                                " the softmax of z into `a` and end the function with"
                                " `return a`.")
    if got.shape != z.shape:
        return _Failure("shape", _shape_text(z, got))
    expected = reference_softmax(z)
    # The student's numbers may be anything; overflow or NaN here only means "wrong".
    with np.errstate(all="ignore"):
        if np.all(np.isfinite(got)) and np.allclose(got, expected, rtol=RTOL, atol=ATOL):
            return None
        return _known_mistake(z, got) or _property_failure(z, got)


def _raised_failure(error_text):
    name = error_text.split(":", 1)[0].strip()
    kind = "index" if name == "IndexError" else "raised"
    hint = _NONE_HINT if "NoneType" in error_text else _HINTS.get(name, "")
    text = f"my_softmax raised {error_text}."
    return _Failure(kind, f"{text} {hint}" if hint else text)


def _shape_text(z, got):
    expected = f"an array of shape {z.shape}"
    if got.ndim == 0:
        return (f"it returned a single number instead of {expected}: return the whole array a,"
                " one probability per element of z.")
    if got.ndim > 1 and got.size == z.size:
        return (f"it returned a {got.ndim}-D array of shape {got.shape} instead of {expected}:"
                " create a with np.zeros(N), a 1-D array like z.")
    if got.ndim > 1:
        return (f"it returned an array of shape {got.shape} instead of {expected}: a needs one"
                " probability per element of z.")
    return (f"it returned {got.size} values instead of {z.size}: a needs one probability per"
            " element of z.")


def _known_mistake(z, got):
    """Recognise frequent wrong formulas by recomputing them."""
    exp_z = np.exp(z)
    candidates = [
        ("unnormalised", exp_z, "it returned exp(z) without normalising: divide each exp(z_j)"
                                " by the sum of exp(z_k) over all k."),
        ("unnormalised", np.exp(z - np.max(z)), "it returned exp(z - max(z)) without"
                                                " normalising: divide by the sum over all k."),
        ("sum_of_z", exp_z / np.sum(z), "it divided by the sum of z: divide by the sum of"
                                        " exp(z_k) instead."),
    ]
    if z.size > 1:
        skipped = ("the sum in the denominator skips the {} element of z (an off-by-one loop):"
                   " add exp(z_k) for every k in range(N).")
        candidates += [("off_by_one", exp_z / exp_z[1:].sum(), skipped.format("first")),
                       ("off_by_one", exp_z / exp_z[:-1].sum(), skipped.format("last"))]
    for kind, wrong, text in candidates:
        if np.allclose(got, wrong, rtol=RTOL, atol=ATOL):
            return _Failure(kind, text)
    return None


def _property_failure(z, got):
    if not np.all(np.isfinite(got)):
        return _Failure("not_finite", "the output contains NaN or infinity: is a denominator"
                                      " zero, or an exponential too large?")
    if np.any(got < 0):
        return _Failure("negative", "probabilities cannot be negative: exp(z) is always"
                                    " positive, so use exp(z) rather than z.")
    if np.any(got > 1):
        return _Failure("above_one", "a probability cannot be above 1: divide each exp(z_j) by"
                                     " the sum of exp(z_k) over all k.")
    if not np.isclose(got.sum(), 1.0, rtol=0.0, atol=SUM_ATOL):
        return _Failure("sum", f"the outputs should sum to 1, they sum to {got.sum():.4g}: did"
                               " you divide by the sum of exp(z_k) over all k?")
    if not _follows_order(z, got):
        return _Failure("order", "the outputs are not in the order of z (did you sort them?):"
                                 " a_j belongs at the same index as z_j, and a larger z_j gets"
                                 " a larger a_j.")
    return _Failure("values", "the values differ from softmax:"
                              " a_j = exp(z_j) / sum over k of exp(z_k).")


def _follows_order(z, got):
    """Whether equal z get equal a, and a larger z always a larger a."""
    z_order = np.sign(z[:, None] - z[None, :])
    gaps = got[:, None] - got[None, :]
    scale = np.maximum(np.abs(got[:, None]), np.abs(got[None, :]))
    got_order = np.where(np.abs(gaps) <= 1e-9 * scale, 0.0, np.sign(gaps))
    return np.array_equal(z_order, got_order)


def _constant_output_message(cases):
    """A function that ignores z returns the same array whatever z is."""
    # A lone number (None, or a sum) is better explained case by case.
    answers = [case.answer for case in cases if case.answer is not None and case.answer.ndim]
    if len(answers) < 2:
        return None
    first = answers[0]
    with np.errstate(all="ignore"):
        if not all(answer.shape == first.shape and np.allclose(answer, first, equal_nan=True)
                   for answer in answers[1:]):
            return None
        public = (first.shape == PUBLIC_EXAMPLE.shape
                  and np.allclose(first, reference_softmax(PUBLIC_EXAMPLE), atol=1e-3))
    text = (f"Your function returns the same values for every input (a = {fmt(first)})"
            f" on all {len(answers)} hidden inputs")
    if public:
        text += ", the softmax of the public example z = [1, 2, 3, 4]"
    return Message("softmax.constant", text + ": compute a from the z it is given, not from"
                   " numbers written in the code.")
