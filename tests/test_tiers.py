"""Every test file is in exactly one tier (tests/tiers.py), and the marks it gets exist."""

import importlib.util
from pathlib import Path

import tiers

TESTS = Path(__file__).resolve().parent


def test_every_test_file_is_in_one_tier():
    files = {path.relative_to(TESTS.parent).as_posix() for path in TESTS.rglob("test_*.py")}
    unclassified = files - tiers.FAST - set(tiers.SLOW)
    assert not unclassified, f"put these test files in a tier (tests/tiers.py): {unclassified}"
    assert not tiers.FAST & set(tiers.SLOW), "a file in both tiers"
    assert not (tiers.FAST | set(tiers.SLOW)) - files, "tiers.py names files that are gone"


def test_every_slow_file_has_known_marks():
    marks = {mark for file_marks in tiers.SLOW.values() for mark in file_marks}
    assert marks <= set(tiers.MARKS)
    assert all(file_marks for file_marks in tiers.SLOW.values())


class _Item:
    """What the root conftest reads of a collected test."""

    def __init__(self, file, fixtures):
        self.path = TESTS.parent / file
        self.name = file
        self._fixtureinfo = _FixtureInfo(fixtures)
        self.marks = []

    def add_marker(self, mark):
        self.marks.append(mark.mark if hasattr(mark, "mark") else mark)

    def group(self):
        return next(mark.kwargs["name"] for mark in self.marks if mark.name == "xdist_group")


class _FixtureInfo:
    def __init__(self, fixtures):
        self.name2fixturedefs = {name: [_Definition(scope)] for name, scope in fixtures.items()}


class _Definition:
    def __init__(self, scope):
        self.scope = scope


def _root_conftest():
    # By its file: the name `conftest` may be another folder's module by now.
    spec = importlib.util.spec_from_file_location("root_conftest", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_files_sharing_a_graded_class_run_together_and_first():
    conftest = _root_conftest()

    items = [_Item("tests/grader/test_a.py", {}),
             _Item("tests/grader/test_b.py", {"graded": "session"}),
             _Item("tests/grader/test_b.py", {}),  # its file shares: so does it
             _Item("tests/grader/test_c.py", {"graded": "module"}),  # its own class
             _Item("tests/grader/test_d.py", {"graded": "session"})]
    b, b_too, d = items[1], items[2], items[4]
    conftest.pytest_collection_modifyitems(None, items)
    assert items[:3] == [b, b_too, d]
    assert {item.group() for item in items[:3]} == {conftest.SHARED_GROUP}
    assert [item.group() for item in items[3:]] == ["tests/grader/test_a.py",
                                                    "tests/grader/test_c.py"]
