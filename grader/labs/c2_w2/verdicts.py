"""Points for the two exercises, judged from the plain data the hidden tests captured.

The hidden tests (cells UNQ_C1_test and UNQ_C2_test of the notebook) run in the student's
kernel and only print what the student's code returned, as JSON. Every decision is made
here, in the grader's own process, with NumPy only: no student code and no TensorFlow run
here. The captured data is never trusted: whatever its shape or type, a verdict is 0 or 50
points with messages that name the mistake, never an exception.
"""

import functools
import re
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from grader.records import ExerciseVerdict

EXERCISE_POINTS = 50
MAX_MESSAGES = 3

# ---------------------------------------------------------------- the hidden inputs
# The recipes of the hidden tests, in one place: they must stay equal to the code in
# `_grader_capture_unq_c1` and `_grader_capture_unq_c2`, the "### BEGIN HIDDEN TESTS"
# blocks of cells UNQ_C1_test and UNQ_C2_test in C2_W2_Assignment.ipynb. Change both together.

# The grader draws a new seed per batch and passes it to the kernel in the environment
# variable HIDDEN_SEED_VARIABLE; the model's batch uses the seed plus one. Without it (plain
# nbgrader, the tests here) the hidden tests use DEFAULT_HIDDEN_SEED.
HIDDEN_SEED_VARIABLE = "GRADER_HIDDEN_SEED"
DEFAULT_HIDDEN_SEED = 20261129
MODEL_BATCH_SHAPE = (6, 400)
# Where activations differ visibly: negatives, zero, positives.
ACTIVATION_PROBE = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0]], dtype="float32")


def softmax_hidden_inputs(seed=DEFAULT_HIDDEN_SEED):
    """The z vectors the hidden test passes to my_softmax, in the order it passes them."""
    rng = np.random.default_rng(seed)
    cases = [rng.uniform(-8.0, 8.0, size) for size in (1, 2, 5, 10, 37)]
    cases += [rng.uniform(-30.0, -10.0, 6), rng.uniform(0.0, 1e-3, 7),
              np.full(3, 5.0), rng.permutation(np.arange(-4.0, 5.0))]
    return cases


def model_hidden_batch(seed=DEFAULT_HIDDEN_SEED):
    """The batch of 6 fake images the hidden test feeds to the model."""
    rng = np.random.default_rng(seed + 1)
    return rng.uniform(0.0, 1.0, MODEL_BATCH_SHAPE).astype("float32")


# ---------------------------------------------------------------- shared helpers

class _Unreadable(Exception):
    """The captured data is not what the capture code can print: malformed or tampered."""


def _verdict(exercise, messages):
    points = EXERCISE_POINTS if not messages else 0
    return ExerciseVerdict(exercise, points, EXERCISE_POINTS, tuple(messages[:MAX_MESSAGES]))


def _judged_safely(exercise, subject, messages_of, captured, cell_error):
    try:
        messages = messages_of(captured, cell_error)
    except _Unreadable as problem:
        messages = [f"The grader could not read what the hidden test recorded for {subject}"
                    f" ({problem}). An ordinary solution never causes this: please ask your"
                    " instructor to look at your submission."]
    except Exception as error:  # a grader bug must cost one verdict, not the whole batch
        messages = [f"The grader failed while judging {subject} ({type(error).__name__})."
                    " This is not your mistake: please ask your instructor to regrade it."]
    return _verdict(exercise, messages)


def _number_array(value):
    """`value` as a float array if it is a rectangular (nested) list of numbers, else None."""
    try:
        array = np.array(value)
    except Exception:  # ragged lists, absurd nesting: all just mean "not an array"
        return None
    # Strings, None, dicts, bools and ints too big for int64 give other kinds.
    if array.dtype.kind not in "iuf":
        return None
    return array.astype(float)


