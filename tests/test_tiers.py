"""Every test file is in exactly one tier (tests/tiers.py), and the marks it gets exist."""

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

