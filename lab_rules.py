"""The lab's rules, written once: what counts as a right answer to each exercise, and what
a student whose answer is not right is told.

Three checkers use this module and nothing else decides: the public tests
(public_tests.py, on the inputs shown in the notebook), the hidden tests that plain
nbgrader runs (written into the notebook), and the grader, which judges in its own process
what its capture recorded in the student's kernel. Each gathers what the answer did as the
same plain data (lists of numbers, layer descriptions) and hands it to the functions here:

    softmax_problems(cases)                  what is wrong with my_softmax, [] if nothing
    model_problems(facts, batch)             what is wrong with the model, [] if nothing

Each problem is a Problem(kind, text): `kind` names the mistake ("softmax.unnormalised"),
`text` is the sentence a student reads. The rules are not secret; the hidden inputs are.
Only NumPy is needed here.
"""

import re
import warnings
from dataclasses import dataclass
from itertools import pairwise
from typing import NamedTuple

import numpy as np


class Problem(NamedTuple):
    kind: str  # the mistake's name, e.g. "softmax.unnormalised"
    text: str  # what the student reads


class Unreadable(ValueError):
    """Facts that no honest gathering can have made (malformed or forged data)."""


def fmt(values):
    """Numbers for a message: one line, 3 decimals, long arrays elided."""
    if np.ndim(values) == 0:  # array2string writes 1.0 as "1.", which ends sentences badly
        return f"{float(values):.4g}"
    text = np.array2string(np.asarray(values, dtype=float), precision=3, suppress_small=True,
                           threshold=16, edgeitems=3, separator=", ", max_line_width=10_000)
    return " ".join(text.split())


def _a(word):
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Keras wraps errors in lines that say nothing about the mistake.
_BOILERPLATE = re.compile(r"^(Exception encountered when calling|Arguments received by|•)")


