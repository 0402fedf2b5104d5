"""The hidden tests' capture, sent to the kernel over its channel, never as a file or text.

After an exercise's test cell has run, the worker sends the kernel one more execute
request: a line that unpacks a code object (the lab's capture code, compiled here and
marshalled) and the exercise's hidden inputs (JSON text), runs the capture in a namespace
of its own and prints one answer line,

    __GRADER_ANSWER__ <nonce> <JSON>

The request is not stored in the kernel's history, its outputs never join the notebook,
and the kernel only ever holds bytecode: no file in the kernel's file system, no line of
its traceback cache and no cell output contains the capture's source. Student code the
capture calls can still inspect its running frame (bytecode, names, constants and this
run's hidden inputs): that is all a kernel can see of a hidden test. No secret is there to
find: the inputs were drawn in the coordinating process from a secret of this grading
alone (grader.hidden_secrets), so what a student sees of them is worth nothing later.

The nonce, new for each request, tells the capture's line from anything else printed
meanwhile; more than one line carrying it means something imitated it, and then none is
believed. The answer decides nothing here: it is plain data that the coordinating process
judges.
"""

import base64
import json
import marshal
import secrets
from dataclasses import dataclass

from grader.records import Failure, FailureKind

MARKER = "__GRADER_ANSWER__"
# What one capture may print. C2_W2's largest answer, the model's 10,575 weights and its
# outputs on the hidden batch, is 0.23 MB of JSON (measured); a kernel's frames are
# capped to fit this (grader.run.kernel_client).
MAX_CAPTURE_BYTES = 4 * 10**6
CAPTURE_FILENAME = "<grader capture>"  # what a frame inspected during the capture shows

# Appended to the lab's capture source: runs `capture` and prints the answer line. It
# imports what it uses inside, so nothing the student defined can stand in for it.
_RUNNER = '''

def __grader_run(exercise, inputs_json, nonce, namespace):
    import json as _json
    import sys as _sys
    answer = capture(exercise, namespace, _json.loads(inputs_json))
    _sys.stdout.write("\\n{marker} " + nonce + " " + _json.dumps(answer) + "\\n")
    _sys.stdout.flush()

__grader_run(*__grader_call__)
'''.replace("{marker}", MARKER)


@dataclass(frozen=True)
class CapturePlan:
    """What to capture in one notebook: plain data that travels to a worker."""

    test_cells: dict  # grade_id of a test cell -> the exercise captured after it
    source: str  # the lab's capture source (defines capture(exercise, namespace, inputs))
    inputs: dict  # exercise -> its hidden inputs (JSON data) for this grading only


def compile_capture(source):
    """The capture source and its runner as a marshalled code object (this Python's
    bytecode: compiled on the machine whose kernels run it). Compiled without docstrings
    (optimize=2): student code can read the constants of the frames it is called from, and
    a docstring is lines of the capture's source."""
    return marshal.dumps(compile(source + _RUNNER, CAPTURE_FILENAME, "exec", optimize=2))


def request_code(code, exercise, inputs):
    """(the source of the execute request, its nonce) for one capture of `exercise` on its
    hidden `inputs` (JSON data), which travel as JSON text, decoded in the kernel."""
    nonce = secrets.token_hex(16)
    packed = base64.b64encode(code).decode("ascii")
    call = (exercise, json.dumps(inputs, allow_nan=False), nonce)
    # Only builtins reached through __import__('builtins') and the user's globals() are
    # looked up in the student's namespace; the capture runs in a dict of its own.
    source = ("__import__('builtins').exec(__import__('marshal').loads("
              f"__import__('base64').b64decode('{packed}')), "
              f"{{'__grader_call__': ({call[0]!r}, {call[1]!r}, {call[2]!r}, globals())}})")
    return source, nonce


def read_answer(text, nonce):
    """(answer, failure) from what the capture printed: the one answer line for `nonce`."""
    prefix = f"{MARKER} {nonce} "
    lines = [line[len(prefix):] for line in text.splitlines() if line.startswith(prefix)]
    if len(lines) > 1:
        return None, Failure(FailureKind.IMITATED)
    if not lines:
        return None, None
    try:
        answer = json.loads(lines[0])
    except ValueError:
        return None, Failure(FailureKind.NO_ANSWER)
    if not isinstance(answer, dict):
        return None, Failure(FailureKind.NO_ANSWER)
    return answer, None
