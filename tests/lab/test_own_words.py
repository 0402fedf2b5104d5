"""The notebook's text is written in its own words, not the specification's.

Facts, numbers, names, formulas and code carry over from the lab's specification (the
text files in `../shared/seed/`); sentences do not. The test fails on any run of
`MAX_SHARED_RUN` consecutive words that the notebook's markdown shares with the
specification, after both are lower-cased and stripped of code, LaTeX and HTML.

The specification lies beside the repository only in the team's checkouts and in CI, never
in a user's clone: there the comparison is skipped, with a sentence that says why. In CI
(`CI` set, as CI sets it) a missing specification fails instead: a skipped check there
would hide a broken checkout.
"""

import os
import re
import sys

import pytest

from grader.labs.c2_w2 import LAB as lab
from tools.run_notebook import read_notebook

SPECIFICATION_DIR = lab.root.parent / "shared" / "seed"
MAX_SHARED_RUN = 8

FENCED_CODE = re.compile(r"^[ \t>]*(```|~~~).*?^[ \t>]*\1[^\n]*$", re.MULTILINE | re.DOTALL)
DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.DOTALL)
INLINE_MATH = re.compile(r"\$[^$\n]+\$")
CODE_SPAN = re.compile(r"`[^`\n]*`")
HTML_TAG = re.compile(r"<[^>\n]*>")
LINK_TARGET = re.compile(r"\]\([^)\s]*\)")
URL = re.compile(r"https?://\S+")
APOSTROPHE = re.compile(r"['\u2019]")
WORD = re.compile(r"[a-z0-9]+")


def plain_words(text):
    """The words of a text, lower-cased, without code, LaTeX, HTML tags and link targets."""
    for pattern in (FENCED_CODE, DISPLAY_MATH, INLINE_MATH, CODE_SPAN, HTML_TAG, LINK_TARGET,
                    URL):
        text = pattern.sub(" ", text)
    # "week's" and "weeks" are the same word here: the stricter reading.
    return WORD.findall(APOSTROPHE.sub("", text.lower()))


def shared_runs(words, reference_words, length=MAX_SHARED_RUN):
    """The maximal runs of at least `length` consecutive words of `words` that also occur,
    in the same order, in `reference_words`; each run as one string."""
    reference = {tuple(reference_words[i:i + length])
                 for i in range(len(reference_words) - length + 1)}
    hits = [i for i in range(len(words) - length + 1) if tuple(words[i:i + length]) in reference]
    runs = []
    for start in hits:
        if runs and start <= runs[-1][1]:
            runs[-1][1] = start + length
        else:
            runs.append([start, start + length])
    return [" ".join(words[start:end]) for start, end in runs]


def specification_files():
    """The specification's text files; a skip (a user's clone) or, in CI, a failure when
    there are none."""
    files = sorted(SPECIFICATION_DIR.glob("*.txt"))
    if files:
        return files
    missing = (f"the lab's specification is not beside this repository (no text file in"
               f" {SPECIFICATION_DIR}): the notebook's wording is checked only where it is")
    if os.environ.get("CI"):
        pytest.fail(f"{missing}, and CI must have it", pytrace=False)
    pytest.skip(missing)


def specification_words():
    files = specification_files()
    words = []
    for path in files:
        words += plain_words(path.read_text(encoding="utf-8"))
    return words


def notebook_markdown_words():
    notebook = read_notebook(lab.source_notebook)
    return [plain_words(cell.source) for cell in notebook.cells if cell.cell_type == "markdown"]


def test_plain_words_drop_code_latex_and_html():
    text = ('A <b>bold</b> `code span` and $x^2$ with $$\\frac{a}{b}$$ and\n'
            '```python\nhidden = code\n```\n[a link](https://example.org/x) the Week\'s end.')
    assert plain_words(text) == ["a", "bold", "and", "with", "and", "a", "link", "the",
                                 "weeks", "end"]


def test_shared_runs_are_found_and_merged():
    reference = plain_words("one two three four five six seven eight nine ten")
    words = plain_words("zero one two three four five six seven eight nine x y")
    assert shared_runs(words, reference) == ["one two three four five six seven eight nine"]
    assert shared_runs(words[:8], reference) == []


def test_specification_is_long_enough_to_compare():
    assert len(specification_words()) > 1000


def test_a_missing_specification_skips_in_a_clone_and_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "SPECIFICATION_DIR", tmp_path)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not beside this repository"):
        specification_files()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must have it"):
        specification_files()


@pytest.fixture(scope="module")
def reference():
    return specification_words()


def test_no_run_of_eight_words_is_the_specification_s(reference):
    found = [run for words in notebook_markdown_words() for run in shared_runs(words, reference)]
    assert found == [], "sentences still shared with the specification:\n" + "\n".join(found)