def one_line(text, limit=200):
    """A student's own text (an error message) short and on one line: no colour codes, no
    Keras wrapping."""
    lines = [line.strip() for line in _ANSI_ESCAPE.sub("", str(text)).splitlines()]
    kept = [line for line in lines if line and not _BOILERPLATE.match(line)]
    text = " ".join(" ".join(kept or lines).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def number_array(value):
    """`value` as a float array if it is a rectangular (nested) list of numbers, else None."""
    try:
        array = np.array(value)
    except Exception:  # ragged lists, absurd nesting: all just mean "not an array"
        return None
    if array.dtype.kind not in "iuf":
        return None
    return array.astype(float)


# ================================================================ UNQ_C1, my_softmax

RTOL = 1e-5
ATOL = 1e-8
SUM_ATOL = 1e-6
# Two outputs closer than this, relative to the larger, count as equal when their order
# is compared with the order of z.
ORDER_RTOL = 1e-9
ORDINARY = "ordinary"


@dataclass(frozen=True)
class SoftmaxCase:
    """What my_softmax did with one input."""

    z: np.ndarray
    answer: np.ndarray | None = None  # what it returned, as floats; None if not numbers
    error: str | None = None  # "Name: message" when it raised
    returned: str | None = None  # the type it returned when that was not numbers
    label: str = ORDINARY  # what is special about z, or ORDINARY
    # What Python warned while it ran, if anything: the public test shows it beside the
    # problems (on stdout, where a student reads it); the grader's capture records none.
    warning: str | None = None

    @property
    def described(self):
        if self.label == ORDINARY:
            return f"size {self.z.size}"
        return f"{self.label}, size {self.z.size}"


def reference_softmax(z):
    """The true softmax, computed stably: subtracting the max leaves softmax unchanged."""
    exp_z = np.exp(z - np.max(z))
    return exp_z / exp_z.sum()


def softmax_cases(function, inputs):
    """Run `function` on each (label, z) of `inputs`: the SoftmaxCase of each. For the
    public and plain nbgrader's tests; the grader's capture records the same data."""
    cases = []
    for label, z in inputs:
        z = np.array(z, dtype=float)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = function(z.copy())  # a copy: a student may change z in place
            except Exception as error:
                cases.append(SoftmaxCase(z, error=one_line(f"{type(error).__name__}: {error}"),
                                         label=label))
                continue
        warning = one_line(caught[0].message) if caught else None
        answer = _returned_numbers(result)
        cases.append(SoftmaxCase(z, answer, label=label, warning=warning,
                                 returned=None if answer is not None else type(result).__name__))
    return cases


def _returned_numbers(result):
    if result is None:
        return np.array(np.nan)  # what numpy makes of None: read as "returned None"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            answer = np.asarray(result, dtype=float)
        except (TypeError, ValueError):
            return None
    return answer


def softmax_problems(cases):
    """What is wrong with my_softmax, from what it did with each input: [] when nothing."""
    failing = [(case, failure) for case in cases if (failure := _diagnose(case))]
    if not failing:
        return []
    constant = _constant_output_problem(cases)
    if constant:
        return [constant]
    formula = _formula_problem(cases)
    if formula:
        return [formula]
    case, failure = _most_telling(failing)
    problems = [_case_problem(case, failure)]
    # e.g. an IndexError for long inputs and too many values for short ones: a fixed length.
    other_facts = [(case, other) for case, other in failing
                   if other.kind in _FACT_KINDS and other.kind != failure.kind]
    if other_facts:
        problems.append(_case_problem(*_most_telling(other_facts)))
    where = _where_problem(cases, failing)
    return problems + ([where] if where else [])


# Between mistakes seen on as many inputs, the most telling first.
_KIND_RANK = ("none", "raised", "index", "returned", "shape", "not_finite", "negative",
              "above_one", "sum", "order", "values")
# Plain facts, true whatever the formula: worth reporting beside another mistake.
_FACT_KINDS = ("none", "raised", "index", "returned", "shape")

_ERROR_HINTS = {
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
class _Failure:
    kind: str
    text: str


def _diagnose(case):
    """What is wrong with one answer as a plain fact or property; None if it is right."""
    if case.error is not None:
        name = case.error.split(":", 1)[0].strip()
        hint = _NONE_HINT if "NoneType" in case.error else _ERROR_HINTS.get(name, "")
        text = f"my_softmax raised {case.error}." + (f" {hint}" if hint else "")
        return _Failure("index" if name == "IndexError" else "raised", text)
    if case.answer is None:
        return _Failure("returned", f"my_softmax returned {_a(case.returned or 'value')}, not"
                                    " an array of numbers: return the NumPy array a.")
    z, got = case.z, case.answer
    if got.ndim == 0 and np.isnan(got):
        return _Failure("none", "my_softmax returned None (or NaN) instead of an array: compute"
                                " the softmax of z into `a` and end the function with"
                                " `return a`.")
    if got.shape != z.shape:
        return _Failure("shape", _shape_text(z, got))
    # The student's numbers may be anything; overflow or NaN here only means "wrong".
    with np.errstate(all="ignore"):
        if np.all(np.isfinite(got)) and np.allclose(got, reference_softmax(z), rtol=RTOL,
                                                    atol=ATOL):
            return None
        return _property_failure(z, got)


def _shape_text(z, got):
    expected = f"an array of shape {z.shape}"
    if got.ndim == 0:
        return (f"my_softmax returned a single number instead of {expected}: return the whole"
                " array a, one probability per element of z.")
    if got.ndim > 1 and got.size == z.size:
        return (f"my_softmax returned a {got.ndim}-D array of shape {got.shape} instead of"
                f" {expected}: is a wrapped in a list ([a], np.array([a])) or made 2-D"
                " (np.zeros((1, N)))? Return a 1-D array like z.")
    if got.ndim > 1:
        return (f"my_softmax returned an array of shape {got.shape} instead of {expected}: a"
                " needs one probability per element of z.")
    return (f"my_softmax returned {got.size} values instead of {z.size}: a needs one"
            " probability per element of z.")


def _property_failure(z, got):
    return _property_failures(z, got)[0]


def _property_failures(z, got):
    """Every property of a probability distribution over z that `got` breaks, the most
    telling first; "values" when it breaks none and is still wrong."""
    checks = (
        (not np.all(np.isfinite(got)),
         "not_finite", "The output contains NaN or infinity: is a denominator zero, or an"
                       " exponential too large?"),
        (np.any(got < 0),
         "negative", "Probabilities cannot be negative: exp(z) is always positive, so use"
                     " exp(z) rather than z."),
        (np.any(got > 1),
         "above_one", "A probability cannot be above 1: divide each exp(z_j) by the sum of"
                      " exp(z_k) over all k."),
        (not np.isclose(got.sum(), 1.0, rtol=0.0, atol=SUM_ATOL),
         "sum", f"The outputs should sum to 1, they sum to {got.sum():.6g}: did you divide"
                " each exp(z_j) by the sum of exp(z_k) over all k?"),
        (not follows_order(z, got),
         "order", "The outputs are not in the order of z (did you sort them, or mix up"
                  " indices?): a_j belongs at the same index as z_j, and a larger z_j gets a"
                  " larger a_j."),
    )
    broken = [_Failure(kind, text) for failed, kind, text in checks if failed]
    return broken or [_Failure("values", "The values differ from softmax:"
                                         " a_j = exp(z_j) / sum over k of exp(z_k).")]


def _failures(case):
    """Every failure of one wrong answer: its one plain fact, or every property it breaks."""
    first = _diagnose(case)
    if first.kind in _FACT_KINDS:
        return [first]
    with np.errstate(all="ignore"):
        return _property_failures(case.z, case.answer)


def follows_order(z, got):
    """Whether equal z get equal a, and a larger z always a larger a."""
    z_order = np.sign(z[:, None] - z[None, :])
    gaps = got[:, None] - got[None, :]
    scale = np.maximum(np.abs(got[:, None]), np.abs(got[None, :]))
    got_order = np.where(np.abs(gaps) <= ORDER_RTOL * scale, 0.0, np.sign(gaps))
    return np.array_equal(z_order, got_order)


def _log_softmax(z):
    return z - np.max(z) - np.log(np.sum(np.exp(z - np.max(z))))


# Wrong formulas students write, each recognised only when the answer equals it on every
# input (where the same answer also equals softmax, e.g. for one value, it proves nothing),
# so that what a student is told never depends on which inputs were drawn.
# (kind, what the answer computes, the sentence that names the mistake)
_FORMULAS = (
    ("softmax.integer_array", lambda z: np.trunc(reference_softmax(z)),
     "Every output is a whole number, the right probability cut down to its whole part"
     " (0, or 1 for a single value): a is an array of integers (np.zeros(N, dtype=int)?),"
     " which truncates whatever is stored in it. Create a with np.zeros(N), an array of"
     " floats."),
    ("softmax.integer_array", lambda z: np.trunc(np.exp(z)),
     "Every output is a whole number: a is an array of integers (np.zeros(N, dtype=int)?),"
     " which truncates whatever is stored in it. Create a with np.zeros(N), an array of"
     " floats, and divide each exp(z_j) by the sum of exp(z_k) over all k."),
    ("softmax.unnormalised", np.exp,
     "It returned exp(z) without normalising: divide each exp(z_j) by the sum of exp(z_k)"
     " over all k."),
    ("softmax.unnormalised", lambda z: np.exp(z - np.max(z)),
     "It returned exp(z - max(z)) (or exp(z) / max(exp(z))) without normalising: divide each"
     " exp(z_j) by the sum of exp(z_k) over all k."),
    ("softmax.sum_overwritten", lambda z: np.exp(z) / np.exp(z[-1]),
     "The denominator is exp of the last z only: the loop that should add up exp(z_k)"
     " overwrites its sum (ez_sum = ...) instead of adding to it (ez_sum += ...)."),
    ("softmax.no_exp", lambda z: z - np.max(z),
     "The outputs are z - max(z), the exponents themselves (zero or negative, never"
     " probabilities): take exp of them, then divide each by the sum of them all."),
    ("softmax.no_exp", lambda z: z / np.sum(z),
     "The outputs are z divided by the sum of z, with no exp: a_j = exp(z_j) / sum over k of"
     " exp(z_k)."),
    ("softmax.sum_of_z", lambda z: np.exp(z) / np.sum(z),
     "It divided by the sum of z: divide by the sum of exp(z_k) instead."),
    ("softmax.off_by_one", lambda z: np.exp(z) / np.sum(np.exp(z[1:])),
     "The sum in the denominator skips the first element of z (an off-by-one loop): add"
     " exp(z_k) for every k in range(N)."),
    ("softmax.off_by_one", lambda z: np.exp(z) / np.sum(np.exp(z[:-1])),
     "The sum in the denominator skips the last element of z (an off-by-one loop): add"
     " exp(z_k) for every k in range(N)."),
    ("softmax.log_softmax", _log_softmax,
     "The outputs are log-probabilities (a log-softmax: exp of them sums to 1): return the"
     " probabilities themselves, a_j = exp(z_j) / sum over k of exp(z_k), without a log."),
    ("softmax.abs", lambda z: reference_softmax(np.abs(z)),
     "The outputs are the softmax of abs(z), not of z: the sign of z_j matters, so use"
     " exp(z_j) itself, not exp(abs(z_j))."),
    ("softmax.negated", lambda z: reference_softmax(-z),
     "The outputs are the softmax of -z: use exp(z_j), not exp(-z_j), so that a larger z_j"
     " gets a larger a_j."),
    ("softmax.ones", np.ones_like,
     "Every output is 1: each exp(z_j) was divided by itself rather than by the sum over all"
     " k (is the sum taken inside the loop over j, or over the wrong axis?)."),
)


def _formula_problem(cases):
    """The wrong formula the answer computes on every input, if it is a known one."""
    answered = [case for case in cases if case.answer is not None and case.error is None
                and case.answer.shape == case.z.shape]
    # One value proves nothing (many formulas give 1.0 for it), nor do inputs that raised.
    if len(answered) != len(cases) or not any(case.z.size > 1 for case in answered):
        return None
    with np.errstate(all="ignore"):
        for kind, formula, text in _FORMULAS:
            if all(np.allclose(case.answer, formula(case.z), rtol=RTOL, atol=ATOL)
                   for case in answered):
                return Problem(kind, f"{text} {_evidence(_shown_case(answered))}")
    return None


def _shown_case(cases):
    """The input to show: the first wrong one, of two values or more if there is one
    (a single value says little about a formula: its softmax is always 1). Inputs come
    simplest first, the public example first of all."""
    wrong = [case for case in cases if _diagnose(case)] or cases
    return next((case for case in wrong if case.z.size > 1), wrong[0])


def _evidence(case):
    text = f"On the input z = {fmt(case.z)} ({case.described}):"
    if case.answer is not None and case.answer.shape == case.z.shape:
        text += f" expected a = {fmt(reference_softmax(case.z))}, got a = {fmt(case.answer)}."
    elif case.answer is not None and not (case.answer.ndim == 0 and np.isnan(case.answer)):
        text += f" got a = {fmt(case.answer)}."
    else:
        text = text[:-1] + "."
    return text


def _most_telling(failing):
    """The failure to explain: a property every failing input breaks, if there is one (so
    that which inputs were drawn cannot change it), else the mistake seen on most inputs;
    shown on the first input that shows it (of two values or more if there is one)."""
    broken = [{failure.kind: failure for failure in _failures(case)} for case, _ in failing]
    shared = [kind for kind in _KIND_RANK if all(kind in kinds for kinds in broken)]
    if shared:
        kind = shared[0]
    else:
        kinds = [failure.kind for _, failure in failing]
        kind = min(kinds, key=lambda kind: (-kinds.count(kind), _KIND_RANK.index(kind)))
    showing = [(case, kinds[kind]) for (case, _), kinds in zip(failing, broken, strict=True)
               if kind in kinds]
    return next((pair for pair in showing if pair[0].z.size > 1), showing[0])


def _case_problem(case, failure):
    return Problem(f"softmax.{failure.kind}", f"{failure.text} {_evidence(case)}")


def _where_problem(cases, failing):
    """Which inputs fail, said so that it points at the cause: the length of z (ordinary
    inputs of some lengths pass, of others fail) or its values (every ordinary input
    passes). Length 1 proves nothing: many wrong formulas give 1.0 for a single value.

    A wrong formula may still be right by chance on a short input (a sorted output on one
    that was sorted already), so a length is blamed only for what a length decides: the
    answer's shape or an exception, or a clean split, every length up to some size right
    (four of them at least) and every longer one wrong."""
    failed = {id(case): failure for case, failure in failing}
    ordinary = [case for case in cases if case.label == ORDINARY and case.z.size > 1]
    wrong = [case for case in ordinary if id(case) in failed]
    right_sizes = [case.z.size for case in ordinary if id(case) not in failed]
    wrong_sizes = [case.z.size for case in wrong]
    facts = all(failed[id(case)].kind in _FACT_KINDS for case in wrong)
    split = len(right_sizes) >= 4 and max(right_sizes, default=0) < min(wrong_sizes, default=0)
    if wrong_sizes and right_sizes and (facts or split):
        return Problem("softmax.length", f"my_softmax is right for inputs of size"
                       f" {_listed(right_sizes)} but wrong for size {_listed(wrong_sizes)}: the"
                       " outcome depends on the length of z. Does your code assume a fixed"
                       " length? Use N = z.shape[0].")
    special = [case.described for case in cases
               if id(case) in failed and case.label != ORDINARY]
    if not wrong_sizes and special and len(ordinary) > 1:
        return Problem("softmax.special_values", f"my_softmax is right for ordinary inputs of every"
                       f" length but wrong for inputs with {_listed(special)}: the mistake"
                       " depends on the values in z, not on its length. Does the code add a"
                       " constant, round, or clip somewhere?")
    return None


def _listed(items):
    return ", ".join(str(item) for item in items)


def _constant_output_problem(cases):
    """A function that ignores z returns the same array whatever z is."""
    # A lone number (None, or a sum) is better explained case by case.
    answers = [case.answer for case in cases if case.answer is not None and case.answer.ndim]
    if len(answers) < 2 or len(answers) < len(cases):
        return None
    first = answers[0]
    with np.errstate(all="ignore"):
        if not all(answer.shape == first.shape and np.allclose(answer, first, equal_nan=True)
                   for answer in answers[1:]):
            return None
        public = (first.shape == PUBLIC_EXAMPLE.shape
                  and np.allclose(first, reference_softmax(PUBLIC_EXAMPLE), atol=1e-3))
    text = (f"Your function returns the same values for every input (a = {fmt(first)})"
            f" on all {len(answers)} inputs")
    if public:
        text += ", the softmax of the public example z = [1, 2, 3, 4]"
    return Problem("softmax.constant", text + ": compute a from the z it is given, not from"
                   " numbers written in the code.")


PUBLIC_EXAMPLE = np.array([1.0, 2.0, 3.0, 4.0])


# ================================================================ UNQ_C2, the model

HIDDEN_UNITS = (25, 15)
CLASSES = 10
INPUT_SIZE = 400
FORWARD_TOLERANCE = 1e-4
ACTIVATION_RTOL = 1e-5
ACTIVATION_ATOL = 1e-5
# Where activations differ visibly: far below and above the usual values (ReLU6 stops at
# 6, clipped logits at a bound, a leaky ReLU leaks on every negative), around 0, and at
# the usual ones.
ACTIVATION_PROBE = (-1000.0, -100.0, -7.0, -3.0, -0.5, 0.0, 0.5, 3.0, 5.5, 6.5, 7.0, 100.0,
                    1000.0)
# Each row of a batch the model is tried on is scaled by one of these, so that its layers
# compute values from about 1 to about 1000: a layer that differs from the right one only
# on large values (ReLU6, a clip) then gives other outputs.
ROW_SCALES = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)
# Layers that only apply an activation: probed like a Dense layer's activation.
ACTIVATION_LAYERS = ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "PReLU")


