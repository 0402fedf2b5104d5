"""The grader's layout: stages import only downward, the engine never imports a lab, and
every room stays small (no module over 500 lines, no function over 60)."""

import ast
from pathlib import Path

import pytest

import grader

PACKAGE = Path(grader.__file__).parent
# Lower first. A module may import its own stage and the stages below it, never above;
# the shared layer (types, settings, the plug-in interface, cell metadata) is below all.
STAGES = [
    ("shared", ("grader", "grader.cells", "grader.records", "grader.settings", "grader.plugin",
                "grader.release_files", "grader.logs", "grader.scratch", "grader.hidden_secrets",
                "grader.errors", "grader.student_check", "grader.lateness",
                "grader.stage_clock")),
    ("intake and nbgrader's course", ("grader.intake", "grader.course")),
    ("run", ("grader.run",)),
    ("judge", ("grader.judge",)),
    ("publish", ("grader.publish",)),
    ("commands", ("grader.pipeline", "grader.republish", "grader.validate")),
    ("command line", ("grader.cli", "grader.__main__", "grader.process_end")),
]
LABS = "grader.labs"


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _stage(name):
    """The index of `name`'s stage (the longest matching prefix), None for a lab."""
    if name == LABS or name.startswith(LABS + "."):
        return None
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(STAGES)
               for prefix in prefixes
               if name == prefix or (prefix != "grader" and name.startswith(prefix + "."))]
    return max(matches)[1] if matches else None


def _grader_imports(path):
    """Every grader module `path` imports (at any depth in the file), as written."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "grader"}
        elif (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
              and node.module.split(".")[0] == "grader"):
            found |= {f"{node.module}.{alias.name}" if _is_module(node.module, alias.name)
                      else node.module for alias in node.names}
    return found


def _is_module(package, name):
    return f"{package}.{name}" in _modules()


ENGINE = {name: path for name, path in _modules().items() if _stage(name) is not None}


def test_every_engine_module_has_a_stage():
    assert not [name for name in _modules()
                if _stage(name) is None and not name.startswith(LABS)]


@pytest.mark.parametrize("module", sorted(ENGINE))
def test_stages_import_only_their_own_or_lower_stages(module):
    stage = _stage(module)
    upward = [name for name in _grader_imports(ENGINE[module])
              if _stage(name) is not None and _stage(name) > stage]
    assert not upward, f"{module} ({STAGES[stage][0]}) imports upward: {upward}"


@pytest.mark.parametrize("module", sorted(ENGINE))
def test_the_engine_never_imports_a_lab(module):
    labs = [name for name in _grader_imports(ENGINE[module]) if name.startswith(LABS)]
    assert not labs, f"{module} imports the lab {labs}: read it through grader.plugin"


def test_the_rule_catches_an_upward_import(tmp_path):
    # So that the rule proves something: a stage importing a higher one is found.
    module = tmp_path / "bad.py"
    module.write_text("from grader.publish.journal import Journal\nimport grader.pipeline\n")
    assert {_stage(name) for name in _grader_imports(module)} == {4, 5}
    assert _stage("grader.run.execution") == 2 < 4


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda path: path.name)
def test_no_module_over_500_lines_and_no_function_over_60(path):
    source = path.read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 500, path
    long = [(node.name, node.end_lineno - node.lineno + 1)
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > 60]
    assert not long, (path, long)
