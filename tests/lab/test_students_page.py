"""The students' page (docs/students.md) says what the lab really does: each message its
section on the exercises quotes is one the public tests print."""

import contextlib
import io
import re
from pathlib import Path

import keras
import numpy as np
import pytest

import public_tests

STUDENTS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "students.md"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
QUOTED = re.compile(r'"([^"]+)"')


def _exercises_section():
    page = STUDENTS_PAGE.read_text(encoding="utf-8")
    return page.split("\n## Do the exercises\n", 1)[1].split("\n## ", 1)[0]


def _one_line(text):
    return re.sub(r"\s+", " ", text).strip()


def _model(output_activation="linear", hidden_activation="relu"):
    return keras.Sequential([
        keras.Input(shape=(400,)),
        keras.layers.Dense(25, activation=hidden_activation, name="L1"),
        keras.layers.Dense(15, activation=hidden_activation, name="L2"),
        keras.layers.Dense(10, activation=output_activation, name="L3"),
    ])


# Wrong answers a student writes, each run through the public test as the notebook runs it.
WRONG_SOFTMAXES = [
    np.exp,
    lambda z: np.exp(z) / np.sum(z),
    lambda z: 2 * np.exp(z) / np.exp(z).sum(),
    lambda z: np.sort(np.exp(z) / np.exp(z).sum()),
]
WRONG_MODELS = [
    lambda: _model(output_activation="softmax"),
    lambda: _model(hidden_activation="sigmoid"),
]


@pytest.fixture(scope="module")
def printed_messages():
    """Everything the public tests print for the wrong answers, without colours."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for answer in WRONG_SOFTMAXES:
            public_tests.test_my_softmax(answer)
        for build in WRONG_MODELS:
            public_tests.test_model(build(), 10, 400)
    return _one_line(ANSI_ESCAPE.sub("", printed.getvalue()))


def test_messages_the_students_page_quotes_are_printed_by_the_public_tests(printed_messages):
    quoted = [_one_line(quote) for quote in QUOTED.findall(_exercises_section())]
    assert quoted, "the students' page quotes no message of the public tests"
    for quote in quoted:
        assert quote in printed_messages, quote