def _softmax_rows(x):
    exp_x = np.exp(x - x.max(axis=-1, keepdims=True))
    return exp_x / exp_x.sum(axis=-1, keepdims=True)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # never overflows, unlike 1 / (1 + exp(-x))


# What each activation computes, so that an activation is named by its behaviour on the
# probe: 'relu', keras relu and tf.nn.relu are all ReLU, 'linear' and None both linear.
# ReLU6 and the leaky ReLUs are named because they agree with ReLU on the usual values; the
# names read in "expected ReLU, got ...".
ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "linear": lambda x: x,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": _softmax_rows,
    "ReLU6 (it stops at 6)": lambda x: np.clip(x, 0.0, 6.0),
    "a leaky ReLU (slope 0.2 below 0)": lambda x: np.where(x > 0, x, 0.2 * x),
    "a leaky ReLU (slope 0.01 below 0)": lambda x: np.where(x > 0, x, 0.01 * x),
}


def activation_kind(probed):
    """Name an activation by what it computed on ACTIVATION_PROBE (`probed`, an array, or
    None when it could not be tested), not by how it was spelled."""
    if probed is None:
        return "no activation that could be tested"
    probe = np.array([ACTIVATION_PROBE])
    with np.errstate(all="ignore"):
        for kind, reference in ACTIVATIONS.items():
            expected = reference(probe)
            if probed.shape == expected.shape and np.allclose(probed, expected,
                                                              rtol=ACTIVATION_RTOL,
                                                              atol=ACTIVATION_ATOL):
                return kind
    return (f"an unexpected activation (it maps {fmt(probe[0])} to"
            f" {fmt(probed.reshape(-1))})")


