"""The lab's capture run in this process, on a namespace holding a student's names, as the
grader sends it to a kernel: for the judges' tests, with real NumPy and TensorFlow answers
and no kernel."""

import builtins
import contextlib
import io
import warnings

from grader.labs.c2_w2 import LAB
from grader.run import captures

CAPTURE = captures.compile_capture(LAB.capture_source())


def captured(exercise, secret, **student_globals):
    """The answer the capture of `exercise` printed for the inputs of `secret`, parsed."""
    source, nonce = captures.request_code(CAPTURE, exercise, LAB.hidden_inputs(secret)[exercise])
    namespace = {"__builtins__": builtins, **student_globals}
    output = io.StringIO()
    # Wrong formulas divide by zero on purpose; their warnings are not what is tested.
    with contextlib.redirect_stdout(output), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(source, namespace)
    answer, failure = captures.read_answer(output.getvalue(), nonce)
    assert failure is None
    return answer
