"""Write docs/commands.md, the command reference, from the grader's own argparse parser
(grader.cli.build_parser): every subcommand, its usage line, arguments, options, defaults
and help, exactly as the command line takes them. Run it after changing an option:

    .venv/bin/python tools/write_command_reference.py           # write docs/commands.md
    .venv/bin/python tools/write_command_reference.py --check   # exit 1 if it is stale

tests/docs/test_command_reference.py fails while the page differs from what this writes.
"""

import argparse
import functools
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader.cli import build_parser  # noqa: E402

PAGE = ROOT / "docs" / "commands.md"
LOUDNESS = "verbosity"  # the dest of -v and -q, which every subcommand takes too
# Words in capitals in the documentation's commands, which the reader fills in; the page
# lists them, and tests/docs/test_docs_commands.py allows no other.
PLACEHOLDERS = {
    "SUBMISSIONS": "the students' work: a folder of student folders, nbgrader's `submitted/`"
                   " folder (or the course folder holding it), or a `.zip` of either",
    "OUT": "the folder `autograde` writes and the other commands read",
    "STUDENT": "one student's folder name in SUBMISSIONS",
    "N": "a number: worker processes on a machine",
    "SCHEDULER_HOST": "the machine running the Dask scheduler",
    "DB_HOST": "the machine running PostgreSQL",
    "COURSE": "the folder of your own nbgrader course",
}
HEADER = """\
# Command reference

<!-- Written by tools/write_command_reference.py from grader/cli.py's parser: do not edit.
     tests/docs/test_command_reference.py fails when this page and the parser differ. -->

`.venv/bin/python -m grader` and `.venv/bin/grader` are the same command (`make setup`
installs the package into `.venv`). Words in capitals in these pages' commands are yours to
fill in:
"""


def render(parser=None):
    """The whole page, as Markdown."""
    parser = parser or build_parser()
    _wide(parser)
    commands = _subcommands(parser)
    sections = [HEADER, _placeholders(), _description(parser), _global_section(parser, commands)]
    sections += [_command_section(name, help_text, sub) for name, help_text, sub in commands]
    return "\n".join(sections)


def _placeholders():
    rows = [f"| `{word}` | {meaning} |" for word, meaning in PLACEHOLDERS.items()]
    return "\n".join(["| word | what to put there |", "| --- | --- |", *rows, ""])


def _wide(parser):
    """Usage lines on one line each, whatever the terminal's width."""
    parser.formatter_class = functools.partial(argparse.HelpFormatter, width=10_000)


def _subcommands(parser):
    """(name, help, parser) of each subcommand, in the parser's order."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    for sub in action.choices.values():
        _wide(sub)
    return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]


def _description(parser):
    # The docstring's first paragraph names the command; the rest lists what each does.
    paragraphs = (parser.description or "").split("\n\n")[1:]
    text = "\n\n".join(textwrap.dedent(paragraph).strip("\n") for paragraph in paragraphs)
    return f"What each command does (`python -m grader --help`):\n\n```text\n{text}\n```\n"


def _global_section(parser, commands):
    names = ", ".join(f"[`{name}`](#{name})" for name, _, _ in commands)
    lines = ["## Before the command", "", f"```text\n{_usage(parser)}\n```", "",
             f"The commands: {names}.", "", *_options_table(parser, skip_loudness=False), ""]
    if all(_has_loudness(sub) for _, _, sub in commands):
        lines += ["Every command also takes `-v` and `-q` after its name, where they are "
                  "typed last; given before the name, they count as well.", ""]
    return "\n".join(lines)


def _command_section(name, help_text, sub):
    lines = [f"## {name}", "", f"{_sentence(help_text)}", "", f"```text\n{_usage(sub)}\n```",
             ""]
    positionals = [a for a in sub._actions if not a.option_strings]
    if positionals:
        lines += ["| argument | what it is |", "| --- | --- |"]
        lines += [f"| `{a.metavar or a.dest}` | {_cell(_help(sub, a))} |" for a in positionals]
        lines.append("")
    options = _options_table(sub, skip_loudness=True)
    lines += [*options, ""] if options else []
    lines += [f"Only one of {' and '.join(f'`{o}`' for o in group)} may be given.\n"
              for group in _exclusive_groups(sub)]
    return "\n".join(lines)


def _options_table(parser, *, skip_loudness):
    rows = [action for action in parser._actions if action.option_strings
            and not isinstance(action, argparse._HelpAction)
            and not (skip_loudness and action.dest == LOUDNESS)]
    if not rows:
        return []
    formatter = parser._get_formatter()
    table = ["| option | default | what it does |", "| --- | --- | --- |"]
    for action in rows:
        option = formatter._format_action_invocation(action)
        table.append(f"| `{option}` | {_default(action)} | {_cell(_help(parser, action))} |")
    return table


def _default(action):
    if action.required:
        return "required"
    # `is`, not `in`: a default of 0 equals False, and is shown (--keep-templates).
    if any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS)) \
            or action.dest == LOUDNESS:
        return ""
    return f"`{action.default}`"


def _exclusive_groups(parser):
    return [[action.option_strings[-1] for action in group._group_actions]
            for group in parser._mutually_exclusive_groups
            if not any(action.dest == LOUDNESS for action in group._group_actions)]


def _has_loudness(parser):
    return any(action.dest == LOUDNESS for action in parser._actions)


def _usage(parser):
    return " ".join(parser.format_usage().split())


def _help(parser, action):
    """The help text as --help shows it (`%%` as `%`, `%(default)s` filled in)."""
    return " ".join(parser._get_formatter()._expand_help(action).split()) if action.help else ""


def _cell(text):
    """Text for a table cell: a bar would end the cell, <format> would be taken for HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _sentence(text):
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def main(argv=None):
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--check", action="store_true",
                         help="exit 1, writing nothing, if docs/commands.md is stale")
    args = options.parse_args(argv)
    page = render()
    current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    if args.check:
        print("docs/commands.md is up to date" if page == current else
              "docs/commands.md is stale: run tools/write_command_reference.py")
        return 0 if page == current else 1
    if page != current:
        PAGE.parent.mkdir(exist_ok=True)
        PAGE.write_text(page, encoding="utf-8")
        print(f"Wrote {PAGE}")
    else:
        print(f"{PAGE} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