# ---------------------------------------------------------------- gathering the facts

def model_facts(model, batch):
    """What `model` is and computes, as plain data: the same record the grader's capture
    makes in the student's kernel. `batch` is run through the model, so pass a copy
    when the model must stay unbuilt (public_tests.py does)."""
    facts = {"type": type(model).__name__,
             "sequential": any(cls.__name__ == "Sequential" for cls in type(model).__mro__)}
    try:
        facts["forward"] = _numbers(model(np.asarray(batch, dtype="float32"), training=False))
    except Exception as error:
        facts["forward_error"] = _error_record(error)
    facts["layers"] = [layer_facts(layer) for layer in list(getattr(model, "layers", None)
                                                              or [])]
    return facts


def _numbers(value):
    return np.asarray(value, dtype=float).tolist()


def _error_record(error):
    return {"error_name": type(error).__name__, "error_value": str(error)}


def layer_facts(layer):
    entry = {"class": type(layer).__name__, "name": str(getattr(layer, "name", ""))}
    for key in ("units", "use_bias", "trainable"):
        value = getattr(layer, key, None)
        if isinstance(value, bool | int):
            entry[key] = value
    try:
        weights = layer.get_weights()
        entry["weights"] = [_numbers(weight) for weight in weights]
        entry["weight_dtypes"] = [str(np.asarray(weight).dtype) for weight in weights]
    except Exception as error:
        entry["weights_error"] = _error_record(error)
    activation = getattr(layer, "activation", None)
    if activation is None and entry["class"] in ACTIVATION_LAYERS:
        activation = layer
    if activation is not None:
        try:
            entry["activation_probe"] = _numbers(activation(np.array([ACTIVATION_PROBE],
                                                                     dtype="float32")))
        except Exception as error:
            entry["activation_error"] = _error_record(error)
    return entry


