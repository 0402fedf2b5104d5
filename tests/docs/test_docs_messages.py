"""The pages that explain messages (docs/troubleshooting.md, docs/students.md) cover every
message the grader writes, and quote only messages it really writes.

A message is a sentence in the grader's code: a string or f-string in grader/ (not a
docstring, an option's help, a lab plug-in's verdict or one of NOT_MESSAGES below). The
pages catalogue messages as bold code spans, **`like this`**, with `…` wherever the grader
puts a value. A message counts as explained when a catalogued one matches it, `…`
standing for any text; a catalogued one must match a string of the code the same way.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRADER = ROOT / "grader"
PAGES = [ROOT / "docs" / "troubleshooting.md", ROOT / "docs" / "students.md"]
# Where a lab's own verdicts live: the students' page explains them by example.
LAB_PLUGINS = GRADER / "labs"
# Strings of the code that look like sentences but nobody reads as a message.
NOT_MESSAGES = {
    "noopener noreferrer nofollow": "the rel attribute of a student's link",
    "default-src 'none'; script-src …; style-src 'unsafe-inline'; img-src 'self' data:;"
    " font-src …; base-uri 'none'; form-action 'none'": "a page's Content-Security-Policy",
    "SIS Login ID": "a column of the Canvas export",
}
# The stage clock's calls: their first argument names a row of the profile, no message.
STAGE_CALLS = ("stage", "add_stage")
PLACEHOLDER = re.compile(r"%[sdr]|\{[a-z_]*\}")
SQL = r"(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|PRAGMA)\b"
CODE_OR_MARKUP = re.compile(rf"\s*([<@^%(_,{{]|{SQL})")
CATALOGUED = re.compile(r"\*\*(`+)\s?(.+?)\s?\1\*\*", re.DOTALL)


def _template(node):
    """A string node's text, each value an f-string puts in it written as `…`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return PLACEHOLDER.sub("…", node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(PLACEHOLDER.sub("…", part.value) if isinstance(part, ast.Constant)
                       else "…" for part in node.values)
    return None


def _not_text(tree):
    """Ids of the string nodes that are no message: docstrings, options' help, type hints
    written as strings, the parts of an f-string (the f-string itself is one)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.body and isinstance(node.body[0], ast.Expr):
            skipped.add(id(node.body[0].value))
        elif isinstance(node, ast.keyword) and node.arg in ("help", "prog"):
            skipped.add(id(node.value))
        elif isinstance(node, (ast.arg, ast.AnnAssign)) and node.annotation is not None:
            skipped.update(id(part) for part in ast.walk(node.annotation))  # "LateWork | None"
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_setting":
            skipped.update(id(argument) for argument in node.args)  # a setting's help
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in STAGE_CALLS \
                and node.args:
            skipped.add(id(node.args[0]))  # a stage's name in the profile (grader.stage_clock)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "timed_context":
            skipped.update(id(argument) for argument in node.args[2:])  # its two stages' names
        elif isinstance(node, ast.JoinedStr):
            skipped.update(id(part) for part in node.values)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            skipped.update(id(part) for part in ast.walk(node.returns))
    return skipped


def code_strings():
    """(file, line, text) of every string in grader/, docstrings and help left out."""
    found = []
    for path in sorted(GRADER.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _not_text(tree)
        for node in ast.walk(tree):
            text = None if id(node) in skipped else _template(node)
            if text is not None:
                found.append((path.relative_to(ROOT).as_posix(), node.lineno, text))
    return found


def _is_sentence(text):
    words = PLACEHOLDER.sub("", text).replace("…", "").split()
    return (len(" ".join(words)) >= 12 and len(words) >= 3 and "\n" not in text.strip()
            and "\\" not in text and not CODE_OR_MARKUP.match(text))


def grader_messages():
    """(file, line, text) of each message the grader writes, lab plug-ins aside."""
    return [(file, line, text) for file, line, text in code_strings()
            if _is_sentence(text) and not file.startswith(LAB_PLUGINS.relative_to(ROOT).as_posix())
            and _normalised(text) not in {_normalised(known) for known in NOT_MESSAGES}]


def catalogued_messages():
    return [match.group(2) for page in PAGES
            for match in CATALOGUED.finditer(page.read_text(encoding="utf-8"))]


def _normalised(text):
    text = re.sub(r"\s*…\s*", "…", " ".join(text.split())).strip().lower()
    return text.rstrip(".")


def explains(catalogued, text):
    pattern = ".*".join(re.escape(part) for part in _normalised(catalogued).split("…"))
    return re.fullmatch(pattern, _normalised(text), re.DOTALL) is not None


def test_every_message_of_the_grader_is_explained():
    catalogued = catalogued_messages()
    missing = [f"{file}:{line}: {text}" for file, line, text in grader_messages()
               if not any(explains(entry, text) for entry in catalogued)]
    assert not missing, ("explain these messages in docs/troubleshooting.md (or, for a "
                         "student's, docs/students.md), as **`…`**:\n" + "\n".join(missing))


def test_every_explained_message_is_one_the_grader_writes():
    texts = [text for _, _, text in code_strings()]
    unknown = [entry for entry in catalogued_messages()
               if not any(explains(entry, text) for text in texts)]
    assert not unknown, f"no string of grader/ reads like these: {unknown}"


def test_the_messages_found_include_each_kind():
    found = {text for _, _, text in grader_messages()}
    assert len(found) > 150
    for kind in ("… does not exist",  # an error that stops a command
                 "not running as root",  # a warning after a batch
                 "the notebook is not valid JSON: the file is cut off or damaged",  # a row
                 "the feedback of … could not be made"):  # an error in the log
        assert kind in found, kind


def test_a_catalogued_message_matches_only_its_own_words():
    assert explains("… does not exist", "/tmp/x does not exist")
    assert explains("Grading failed: ….", "Grading failed: the worker died.")
    assert not explains("… does not exist", "… does not exist yet")
    assert not explains("the notebook has no cells", "the notebook has no … answer cell")