def _fmt(values):
    if np.ndim(values) == 0:  # array2string writes 1.0 as "1.", which ends sentences badly
        return f"{float(values):.4g}"
    text = np.array2string(np.asarray(values, dtype=float), precision=3, suppress_small=True,
                           threshold=12, edgeitems=3, separator=", ", max_line_width=10_000)
    return " ".join(text.split())  # 2-D arrays print a row per line; messages are one line


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Keras wraps errors in lines that say nothing about the mistake.
_BOILERPLATE = re.compile(r"^(Exception encountered when calling|Arguments received by|•)")


def _quote(error, limit=200):
    """A student's error text, short and on one line: no colour codes, no Keras wrapping."""
    text = _ANSI_ESCAPE.sub("", str(error))
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not _BOILERPLATE.match(line)]
    text = " ".join(" ".join(kept or lines).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _error_name(error_text):
    name = error_text.split(":", 1)[0].strip()
    return name if name.isidentifier() else ""


_UNDEFINED_NAME = re.compile(r"^NameError: name '([^']*)' is not defined")


def _undefined_name(error_text):
    """The name a NameError is about, or None for any other error."""
    match = _UNDEFINED_NAME.match(error_text)
    return match.group(1) if match else None


def _no_capture_message(subject, cell_error):
    """Why the hidden test printed nothing, from how its cell ended."""
    if not cell_error:
        return (f"The hidden test of {subject} printed no answer: its cell stopped before the"
                " end. Run the whole notebook (Restart & Run All) and check that no cell fails.")
    quoted = _quote(cell_error)
    if quoted.startswith("ImitatedAnswer"):
        return (f"The hidden test of {subject} was imitated: its result line was printed more"
                " than once, so none of them can be believed. Code that prints the grader's"
                " own output gets no points; an instructor may review this notebook.")
    if quoted.startswith("CellTimeoutError"):
        return (f"The hidden test of {subject} ran past its time limit and was stopped: does a"
                " loop never end (e.g. a while loop whose counter never changes)?")
    if quoted.startswith("KeyboardInterrupt"):
        return (f"The hidden test of {subject} was interrupted (KeyboardInterrupt) before it"
                " finished: usually code that runs far too long, such as a loop that never ends.")
    if "kernel died" in quoted.lower():
        return (f"Python stopped (the kernel died) while the hidden test of {subject} ran:"
                " usually the code used far too much memory, or crashed Python.")
    return None


# ---------------------------------------------------------------- UNQ_C1: my_softmax

SOFTMAX_RTOL = 1e-5
SOFTMAX_ATOL = 1e-8
SUM_ATOL = 1e-6
PUBLIC_EXAMPLE = np.array([1.0, 2.0, 3.0, 4.0])

# Between mistakes seen on as many inputs, the most telling first: a recognised formula
# explains the other symptoms.
_KIND_RANK = ("unnormalised", "sum_of_z", "off_by_one", "none", "order", "raised", "index",
              "shape", "not_finite", "negative", "above_one", "sum", "values")
# Plain facts, true whatever the formula: worth reporting beside another mistake.
_FACT_KINDS = ("none", "raised", "index", "shape")
# Mistakes that often come from code written for one length of z only.
_LENGTH_KINDS = ("index", "shape", "sum", "values")

_SOFTMAX_HINTS = {
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
class _SoftmaxCase:
    z: np.ndarray
    answer: np.ndarray | None  # None when my_softmax raised
    error: str | None


@dataclass(frozen=True)
class _Failure:
    kind: str
    message: str


def softmax_verdict(captured, cell_error=None, *, seed=DEFAULT_HIDDEN_SEED):
    """Judge my_softmax from the UNQ_C1 capture: 50 points if right on every hidden input
    (those drawn from `seed`)."""
    return _judged_safely("UNQ_C1", "my_softmax", functools.partial(_softmax_messages, seed=seed),
                          captured, cell_error)


def _softmax_messages(captured, cell_error, *, seed):
    if captured is None:
        return [_no_capture_message("my_softmax", cell_error)
                or _softmax_cell_error_message(cell_error)]
    cases = _softmax_cases(captured, seed)
    if cases is None:
        return ["The hidden test inputs were changed while grading: my_softmax was not given"
                " the test's inputs. Submit a notebook whose hidden tests are untouched."]
    return _softmax_case_messages(cases)


def _softmax_cell_error_message(cell_error):
    quoted = _quote(cell_error)
    undefined = _undefined_name(quoted)
    if undefined == "my_softmax":
        return ("my_softmax is not defined when the tests run: run its cell without errors and"
                " keep the name my_softmax.")
    if undefined is not None:  # from inside my_softmax, or an earlier cell (imports) not run
        return (f"The test cell stopped with {quoted} before the hidden test could run. If"
                f" `{undefined}` is used inside my_softmax, check its spelling; otherwise run"
                " the notebook from the top (Restart & Run All) so that every earlier cell"
                " runs.")
    message = (f"The test cell stopped with {quoted} before the hidden test could run: it first"
               " calls my_softmax on the example z = [1, 2, 3, 4], and that call failed.")
    hint = _softmax_error_hint(quoted)
    return f"{message} {hint}" if hint else message


def _softmax_error_hint(error_text):
    if "NoneType" in error_text:
        return _NONE_HINT
    return _SOFTMAX_HINTS.get(_error_name(error_text), "")


def _softmax_cases(captured, seed):
    """The captured cases; None if their inputs are not the hidden inputs (tampering)."""
    if not isinstance(captured, dict) or not isinstance(captured.get("cases"), list):
        raise _Unreadable("no list of cases")
    expected_inputs = softmax_hidden_inputs(seed)
    if len(captured["cases"]) != len(expected_inputs):
        return None
    cases = []
    for entry, expected_z in zip(captured["cases"], expected_inputs, strict=True):
        if not isinstance(entry, dict):
            raise _Unreadable("a case is not a record")
        z = _number_array(entry.get("z"))
        # JSON carries floats exactly, so anything but equality means other inputs.
        if z is None or z.shape != expected_z.shape or not np.array_equal(z, expected_z):
            return None
        cases.append(_softmax_case(expected_z, entry))
    return cases


def _softmax_case(z, entry):
    if "error" in entry:
        if not isinstance(entry["error"], str):
            raise _Unreadable("an error that is not text")
        return _SoftmaxCase(z, None, entry["error"])
    answer = _number_array(entry.get("a"))
    if answer is None:
        raise _Unreadable("an answer that is not an array of numbers")
    return _SoftmaxCase(z, answer, None)


def _softmax_case_messages(cases):
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
    if len(failing) < len(cases):
        messages.append(_sizes_message(cases, failing, failure))
    return messages


def _most_telling(failing):
    """The failure to explain: the mistake seen on most inputs, shown on the smallest one.

    On a single input two formulas can coincide (for two values, skipping the first term
    is exp(z - max(z)) when the second is the larger); across inputs the real one prevails.
    """
    kinds = [failure.kind for _, failure in failing]
    kind = min(kinds, key=lambda kind: (-kinds.count(kind), _KIND_RANK.index(kind)))
    return min(((case, failure) for case, failure in failing if failure.kind == kind),
               key=lambda pair: pair[0].z.size)


def _case_message(case, failure):
    message = f"On a hidden input of size {case.z.size}, z = {_fmt(case.z)}: {failure.message}"
    if case.answer is not None:
        message += (f" Expected a = {_fmt(reference_softmax(case.z))},"
                    f" got a = {_fmt(case.answer)}.")
    return message


def _sizes_message(cases, failing, failure):
    # The hidden inputs all have different sizes, so a size names one input.
    wrong = sorted(case.z.size for case, _ in failing)
    right = sorted({case.z.size for case in cases} - set(wrong))
    message = (f"my_softmax is right for inputs of size {_listed(right)} but wrong for size"
               f" {_listed(wrong)}.")
    if failure.kind in _LENGTH_KINDS:
        message += " Does your code assume a fixed length of z? Use N = z.shape[0]."
    return message


def _listed(numbers):
    return ", ".join(str(number) for number in numbers)


def reference_softmax(z):
    """The true softmax, computed stably: subtracting the max leaves softmax unchanged."""
    exp_z = np.exp(z - np.max(z))
    return exp_z / exp_z.sum()


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
        return _Failure("shape", _shape_message(z, got))
    expected = reference_softmax(z)
    # The student's numbers may be anything; overflow or NaN here only means "wrong".
    with np.errstate(all="ignore"):
        if np.all(np.isfinite(got)) and np.allclose(got, expected, rtol=SOFTMAX_RTOL,
                                                    atol=SOFTMAX_ATOL):
            return None
        return _known_mistake(z, got) or _property_failure(z, got)


def _raised_failure(error_text):
    quoted = _quote(error_text)
    kind = "index" if _error_name(quoted) == "IndexError" else "raised"
    message = f"my_softmax raised {quoted}."
    hint = _softmax_error_hint(quoted)
    return _Failure(kind, f"{message} {hint}" if hint else message)


def _shape_message(z, got):
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
    for kind, wrong, message in candidates:
        if np.allclose(got, wrong, rtol=SOFTMAX_RTOL, atol=SOFTMAX_ATOL):
            return _Failure(kind, message)
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
    message = (f"Your function returns the same values for every input (a = {_fmt(first)})"
               f" on all {len(answers)} hidden inputs")
    if public:
        message += ", the softmax of the public example z = [1, 2, 3, 4]"
    return message + ": compute a from the z it is given, not from numbers written in the code."


# ---------------------------------------------------------------- UNQ_C2: the model

EXPECTED_UNITS = (25, 15, 10)
INPUT_SIZE = 400
# Each Dense layer has a weight per (input, unit) pair and a bias per unit.
LAYER_SIZES = (INPUT_SIZE, *EXPECTED_UNITS)
EXPECTED_PARAMETERS = sum((n_in + 1) * n_out for n_in, n_out in pairwise(LAYER_SIZES))
FORWARD_TOLERANCE = 1e-4
ACTIVATION_ATOL = 1e-5


def _softmax_rows(x):
    exp_x = np.exp(x - x.max(axis=-1, keepdims=True))
    return exp_x / exp_x.sum(axis=-1, keepdims=True)


# What each activation computes, so that an activation is named by its behaviour on the
# probe: 'relu', keras relu and tf.nn.relu are all ReLU, 'linear' and None both linear.
ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "linear": lambda x: x,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "softmax": _softmax_rows,
}


@dataclass(frozen=True)
class _Layer:
    index: int
    kind: str  # the layer's class name, e.g. "Dense"
    name: str
    units: int | None
    use_bias: bool | None
    weights: tuple | None  # of float arrays; None when not captured (see weights_error)
    weights_error: str | None
    activation: str  # what the activation computes: "relu", ... or a description

    @property
    def where(self):
        return f"layers[{self.index}] ('{self.name}')"


def model_verdict(captured, cell_error=None, *, seed=DEFAULT_HIDDEN_SEED):
    """Judge the model from the UNQ_C2 capture: 50 points if it is the network asked for
    (its output checked on the batch drawn from `seed`)."""
    return _judged_safely("UNQ_C2", "the model", functools.partial(_model_messages, seed=seed),
                          captured, cell_error)


def _model_messages(captured, cell_error, *, seed):
    if captured is None:
        return [_no_capture_message("the model", cell_error)
                or _model_cell_error_message(_quote(cell_error))]
    if not isinstance(captured, dict):
        raise _Unreadable("not a record")
    if "error" in captured:
        return [_no_model_message(_quote(captured["error"]))]
    layers = _model_layers(captured)
    # Stop at the first stage with problems: later ones only repeat their consequences.
    for stage in (_structure_problems, _weight_problems,
                  functools.partial(_forward_problems, seed=seed)):
        problems = stage(captured, layers)
        if problems:
            return problems
    return []


def _no_model_message(quoted_error):
    return (f"There is no `model` when the tests run ({quoted_error}): build it with"
            " Sequential([...]) in the UNQ_C2 cell, assign it to `model`, and run that cell"
            " without errors.")


def _model_cell_error_message(quoted_error):
    # The cell calls test_model(model, ...) before the capture: a missing model stops it there.
    undefined = _undefined_name(quoted_error)
    if undefined == "model":
        return _no_model_message(quoted_error)
    message = (f"The test cell stopped with {quoted_error} before the hidden test of the model"
               " could run.")
    if undefined is not None:
        message += (" Run the notebook from the top (Restart & Run All) so that every earlier"
                    " cell runs.")
    return message


def _model_layers(facts):
    entries = facts.get("layers")
    if not isinstance(entries, list):
        raise _Unreadable("no list of layers")
    return [_model_layer(index, entry) for index, entry in enumerate(entries)]


def _model_layer(index, entry):
    if not isinstance(entry, dict) or not isinstance(entry.get("class"), str):
        raise _Unreadable("a layer without a class name")
    units, use_bias = entry.get("units"), entry.get("use_bias")
    if units is not None and (isinstance(units, bool) or not isinstance(units, int)):
        raise _Unreadable("units that are not a whole number")
    if use_bias is not None and not isinstance(use_bias, bool):
        raise _Unreadable("use_bias that is not True or False")
    return _Layer(index=index, kind=_quote(entry["class"], limit=60),
                  name=_quote(entry.get("name", ""), limit=60), units=units, use_bias=use_bias,
                  weights=_layer_weights(entry),
                  weights_error=_optional_text(entry, "weights_error"),
                  activation=_activation_kind(entry))


def _optional_text(entry, key):
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise _Unreadable(f"{key} that is not text")
    return value


def _layer_weights(entry):
    if "weights" not in entry:
        return None
    if not isinstance(entry["weights"], list):
        raise _Unreadable("weights that are not a list")
    arrays = tuple(_number_array(array) for array in entry["weights"])
    if any(array is None for array in arrays):
        raise _Unreadable("weights that are not arrays of numbers")
    return arrays


def _activation_kind(entry):
    """Name an activation by what it computed on the probe, not by how it was spelled."""
    error = _optional_text(entry, "activation_error")
    if error is not None:
        return f"an activation that fails on a test input ({_quote(error, limit=120)})"
    if "activation_probe" not in entry:
        return "no activation that could be tested"
    got = _number_array(entry["activation_probe"])
    if got is None:
        raise _Unreadable("an activation probe that is not an array of numbers")
    probe = ACTIVATION_PROBE.astype(float)
    with np.errstate(all="ignore"):
        for kind, reference in ACTIVATIONS.items():
            expected = reference(probe)
            if got.shape == expected.shape and np.allclose(got, expected, atol=ACTIVATION_ATOL):
                return kind
    return f"an unexpected activation (it maps {_fmt(probe[0])} to {_fmt(got)})"


def _dense(layers):
    return [layer for layer in layers if layer.kind == "Dense"]


# -------------------------------- stage 1: the layers asked for

def _structure_problems(facts, layers):
    if not layers:
        model_type = facts.get("type")
        described = _quote(model_type, limit=60) if isinstance(model_type, str) else "value"
        return [f"`model` is a {described} with no layers: expected a Keras Sequential model"
                " of three Dense layers, Sequential([Dense(25, ...), Dense(15, ...),"
                " Dense(10, ...)])."]
    problems = [f"{layer.where} is a {layer.kind} layer: expected only Dense layers (an Input"
                " is fine)." for layer in layers if layer.kind not in ("Dense", "InputLayer")]
    dense = _dense(layers)
    if len(dense) != len(EXPECTED_UNITS):
        return problems + [_layer_count_message(dense)]
    problems += _units_problems(dense)
    problems += _activation_problems(dense)
    problems += [f"{layer.where} has use_bias=False: expected a bias in every layer (the"
                 " default); remove use_bias=False." for layer in dense
                 if layer.use_bias is False]
    return problems


def _layer_count_message(dense):
    got_units = [layer.units for layer in dense]
    hint = ("Is a layer missing?" if len(dense) < len(EXPECTED_UNITS)
            else "Remove the extra layer.")
    return (f"Expected {len(EXPECTED_UNITS)} Dense layers with units {list(EXPECTED_UNITS)},"
            f" got {len(dense)} with units {got_units}. {hint}")


def _units_problems(dense):
    hidden = EXPECTED_UNITS[:-1]
    got_hidden = tuple(layer.units for layer in dense[:len(hidden)])
    if got_hidden == hidden[::-1]:
        names = " and ".join(layer.where for layer in dense[:len(hidden)])
        swapped = [f"The hidden layers' units look swapped ({names}): expected {hidden[0]}"
                   f" then {hidden[1]}, got {got_hidden[0]} then {got_hidden[1]}."]
        return swapped + _units_mismatches(dense[len(hidden):], EXPECTED_UNITS[len(hidden):])
    return _units_mismatches(dense, EXPECTED_UNITS)


def _units_mismatches(dense, expected_units):
    return [f"{layer.where}: expected {units} units, got {layer.units}."
            for layer, units in zip(dense, expected_units, strict=True) if layer.units != units]


def _activation_problems(dense):
    *hidden, output = dense
    problems = [_hidden_activation_problem(layer) for layer in hidden]
    problems.append(_output_activation_problem(output))
    return [problem for problem in problems if problem]


def _hidden_activation_problem(layer):
    if layer.activation == "relu":
        return None
    message = (f"{layer.where}: expected ReLU, got {layer.activation}. Use ReLU in the hidden"
               " layers (activation='relu').")
    if layer.activation == "linear":
        message += " Without it, the layers collapse into a single linear map."
    return message


def _output_activation_problem(layer):
    if layer.activation == "linear":
        return None
    where = f"{layer.where} (the output layer)"
    if layer.activation == "softmax":
        return (f"{where}: expected a linear activation, got softmax. Use a linear output"
                " (activation='linear'): the loss applies softmax (from_logits=True).")
    return (f"{where}: expected a linear activation, got {layer.activation}. The output must"
            " be raw scores (logits): use activation='linear'; the loss applies softmax"
            " (from_logits=True).")


# -------------------------------- stage 2: the weights those layers hold

def _weight_problems(facts, layers):
    dense = _dense(layers)
    problems = [_weights_readable_problem(facts, layer) for layer in dense]
    problems = [problem for problem in problems if problem]
    if problems:
        return problems
    kernel = dense[0].weights[0]
    if kernel.ndim == 2 and kernel.shape[0] != INPUT_SIZE:
        return [f"The model expects {kernel.shape[0]} inputs, the images have {INPUT_SIZE}:"
                f" use tf.keras.Input(shape=({INPUT_SIZE},)), one input per pixel.",
                _parameter_count_problem(layers)]
    problems = _shape_problems(dense)
    problems += [f"{layer.where} has NaN or infinite weights." for layer in dense
                 if not all(np.all(np.isfinite(array)) for array in layer.weights)]
    problems.append(_parameter_count_problem(layers))
    return [problem for problem in problems if problem]


def _weights_readable_problem(facts, layer):
    if layer.weights_error is not None:
        return f"{layer.where}: its weights could not be read ({_quote(layer.weights_error)})."
    if not layer.weights:
        if "forward_error" in facts:
            return (f"The model could not run on a batch of {MODEL_BATCH_SHAPE[0]} images of"
                    f" {INPUT_SIZE} pixels ({_forward_error(facts)}), so {layer.where} has no"
                    " weights to check.")
        return f"{layer.where} has no weights: is the model built?"
    if len(layer.weights) != 2:
        return (f"{layer.where} has {len(layer.weights)} weight arrays, expected 2 (a kernel"
                " and a bias).")
    return None


def _shape_problems(dense):
    problems = []
    for layer, (n_in, n_out) in zip(dense, pairwise(LAYER_SIZES), strict=True):
        kernel, bias = layer.weights
        if kernel.shape != (n_in, n_out) or bias.shape != (n_out,):
            problems.append(f"{layer.where}: expected a kernel of shape {(n_in, n_out)} and a"
                            f" bias of shape {(n_out,)}, got {kernel.shape} and {bias.shape}.")
    return problems


def _parameter_count_problem(layers):
    got = sum(array.size for layer in layers for array in layer.weights or ())
    if got == EXPECTED_PARAMETERS:
        return None
    details = "; ".join(f"{layer.where}: {sum(array.size for array in layer.weights):,}"
                        for layer in _dense(layers))
    return (f"Expected {EXPECTED_PARAMETERS:,} parameters in total, got {got:,} ({details}).")


# -------------------------------- stage 3: what the model computes

def _forward_error(facts):
    error = facts["forward_error"]
    return _quote(error) if isinstance(error, str) else "an unreadable error"


def _forward_problems(facts, layers, *, seed):
    batch = model_hidden_batch(seed)
    expected_shape = (batch.shape[0], EXPECTED_UNITS[-1])
    if "forward_error" in facts:
        return [f"The model could not run on a batch of {batch.shape[0]} images of"
                f" {batch.shape[1]} pixels: it raised {_forward_error(facts)}."]
    got = _number_array(facts.get("forward"))
    if got is None:
        raise _Unreadable("no model output")
    if got.shape != expected_shape:
        return [f"A batch of {batch.shape[0]} images should give an output of shape"
                f" {expected_shape}, got {got.shape}."]
    if not np.all(np.isfinite(got)):
        return ["The model's output contains NaN or infinity on a batch of test images."]
    with np.errstate(all="ignore"):
        expected = numpy_forward(batch, _dense(layers))
        if np.allclose(got, expected, rtol=FORWARD_TOLERANCE, atol=FORWARD_TOLERANCE):
            return []
        largest = float(np.nanmax(np.abs(got - expected)))
    return [f"The model's output does not match its layers: with its own weights, Dense(25,"
            f" relu), Dense(15, relu), Dense(10, linear) give other outputs on the same test"
            f" images (largest difference {largest:.3g}). Does the model override `call`,"
            " or skip or repeat a layer?"]


def numpy_forward(x, dense):
    """What the Dense layers compute, one after the other, with their own weights."""
    values = np.asarray(x, dtype=float)
    for layer in dense:
        kernel, bias = layer.weights
        values = ACTIVATIONS[layer.activation](values @ kernel + bias)
    return values


# ---------------------------------------------------------------- the entry points

VERDICTS = {"UNQ_C1": softmax_verdict, "UNQ_C2": model_verdict}


def judge(exercise, captured, cell_error=None, *, seed=DEFAULT_HIDDEN_SEED):
    """The verdict for one exercise from its captured data (None if nothing was captured),
    for hidden inputs drawn from `seed`."""
    try:
        verdict_of = VERDICTS[exercise]
    except KeyError:
        raise ValueError(f"no verdict for exercise {exercise!r}; known: {list(VERDICTS)}") \
            from None
    return verdict_of(captured, cell_error, seed=seed)


def verdict_message(verdict):
    """The feedback text for one exercise: points, then one line per mistake."""
    head = f"{verdict.exercise}: {verdict.points:g}/{verdict.max_points:g} points."
    if verdict.full_marks:
        return f"{head} All hidden tests passed."
    return "\n".join([head, *(f"- {message}" for message in verdict.messages)])