def spread_rows(rows):
    """`rows` (a batch of fake images) with row i scaled by ROW_SCALES[i % 6]."""
    rows = np.asarray(rows, dtype="float32")
    scales = np.resize(np.array(ROW_SCALES, dtype="float32"), rows.shape[0])
    return rows * scales[:, None]


# ---------------------------------------------------------------- reading the facts

@dataclass(frozen=True)
class Layer:
    index: int
    kind: str  # the layer's class name, e.g. "Dense"
    name: str
    units: int | None
    use_bias: bool | None
    trainable: bool | None
    weights: tuple | None  # of float arrays; None when not recorded (see weights_error)
    weight_dtypes: tuple
    weights_error: str | None
    activation: str | None  # what its activation computes ("relu", ...); None: it has none

    @property
    def where(self):
        return f"layers[{self.index}] ('{self.name}')"


def read_layers(facts):
    """The layers a facts record describes; Unreadable if it is malformed."""
    entries = facts.get("layers")
    if not isinstance(entries, list):
        raise Unreadable("no list of layers")
    return [_read_layer(index, entry) for index, entry in enumerate(entries)]


def _read_layer(index, entry):
    if not isinstance(entry, dict) or not isinstance(entry.get("class"), str):
        raise Unreadable("a layer without a class name")
    units = entry.get("units")
    if units is not None and (isinstance(units, bool) or not isinstance(units, int)):
        raise Unreadable("units that are not a whole number")
    for key in ("use_bias", "trainable"):
        if entry.get(key) is not None and not isinstance(entry[key], bool):
            raise Unreadable(f"{key} that is not True or False")
    dtypes = entry.get("weight_dtypes", [])
    if not isinstance(dtypes, list) or not all(isinstance(name, str) for name in dtypes):
        raise Unreadable("weight dtypes that are not names")
    return Layer(index=index, kind=one_line(entry["class"], 60),
                 name=one_line(entry.get("name", ""), 60), units=units,
                 use_bias=entry.get("use_bias"), trainable=entry.get("trainable"),
                 weights=_read_weights(entry),
                 weight_dtypes=tuple(one_line(name, 30) for name in dtypes),
                 weights_error=error_text(entry, "weights_error"),
                 activation=_read_activation(entry))


