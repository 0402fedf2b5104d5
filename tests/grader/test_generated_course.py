"""grader.course.generated: generate_assignment's output kept and reused, with nbgrader
replaced by a fake that writes what it would (the real one: test_release.py and
tests/grader/publish/test_publish.py)."""

import json
import logging
import stat
from pathlib import Path

import pytest

from grader.course import generated
from grader.course.course import create_course
from grader.labs.c2_w2 import LAB as lab


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(generated.CACHE_ENV, str(folder))
    return folder / "courses"


@pytest.fixture
def runs(monkeypatch):
    """The courses the fake nbgrader ran in; it writes a release and fills the gradebook."""
    courses = []

    def fake_run(course):
        courses.append(course.root)
        release = course.release_dir
        release.mkdir(parents=True, exist_ok=True)
        (release / lab.notebook_name).write_text(f"released by run {len(courses)}")
        for gradebook in course.root.parent.glob("*.db"):
            gradebook.write_text(f"gradebook of run {len(courses)}")

    monkeypatch.setattr(generated, "_run", fake_run)
    return courses


def _course(tmp_path, name, gradebook=True):
    folder = tmp_path / name
    course = create_course(folder / "course", lab, for_release=False)
    db = folder / "gradebook.db"
    if gradebook:
        db.touch()  # as check_gradebook leaves a fresh SQLite gradebook: empty
    return course, db


def test_the_second_course_copies_what_the_first_one_ran(tmp_path, cache, runs):
    first, first_db = _course(tmp_path, "one")
    second, second_db = _course(tmp_path, "two")
    generated.generate_results(first, first_db)
    generated.generate_results(second, second_db)
    assert runs == [first.root]
    assert (second.release_dir / lab.notebook_name).read_text() == "released by run 1"
    assert second_db.read_text() == "gradebook of run 1"
    entry, = cache.iterdir()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o700  # it holds the hidden tests' source
    assert set(json.loads((entry / generated.MANIFEST).read_text())) == {
        "gradebook.db", f"release/{lab.assignment}/{lab.notebook_name}"}


def test_the_key_follows_the_source_and_ignores_the_course_folder(tmp_path):
    first, first_db = _course(tmp_path, "one")
    second, second_db = _course(tmp_path, "two")
    key = generated.course_key(first, first_db)
    assert generated.course_key(second, second_db) == key
    assert generated.course_key(second, None) != key
    notebook = second.source_dir / lab.notebook_name
    notebook.write_bytes(notebook.read_bytes().replace(b"softmax", b"softmaX", 1))
    assert generated.course_key(second, second_db) != key
    release = create_course(tmp_path / "release", lab)  # the stubs are in its config
    assert generated.course_key(release, None) != generated.course_key(first, None)


def test_a_gradebook_that_holds_anything_is_left_to_nbgrader(tmp_path, cache, runs):
    first, first_db = _course(tmp_path, "one")
    generated.generate_results(first, first_db)
    second, second_db = _course(tmp_path, "two")
    second_db.write_text("students already")
    generated.generate_results(second, second_db)
    assert runs == [first.root, second.root]


def test_a_damaged_entry_is_made_again(tmp_path, cache, runs, caplog):
    first, first_db = _course(tmp_path, "one")
    generated.generate_results(first, first_db)
    entry, = cache.iterdir()
    (entry / "release" / lab.assignment / lab.notebook_name).write_text("half")
    second, second_db = _course(tmp_path, "two")
    with caplog.at_level(logging.WARNING):
        generated.generate_results(second, second_db)
    assert runs == [first.root, second.root]
    assert "is damaged: it is made again" in caplog.text
    assert (entry / "release" / lab.assignment / lab.notebook_name).read_text() == \
        "released by run 2"
    (entry / generated.MANIFEST).write_text("{not json")
    third, third_db = _course(tmp_path, "three")
    generated.generate_results(third, third_db)
    assert len(runs) == 3 and third_db.read_text() == "gradebook of run 3"


def test_an_entry_without_its_manifest_is_not_used(tmp_path, cache, runs):
    first, first_db = _course(tmp_path, "one")
    generated.generate_results(first, first_db)
    entry, = cache.iterdir()
    (entry / generated.MANIFEST).unlink()  # as a copy that stopped half-way would be
    second, second_db = _course(tmp_path, "two")
    generated.generate_results(second, second_db)
    assert runs == [first.root, second.root]


def test_off_runs_nbgrader_every_time_and_keeps_nothing(tmp_path, monkeypatch, runs):
    monkeypatch.setenv(generated.CACHE_ENV, generated.CACHE_OFF)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("one", "two"):
        generated.generate_results(*_course(tmp_path, name))
    assert len(runs) == 2
    assert not (tmp_path / "home").exists()


def test_the_default_place_is_the_users_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(generated.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert generated.cache_folder() == tmp_path / "xdg" / "c2w2-grader" / "courses"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert generated.cache_folder() == tmp_path / "home" / ".cache" / "c2w2-grader" / "courses"
    assert generated.cache_root() == tmp_path / "home" / ".cache" / "c2w2-grader"
    monkeypatch.setenv(generated.CACHE_ENV, generated.CACHE_OFF)
    assert generated.cache_root() is None and generated.cache_folder() is None


def test_a_cache_that_cannot_be_written_costs_only_the_time(tmp_path, monkeypatch, runs,
                                                           caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(generated.CACHE_ENV, str(blocker))
    course, db = _course(tmp_path, "one")
    with caplog.at_level(logging.WARNING):
        generated.generate_results(course, db)
    assert runs == [course.root] and db.read_text() == "gradebook of run 1"
    assert "could not be kept in the cache" in caplog.text


def test_two_makers_of_one_entry_leave_one_whole_entry(tmp_path, cache, runs):
    # Two batches starting at once both miss and both store: the second rename finds the
    # first's entry and leaves it, and its staging folder is gone.
    first, first_db = _course(tmp_path, "one")
    second, second_db = _course(tmp_path, "two")
    generated.generate_results(first, first_db)
    generated._store(second, second_db, cache / generated.course_key(second, second_db))
    assert [path.name for path in cache.iterdir()] == [generated.course_key(first, first_db)]
    entry, = cache.iterdir()
    assert generated._intact(entry)


def test_another_database_is_always_left_to_nbgrader(tmp_path, cache, runs):
    for name in ("one", "two"):
        course, _ = _course(tmp_path, name, gradebook=False)
        generated.generate_results(course, None)  # PostgreSQL: nbgrader writes its tables
    assert len(runs) == 2 and not cache.exists()


@pytest.mark.parametrize(("url", "file"), [
    ("sqlite:////srv/out/gradebook.db", "/srv/out/gradebook.db"),
    ("sqlite:///gradebook.db", None),  # relative: nbgrader reads it in the course's folder
    ("sqlite://", None),
    ("sqlite:///:memory:", None),
    ("postgresql://grader@db:5432/gradebook", None),
])
def test_only_an_sqlite_file_with_a_full_path_is_a_gradebook_file(url, file):
    from grader.publish.gradebook import sqlite_file

    assert sqlite_file(url) == (file and Path(file))
