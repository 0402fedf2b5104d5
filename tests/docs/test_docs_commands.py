"""Every command in the documentation's shell blocks (```bash) would run as written: a
grader command parses with the grader's own parser, a make target exists (and `make -n`
takes the line), a script exists, and every word in capitals is a placeholder the command
reference lists."""

import contextlib
import importlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from doc_pages import PAGES, ROOT, code_blocks, relative

from grader.cli import build_parser
from grader.course.check_my_work import CHECKER
from grader.labs.c2_w2 import LAB

PLACEHOLDERS = importlib.import_module("tools.write_command_reference").PLACEHOLDERS
VENV_BIN = Path(sys.executable).parent
ENVIRONMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
CAPITALS = re.compile(r"(?<![\w-])([A-Z][A-Z0-9_]*)(?![\w])")
# Programs of the shell that the pages use as anyone would; their arguments are not checked.
SHELL_TOOLS = {"mkdir", "cp", "cd", "chown", "git"}
NBGRADER_COMMANDS = {"release_assignment", "fetch_assignment", "submit", "collect", "export",
                     "generate_feedback", "release_feedback", "fetch_feedback", "formgrader"}
MAKE_TARGET = re.compile(r"^([A-Za-z][\w-]*):(?!=)", re.MULTILINE)
MAKE_VARIABLE = re.compile(r"^([A-Z_]+)\s*[?:]?=", re.MULTILINE)


def shell_commands(text):
    """Each command of the page's shell blocks: continuation lines joined, comments and
    blank lines left out, `a && b` as two."""
    commands = []
    for language, body in code_blocks(text):
        if language in {"bash", "sh", "shell", "console"}:
            for line in body.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                commands += _split_on_and(words)
    return [command for command in commands if command]


def _split_on_and(words):
    commands, current = [], []
    for word in words:
        if word == "&&":
            commands.append(current)
            current = []
        else:
            current.append(word)
    return [*commands, current]


def _all_commands():
    return [(page, command) for page in PAGES
            for command in shell_commands(page.read_text(encoding="utf-8"))]


def _as_run(words):
    """The command that runs, without the environment, sudo and systemd-run around it."""
    words = list(words)
    while words and ENVIRONMENT.match(words[0]):
        words.pop(0)
    if words[:1] == ["sudo"]:
        words.pop(0)
    if words[:1] == ["systemd-run"]:
        words.pop(0)
        while words and words[0].startswith("-"):
            words = words[2:] if words[0] == "-p" else words[1:]
    return words


def check(words):
    """None when `words` would run as written; else what is wrong."""
    words = _as_run(words)
    program, arguments = words[0], words[1:]
    name = Path(program).name
    if name in {"python", "python3"}:
        return _check_python(arguments)
    if name == "grader":
        return _check_grader(arguments)
    if name == "make":
        return _check_make(arguments)
    if name == "dask":
        return _check_dask(program, arguments)
    if name == "nbgrader":
        return None if arguments[0] in NBGRADER_COMMANDS else f"nbgrader {arguments[0]}?"
    if name in SHELL_TOOLS:
        return None
    return f"no check knows the program {program}: add one to {relative(Path(__file__))}"


def _check_python(arguments):
    if arguments[:2] == ["-m", "grader"]:
        return _check_grader(arguments[2:])
    if arguments[:1] == ["-c"] or arguments[:2] == ["-m", "pytest"]:
        return None
    script = arguments[0]
    if script == CHECKER:
        return None  # written into every release (grader.course.check_my_work)
    return None if (ROOT / script).is_file() else f"no script {script}"


def _check_grader(arguments):
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            build_parser().parse_args(arguments)
    except SystemExit as stop:
        return None if stop.code == 0 else f"the parser refuses it: {printed.getvalue()}"
    return None


def _check_make(arguments):
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets, variables = set(MAKE_TARGET.findall(makefile)), set(MAKE_VARIABLE.findall(makefile))
    for argument in arguments:
        name = argument.partition("=")[0]
        if "=" in argument and name not in variables:
            return f"the Makefile has no variable {name}"
        if "=" not in argument and not argument.startswith("-") and argument not in targets:
            return f"the Makefile has no target {argument}"
    dry_run = subprocess.run(["make", "--no-print-directory", "-n", *arguments], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    return None if dry_run.returncode == 0 else f"make -n: {dry_run.stderr}"


def _check_dask(program, arguments):
    if not (VENV_BIN / "dask").exists():
        return "no dask command beside this Python"
    return None if arguments[0] in {"scheduler", "worker"} else f"dask {arguments[0]}?"


@pytest.mark.parametrize(("page", "command"), _all_commands(),
                         ids=lambda value: relative(value) if isinstance(value, Path)
                         else " ".join(value)[:60])
def test_a_command_of_the_docs_would_run(page, command):
    assert check(command) is None, f"{relative(page)}: {shlex.join(command)}: {check(command)}"


@pytest.mark.parametrize(("page", "command"), _all_commands(),
                         ids=lambda value: relative(value) if isinstance(value, Path)
                         else " ".join(value)[:60])
def test_its_words_in_capitals_are_documented_placeholders(page, command):
    words = _as_run(command)
    unknown = {word for argument in words[1:] for word in CAPITALS.findall(argument)
               if not argument.startswith("-") or "=" in argument} - set(PLACEHOLDERS) \
        - {LAB.assignment}  # nbgrader's name of the assignment, as it is
    assert not unknown, (f"{relative(page)}: {shlex.join(command)}: list {sorted(unknown)} in"
                         " PLACEHOLDERS (tools/write_command_reference.py)")


def test_the_pages_show_the_commands_that_matter():
    shown = {shlex.join(_as_run(command)) for _, command in _all_commands()}
    for command in ("make lab", "make test", "make check", "make demo",
                    ".venv/bin/python -m grader autograde SUBMISSIONS --out OUT"):
        assert any(line.startswith(command) for line in shown), command


def test_a_wrong_command_is_caught():
    assert check(["make", "no-such-target"])
    assert check([".venv/bin/python", "-m", "grader", "autograde", "--out"])
    assert check([".venv/bin/python", "tools/no_such_script.py"])
    assert check(["rm", "-rf", "OUT"])
    assert check(["sudo", ".venv/bin/python", "-m", "grader", "autograde", "S", "--out", "O"]) \
        is None