def _read_weights(entry):
    if "weights" not in entry:
        return None
    if not isinstance(entry["weights"], list):
        raise Unreadable("weights that are not a list")
    arrays = tuple(number_array(array) for array in entry["weights"])
    if any(array is None for array in arrays):
        raise Unreadable("weights that are not arrays of numbers")
    return arrays


def _read_activation(entry):
    error = error_text(entry, "activation_error")
    if error is not None:
        return f"an activation that fails on a test input ({one_line(error, 120)})"
    if "activation_probe" not in entry:
        return None
    probed = number_array(entry["activation_probe"])
    if probed is None:
        raise Unreadable("an activation probe that is not an array of numbers")
    return activation_kind(probed)


def error_text(entry, key):
    """An {"error_name", "error_value"} record of an exception, as 'Name: message', or
    None when `entry` has no such key."""
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(value.get(part, ""), str) for part in ("error_name", "error_value")):
        raise Unreadable(f"{key} that is not an error record")
    return one_line(f"{value.get('error_name', '')}: {value.get('error_value', '')}")


# ---------------------------------------------------------------- judging the facts

def model_problems(facts, batch, classes=CLASSES, input_size=INPUT_SIZE):
    """What is wrong with the model a facts record describes (see model_facts), whose
    "forward" is its output on `batch`: [] when nothing. Checked in three stages, stopping
    at the first with problems (later ones would only repeat their consequences): the
    layers asked for, the weights they hold, what the model computes."""
    if not isinstance(facts, dict):
        raise Unreadable("not a record")
    layers = read_layers(facts)
    units = (*HIDDEN_UNITS, classes)
    return (_structure_problems(facts, layers, units)
            or _weight_problems(facts, layers, units, input_size)
            or _forward_problems(facts, layers, np.asarray(batch, dtype=float), units))


def _dense(layers):
    return [layer for layer in layers if layer.kind == "Dense"]


def _structure_problems(facts, layers, units):
    if not layers and facts.get("sequential") is not True:
        model_type = facts.get("type")
        described = one_line(model_type, 60) if isinstance(model_type, str) else "value"
        return [Problem("model.no_layers", f"`model` is {_a(described)} with no layers:"
                        " expected a Keras Sequential model of three Dense layers,"
                        " Sequential([Dense(25, ...), Dense(15, ...), Dense(10, ...)]).")]
    problems = []
    if facts.get("sequential") is False:
        problems.append(_not_sequential_problem(facts))
    separate = _separate_activations(layers)
    problems += [_separate_activation_problem(dense, after) for dense, after in separate]
    handled = {after.index for _, after in separate}
    problems += [Problem("model.not_dense", f"{layer.where} is {_a(layer.kind)} layer: expected"
                         " only Dense layers (an Input is fine).")
                 for layer in layers if layer.kind not in ("Dense", "InputLayer")
                 and layer.index not in handled]
    dense = _dense(layers)
    if len(dense) != len(units):
        return problems + [_layer_count_problem(dense, units)]
    problems += _units_problems(dense, units)
    acting = {dense.index: after.activation for dense, after in separate}
    problems += _activation_problems(dense, acting)
    problems += [Problem("model.no_bias", f"{layer.where} has use_bias=False: expected a bias"
                         " in every layer (the default); remove use_bias=False.")
                 for layer in dense if layer.use_bias is False]
    problems += [Problem("model.frozen", f"{layer.where} is frozen (trainable=False): its"
                         " weights would never change in training, and the expected summary"
                         " says Non-trainable params: 0. Remove trainable=False.")
                 for layer in dense if layer.trainable is False]
    return problems


