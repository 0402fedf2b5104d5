"""docs/commands.md is the command reference that tools/write_command_reference.py writes
from the grader's own parser: a new, renamed or re-documented option makes it stale."""

import argparse
import importlib

import pytest

from grader.cli import build_parser

reference = importlib.import_module("tools.write_command_reference")


@pytest.fixture(scope="module")
def page():
    return reference.PAGE.read_text(encoding="utf-8")


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_the_page_is_what_the_script_writes_from_the_parser(page):
    assert page == reference.render(), \
        "docs/commands.md is stale: run .venv/bin/python tools/write_command_reference.py"


def test_every_command_and_option_of_the_parser_is_on_the_page(page):
    parser = build_parser()
    for name, sub in _subparsers(parser).items():
        assert f"\n## {name}\n" in page, name
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue  # -h, which every command has
            for option in action.option_strings:
                assert f"`{option}" in page or f", {option}" in page, (name, option)
    for option in ("--lab", "--version", "--verbose", "--quiet"):
        assert f"`{option}" in page or f", {option}" in page, option


def test_the_page_holds_each_default_the_parser_has(page):
    autograde = _subparsers(build_parser())["autograde"]
    for action in autograde._actions:
        if action.option_strings and isinstance(action.default, int) \
                and not isinstance(action.default, bool):
            assert f"`{action.default}`" in page, action.dest


def test_the_page_does_not_depend_on_the_terminals_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = reference.render()
    monkeypatch.setenv("COLUMNS", "200")
    assert reference.render() == narrow
