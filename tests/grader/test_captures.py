"""The capture's bytecode, as the kernel receives it (grader/run/captures.py)."""

import marshal
import types

from grader.labs.c2_w2 import LAB
from grader.run.captures import compile_capture


def _constants(code):
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _constants(constant)
        else:
            yield constant


def test_the_capture_code_holds_no_line_of_its_source():
    # Student code the capture calls can read the constants of its callers' frames.
    code = marshal.loads(compile_capture(LAB.capture_source()))
    strings = [constant for constant in _constants(code) if isinstance(constant, str)]
    lines = {line.strip() for line in LAB.capture_source().splitlines()
             if len(line.strip()) >= 24}
    assert lines, "the capture source has long lines to look for"
    shown = [line for line in lines if any(line in string for string in strings)]
    assert shown == []