def _not_sequential_problem(facts):
    model_type = facts.get("type")
    described = one_line(model_type, 60) if isinstance(model_type, str) else "model"
    return Problem("model.not_sequential", f"`model` is {_a(described)} model, not a"
                   " Sequential one: the exercise asks for Sequential([...]), and the cells"
                   " after the test take it apart with [layer1, layer2, layer3] ="
                   " model.layers, which needs exactly its three Dense layers (a functional"
                   " model lists its Input layer too). Put the same layers in"
                   " Sequential([tf.keras.Input(shape=(400,)), Dense(25, ...), ...]).")


def _separate_activations(layers):
    """(Dense layer, the activation layer right after it) for each Dense layer whose
    activation is linear and comes in a layer of its own."""
    return [(layer, after) for layer, after in pairwise(layers)
            if layer.kind == "Dense" and layer.activation == "linear"
            and after.kind in ACTIVATION_LAYERS]


def _separate_activation_problem(dense, after):
    return Problem("model.separate_activation", f"{after.where} is a separate {after.kind}"
                   f" layer ({after.activation}) after {dense.where}: put the activation"
                   f" inside the Dense layer, e.g. Dense({dense.units}, activation='relu')."
                   " The cells"
                   " after the test take the model apart with [layer1, layer2, layer3] ="
                   " model.layers, which needs exactly three Dense layers.")


def _layer_count_problem(dense, units):
    got_units = [layer.units for layer in dense]
    hint = "Is a layer missing?" if len(dense) < len(units) else "Remove the extra layer."
    return Problem("model.layer_count", f"Expected {len(units)} Dense layers with units"
                   f" {list(units)}, got {len(dense)} with units {got_units}. {hint}")


def _units_problems(dense, units):
    hidden = units[:len(HIDDEN_UNITS)]
    got_hidden = tuple(layer.units for layer in dense[:len(hidden)])
    if got_hidden == hidden[::-1] and hidden != hidden[::-1]:
        names = " and ".join(layer.where for layer in dense[:len(hidden)])
        swapped = [Problem("model.units_swapped", f"The hidden layers' units look swapped"
                           f" ({names}): expected {hidden[0]} then {hidden[1]}, got"
                           f" {got_hidden[0]} then {got_hidden[1]}.")]
        return swapped + _units_mismatches(dense[len(hidden):], units[len(hidden):])
    return _units_mismatches(dense, units)


def _units_mismatches(dense, units):
    return [Problem("model.units", f"{layer.where}: expected {want} units, got {layer.units}.")
            for layer, want in zip(dense, units, strict=True) if layer.units != want]


def _activation_problems(dense, acting):
    """`acting`: Dense layer index -> the activation a separate layer applies after it."""
    *hidden, output = dense
    problems = [_hidden_activation_problem(layer, acting.get(layer.index, layer.activation))
                for layer in hidden]
    problems.append(_output_activation_problem(output, acting.get(output.index,
                                                                  output.activation)))
    return [problem for problem in problems if problem]


def _hidden_activation_problem(layer, kind):
    if kind == "relu":
        return None
    text = (f"{layer.where}: expected ReLU, got {kind}. Use ReLU in the hidden layers"
            " (activation='relu').")
    if kind == "linear":
        text += " Without it, the layers collapse into a single linear map."
    return Problem("model.hidden_activation", text)


def _output_activation_problem(layer, kind):
    if kind == "linear":
        return None
    where = f"{layer.where} (the output layer)"
    if kind == "softmax":
        return Problem("model.softmax_output", f"{where}: expected a linear activation, got"
                       " softmax. Use a linear output (activation='linear'): the loss applies"
                       " softmax (from_logits=True).")
    return Problem("model.output_activation", f"{where}: expected a linear activation, got"
                   f" {kind}. The output must be raw scores (logits): use"
                   " activation='linear'; the loss applies softmax (from_logits=True).")


def _weight_problems(facts, layers, units, input_size):
    dense = _dense(layers)
    problems = [problem for layer in dense
                if (problem := _weights_readable_problem(facts, layer))]
    if problems:
        return problems
    sizes = (input_size, *units)
    kernel = dense[0].weights[0]
    if kernel.ndim == 2 and kernel.shape[0] != input_size:
        return [Problem("model.input_size", f"The model expects {kernel.shape[0]} inputs, the"
                        f" images have {input_size}: use"
                        f" tf.keras.Input(shape=({input_size},)), one input per pixel."),
                *_parameter_count_problems(layers, sizes)]
    problems = _shape_problems(dense, sizes)
    problems += [Problem("model.not_finite", f"{layer.where} has NaN or infinite weights.")
                 for layer in dense
                 if not all(np.all(np.isfinite(array)) for array in layer.weights)]
    problems += [Problem("model.dtype", f"{layer.where} holds {_listed(sorted(odd))} weights:"
                         " expected float32, Keras's default (the expected summary's 41.31 KB"
                         " is 10,575 float32 numbers). Remove dtype=... from the layer.")
                 for layer in dense
                 if (odd := set(layer.weight_dtypes) - {"float32"})]
    return problems + _parameter_count_problems(layers, sizes)


def _weights_readable_problem(facts, layer):
    if layer.weights_error is not None:
        return Problem("model.weights_error", f"{layer.where}: its weights could not be read"
                       f" ({layer.weights_error}).")
    if not layer.weights:
        forward_error = error_text(facts, "forward_error")
        if forward_error is not None:
            return Problem("model.not_built", f"The model could not run on a batch of test"
                           f" images ({forward_error}), so {layer.where} has no weights to"
                           " check.")
        return Problem("model.not_built", f"{layer.where} has no weights: is the model built?")
    if len(layer.weights) != 2:
        return Problem("model.weight_arrays", f"{layer.where} has {len(layer.weights)} weight"
                       " arrays, expected 2 (a kernel and a bias).")
    return None


def _shape_problems(dense, sizes):
    problems = []
    for layer, (n_in, n_out) in zip(dense, pairwise(sizes), strict=True):
        kernel, bias = layer.weights
        if kernel.shape != (n_in, n_out) or bias.shape != (n_out,):
            problems.append(Problem("model.weight_shapes", f"{layer.where}: expected a kernel"
                                    f" of shape {(n_in, n_out)} and a bias of shape"
                                    f" {(n_out,)}, got {kernel.shape} and {bias.shape}."))
    return problems


def _parameter_count_problems(layers, sizes):
    # Each Dense layer has a weight per (input, unit) pair and a bias per unit.
    expected = sum((n_in + 1) * n_out for n_in, n_out in pairwise(sizes))
    got = sum(array.size for layer in layers for array in layer.weights or ())
    if got == expected:
        return []
    details = "; ".join(f"{layer.where}: {sum(array.size for array in layer.weights):,}"
                        for layer in _dense(layers))
    return [Problem("model.parameters", f"Expected {expected:,} parameters in total, got"
                    f" {got:,} ({details}).")]


def _forward_problems(facts, layers, batch, units):
    expected_shape = (batch.shape[0], units[-1])
    forward_error = error_text(facts, "forward_error")
    if forward_error is not None:
        return [Problem("model.forward_error", f"The model could not run on a batch of"
                        f" {batch.shape[0]} images of {batch.shape[1]} pixels: it raised"
                        f" {forward_error}.")]
    got = number_array(facts.get("forward"))
    if got is None:
        raise Unreadable("no model output")
    if got.shape != expected_shape:
        return [Problem("model.output_shape", f"A batch of {batch.shape[0]} images should give"
                        f" an output of shape {expected_shape}, got {got.shape}.")]
    if not np.all(np.isfinite(got)):
        return [Problem("model.output_not_finite", "The model's output contains NaN or"
                        " infinity on a batch of test images.")]
    with np.errstate(all="ignore"):
        expected = numpy_forward(batch, _dense(layers))
        if outputs_agree(got, expected):
            return []
        largest = float(np.nanmax(np.abs(got - expected)))
    return [Problem("model.forward_mismatch", f"The model's output does not match its layers:"
                    f" with its own weights, Dense(25, relu), Dense(15, relu), Dense(10,"
                    f" linear) give other outputs on the same test images (largest difference"
                    f" {largest:.3g}). Does the model override `call`, or skip or repeat a"
                    " layer?")]


def outputs_agree(got, expected):
    """Whether a model's float32 output matches the float64 recomputation: within
    FORWARD_TOLERANCE of each row's own scale (rows range from about 1 to 1000)."""
    scale = 1.0 + np.max(np.abs(expected), axis=-1, keepdims=True)
    return bool(np.all(np.abs(got - expected) <= FORWARD_TOLERANCE * scale))


def numpy_forward(x, dense):
    """What the Dense layers compute, one after the other, with their own weights: ReLU in
    the hidden layers, a linear output."""
    values = np.asarray(x, dtype=float)
    for number, layer in enumerate(dense, start=1):
        kernel, bias = layer.weights
        values = values @ kernel + bias
        if number < len(dense):
            values = np.maximum(values, 0.0)
    return values
