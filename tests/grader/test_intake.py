"""grader.intake.submissions: every accepted layout, every broken notebook, every unsafe zip."""

import hashlib
import json
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat import v3
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader import cells
from grader.intake import IntakeError, collect_submissions, notebook_file
from grader.intake import folders as intake
from grader.intake.notebook_file import NotGradable
from grader.labs.c2_w2 import LAB as lab
from grader.records import INVALID

NAME = lab.notebook_name


# --- Factories ------------------------------------------------------------------------------

def answer_cell(grade_id, source="pass"):
    return new_code_cell(source, metadata={"nbgrader": {
        "grade_id": grade_id, "solution": True, "grade": False, "locked": False,
        "schema_version": 3}})


def lab_notebook(grade_ids=lab.exercise_ids):
    return new_notebook(cells=[new_markdown_cell("# Softmax"),
                               *(answer_cell(grade_id) for grade_id in grade_ids)])


def write_notebook(path, notebook=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(notebook or lab_notebook()), encoding="utf-8")
    return path


def add_student(folder, student_id, *, nbgrader=False, name=NAME, notebook=None):
    """A student's folder in `folder`, plain or nbgrader's; returns the notebook's path."""
    student = folder / student_id / (lab.assignment if nbgrader else "")
    return write_notebook(student / name, notebook)


def zip_folder(folder, zip_path, *, wrapper=""):
    """Zip everything under `folder`, each entry's path prefixed by `wrapper`."""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, wrapper + path.relative_to(folder).as_posix())
    return zip_path


def zip_entries(zip_path, entries):
    """A zip holding `entries` exactly as given: {name or ZipInfo: bytes}."""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return zip_path


@dataclass(frozen=True)
class Read:
    """A student folder after intake and the pipeline's reading step."""

    student_id: str
    notebook_path: Path | None
    status: str | None
    detail: str
    notebook: dict | None


def collect(path, tmp_path):
    result = collect_submissions(path, tmp_path / "scratch", lab)
    return SimpleNamespace(submissions=tuple(map(read, result.submissions)),
                           warnings=result.warnings)


def read(submission):
    if submission.status == INVALID:
        return Read(submission.student_id, submission.notebook_path, INVALID,
                    submission.detail, None)
    try:
        notebook, notes = submission.read(lab)
    except NotGradable as not_gradable:
        return Read(submission.student_id, submission.notebook_path, INVALID,
                    str(not_gradable), None)
    detail = "; ".join(note for note in [submission.detail, *notes] if note)
    return Read(submission.student_id, submission.notebook_path, None, detail, notebook)


def by_id(result):
    return {submission.student_id: submission for submission in result.submissions}


def only(result):
    (submission,) = result.submissions
    return submission


def student_with_file(tmp_path, data, name=NAME):
    """Submissions with one student, alice, whose notebook file holds `data` (bytes)."""
    submissions = tmp_path / "submissions"
    (submissions / "alice").mkdir(parents=True)
    (submissions / "alice" / name).write_bytes(data)
    return submissions


def assert_gradable(submission, detail=""):
    assert submission.status is None, submission.detail
    assert submission.detail == detail
    grade_ids = {cells.grade_id(cell) for cell in submission.notebook["cells"]}
    assert set(lab.exercise_ids) <= grade_ids


def assert_invalid(submission, detail):
    assert submission.status == INVALID
    assert submission.notebook is None
    assert submission.detail == detail


# --- Layouts --------------------------------------------------------------------------------

def test_plain_folder_has_one_gradable_row_per_student(tmp_path):
    submissions = tmp_path / "submissions"
    bob = add_student(submissions, "bob")
    add_student(submissions, "alice")
    result = collect(submissions, tmp_path)
    assert [s.student_id for s in result.submissions] == ["alice", "bob"]
    for submission in result.submissions:
        assert_gradable(submission)
    assert by_id(result)["bob"].notebook_path == bob.resolve()
    assert result.warnings == ()


def test_nbgrader_submitted_folder(tmp_path):
    submitted = tmp_path / "course" / "submitted"
    add_student(submitted, "alice", nbgrader=True)
    add_student(submitted, "bob", nbgrader=True)
    (submitted / "bob" / lab.assignment / "timestamp.txt").write_text("2024-01-01 10:00:00")
    result = collect(submitted, tmp_path)
    assert sorted(by_id(result)) == ["alice", "bob"]
    for submission in result.submissions:
        assert_gradable(submission)
        assert submission.notebook_path.parent.name == lab.assignment


def test_nbgrader_course_root(tmp_path):
    course = tmp_path / "course"
    add_student(course / "submitted", "alice", nbgrader=True)
    write_notebook(course / "source" / lab.assignment / NAME)
    (course / "gradebook.db").write_bytes(b"")
    result = collect(course, tmp_path)
    assert list(by_id(result)) == ["alice"]
    assert_gradable(only(result))
    assert result.warnings == ()


def test_plain_folder_may_hold_nbgrader_assignment_folders(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "alice", nbgrader=True)
    add_student(submissions, "bob")
    result = collect(submissions, tmp_path)
    assert sorted(by_id(result)) == ["alice", "bob"]
    for submission in result.submissions:
        assert_gradable(submission)


def _plain(tmp_path):
    root = tmp_path / "layout"
    add_student(root, "alice")
    add_student(root, "bob", nbgrader=True)
    return root


def _submitted(tmp_path):
    root = tmp_path / "layout"
    add_student(root / "submitted", "alice", nbgrader=True)
    add_student(root / "submitted", "bob", nbgrader=True)
    return root


def _course_root(tmp_path):
    root = tmp_path / "layout"
    add_student(root / "course" / "submitted", "alice", nbgrader=True)
    add_student(root / "course" / "submitted", "bob", nbgrader=True)
    (root / "course" / "nbgrader_config.py").write_text("c = get_config()\n")
    return root


@pytest.mark.parametrize("layout", [_plain, _submitted, _course_root])
@pytest.mark.parametrize("wrapper", ["", "submissions/", "downloads/submissions/"])
def test_zip_of_each_layout_with_or_without_wrapper_folders(tmp_path, layout, wrapper):
    zip_path = zip_folder(layout(tmp_path), tmp_path / "submissions.zip", wrapper=wrapper)
    result = collect(zip_path, tmp_path)
    assert sorted(by_id(result)) == ["alice", "bob"]
    for submission in result.submissions:
        assert_gradable(submission)
        assert (tmp_path / "scratch") in submission.notebook_path.parents
    assert result.warnings == ()


def test_zip_of_a_single_student_is_not_mistaken_for_a_wrapper(tmp_path):
    root = tmp_path / "layout"
    add_student(root, "alice")
    (root / "alice" / "data").mkdir()
    result = collect(zip_folder(root, tmp_path / "one.zip"), tmp_path)
    assert list(by_id(result)) == ["alice"]


def test_zip_ignores_macos_resource_forks(tmp_path):
    zip_path = zip_folder(_plain(tmp_path), tmp_path / "mac.zip", wrapper="submissions/")
    with zipfile.ZipFile(zip_path, "a") as archive:
        archive.writestr("__MACOSX/submissions/alice/._" + NAME, b"\x00\x05\x16\x07")
        archive.writestr("submissions/.DS_Store", b"\x00\x00")
    result = collect(zip_path, tmp_path)
    assert sorted(by_id(result)) == ["alice", "bob"]
    assert result.warnings == ()


def test_windows_backslash_zip_unpacks_into_folders(tmp_path):
    notebook = nbformat.writes(lab_notebook())
    zip_path = zip_entries(tmp_path / "win.zip", {f"alice\\{NAME}": notebook})
    assert_gradable(only(collect(zip_path, tmp_path)))


# --- Which notebook -------------------------------------------------------------------------

def test_one_notebook_under_another_name_is_graded_with_a_note(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "alice", name="C2_W2_Assignment (1).ipynb")
    assert_gradable(only(collect(submissions, tmp_path)),
                    "graded C2_W2_Assignment (1).ipynb: the notebook was not named "
                    "C2_W2_Assignment.ipynb")


def test_the_right_name_wins_over_other_notebooks(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "alice", name="scratch.ipynb")
    expected = add_student(submissions, "alice")
    submission = only(collect(submissions, tmp_path))
    assert_gradable(submission)
    assert submission.notebook_path == expected.resolve()


def test_several_notebooks_without_the_right_name_are_invalid(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "alice", name="b.ipynb")
    add_student(submissions, "alice", name="a.ipynb")
    assert_invalid(only(collect(submissions, tmp_path)),
                   "several notebooks and none named C2_W2_Assignment.ipynb (a.ipynb, "
                   "b.ipynb), so it is unclear which to grade")


def test_the_right_name_in_two_places_is_invalid(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "alice")
    add_student(submissions, "alice", nbgrader=True)
    assert_invalid(only(collect(submissions, tmp_path)),
                   "C2_W2_Assignment.ipynb is in several places (C2_W2/C2_W2_Assignment.ipynb, "
                   "C2_W2_Assignment.ipynb), so it is unclear which to grade")


def test_a_folder_without_a_notebook_is_invalid(tmp_path):
    submissions = tmp_path / "submissions"
    (submissions / "alice").mkdir(parents=True)
    (submissions / "alice" / "answers.py").write_text("a = 1\n")
    submission = only(collect(submissions, tmp_path))
    assert_invalid(submission, "no notebook found in the student's folder")
    assert submission.notebook_path is None


def test_checkpoints_hidden_files_and_macos_folders_are_ignored(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "alice", name="real.ipynb")
    write_notebook(submissions / "alice" / ".ipynb_checkpoints" / f"{NAME}")
    write_notebook(submissions / "alice" / f".~{NAME}")
    write_notebook(submissions / "alice" / "__MACOSX" / NAME)
    write_notebook(submissions / ".ipynb_checkpoints" / "x" / NAME)
    write_notebook(submissions / "__MACOSX" / "alice" / NAME)
    (submissions / ".DS_Store").write_bytes(b"\x00")
    result = collect(submissions, tmp_path)
    assert_gradable(only(result), "graded real.ipynb: the notebook was not named "
                                  "C2_W2_Assignment.ipynb")
    assert result.warnings == ()


# --- Broken notebooks -----------------------------------------------------------------------

def _truncated():
    return nbformat.writes(lab_notebook()).encode()[:200]


def _python_file():
    return b"import numpy as np\n\ndef my_softmax(z):\n    return np.exp(z) / np.exp(z).sum()\n"


BROKEN = {
    "empty": (b"", notebook_file.EMPTY),
    "blank": (b"  \n\n", notebook_file.EMPTY),
    "truncated JSON": (_truncated(), notebook_file.NOT_JSON),
    "malformed JSON": (b'{"cells": [,]}', notebook_file.NOT_JSON),
    "not JSON at all": (b"hello there, world!", notebook_file.NOT_JSON),
    "python file": (_python_file(), notebook_file.PYTHON_FILE),
    "JSON object, no notebook": (b'{"name": "alice", "score": 10}', notebook_file.NOT_A_NOTEBOOK),
    "JSON list": (b"[1, 2, 3]", notebook_file.NOT_A_NOTEBOOK),
    "nbformat 4 without cells": (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
                                 notebook_file.NOT_A_NOTEBOOK),
    "binary garbage": (bytes(range(256)) * 4, notebook_file.NOT_TEXT),
    "zeros": (b"\x00" * 100, notebook_file.NOT_TEXT),
    "latin-1 text": ('{"cells": "café"}'.encode("latin-1"), notebook_file.NOT_TEXT),
    "no cells": (nbformat.writes(new_notebook()).encode(), notebook_file.NO_CELLS),
    "future format": (b'{"nbformat": 5, "cells": []}',
                      "the notebook is in format version 5, which the grader does not know"),
}


@pytest.mark.parametrize("data, detail", BROKEN.values(), ids=BROKEN.keys())
def test_broken_notebook_is_invalid_with_a_plain_detail(tmp_path, data, detail):
    submission = only(collect(student_with_file(tmp_path, data), tmp_path))
    assert_invalid(submission, detail)
    assert submission.notebook_path.name == NAME


def test_missing_graded_cell_is_named(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "alice", notebook=lab_notebook(["UNQ_C1"]))
    add_student(submissions, "bob", notebook=lab_notebook([]))
    result = by_id(collect(submissions, tmp_path))
    assert_invalid(result["alice"], "the notebook has no UNQ_C2 answer cell; it must be the "
                   "released lab notebook, C2_W2_Assignment.ipynb, with your answers in its "
                   "answer cells")
    assert result["bob"].detail.startswith("the notebook has no UNQ_C1 or UNQ_C2 answer cell;")


def test_duplicated_graded_cell_is_gradable_with_a_note(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "alice", notebook=lab_notebook(["UNQ_C1", "UNQ_C1", "UNQ_C2"]))
    add_student(submissions, "bob", notebook=lab_notebook(["UNQ_C1", "UNQ_C2"] * 3))
    result = by_id(collect(submissions, tmp_path))
    assert_gradable(result["alice"], "UNQ_C1 appears twice; the later copy counts, as when "
                                     "you run the notebook")
    assert_gradable(result["bob"], "UNQ_C1 appears three times; the later copy counts, as when "
                                   "you run the notebook; UNQ_C2 appears three times; the later "
                                   "copy counts, as when you run the notebook")


def _v3_notebook(grade_ids=lab.exercise_ids):
    cells = [v3.new_code_cell(input="pass", metadata={"nbgrader": {"grade_id": grade_id}})
             for grade_id in grade_ids]
    return v3.writes_json(v3.new_notebook(worksheets=[v3.new_worksheet(cells=cells)]))


def test_nbformat_3_is_upgraded_and_graded(tmp_path):
    submission = only(collect(student_with_file(tmp_path, _v3_notebook().encode()), tmp_path))
    assert_gradable(submission, "the notebook was in the old format version 3 and was "
                                "converted to version 4")
    assert submission.notebook["nbformat"] == 4


def test_nbformat_3_that_cannot_be_converted_is_invalid(tmp_path):
    data = json.dumps({"nbformat": 3, "worksheets": "not a list"}).encode()
    assert_invalid(only(collect(student_with_file(tmp_path, data), tmp_path)),
                   "the notebook is in the old format version 3, which could not be converted "
                   "to version 4")


def test_what_nbformat_can_repair_is_repaired(tmp_path):
    content = json.loads(nbformat.writes(lab_notebook()))
    content["cells"][2]["id"] = content["cells"][1]["id"]
    content["metadata"]["kernelspec"] = {"name": "python3"}  # no display_name: invalid
    submission = only(collect(student_with_file(tmp_path, json.dumps(content).encode()),
                              tmp_path))
    assert_gradable(submission)
    ids = [cell["id"] for cell in submission.notebook["cells"]]
    assert len(set(ids)) == len(ids)
    nbformat.validate(submission.notebook)


def test_what_nbformat_cannot_repair_is_invalid(tmp_path):
    content = json.loads(nbformat.writes(lab_notebook()))
    content["cells"][1]["outputs"] = "not a list"
    data = json.dumps(content).encode()
    damaged = only(collect(student_with_file(tmp_path, data), tmp_path))
    assert_invalid(damaged, notebook_file.DAMAGED)


@pytest.mark.parametrize("depth", [500, 100_000])
def test_absurdly_nested_json_is_invalid_not_a_crash(tmp_path, depth):
    content = json.loads(nbformat.writes(lab_notebook()))
    content["metadata"]["deep"] = "<deep>"
    data = json.dumps(content).replace('"<deep>"', "[" * depth + "]" * depth).encode()
    assert only(collect(student_with_file(tmp_path, data), tmp_path)).status == INVALID


def test_byte_order_mark_is_accepted(tmp_path):
    data = b"\xef\xbb\xbf" + nbformat.writes(lab_notebook()).encode()
    assert_gradable(only(collect(student_with_file(tmp_path, data), tmp_path)))


def test_oversized_notebook_is_invalid_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook_file, "MAX_NOTEBOOK_BYTES", 1024**2)
    data = nbformat.writes(lab_notebook()).encode() + b" " * (3 * 1024**2)
    assert_invalid(only(collect(student_with_file(tmp_path, data), tmp_path)),
                   "the notebook is 3 MB, more than the 1 MB limit; clear its outputs and "
                   "submit again")


def test_a_fifo_named_like_a_notebook_is_not_read(tmp_path):
    submissions = tmp_path / "submissions"
    (submissions / "alice").mkdir(parents=True)
    os.mkfifo(submissions / "alice" / NAME)
    assert_invalid(only(collect(submissions, tmp_path)), notebook_file.NOT_A_FILE)


# --- Links ----------------------------------------------------------------------------------

def test_symlinked_notebook_is_refused(tmp_path):
    outside = write_notebook(tmp_path / "elsewhere" / NAME)
    submissions = tmp_path / "submissions"
    (submissions / "alice").mkdir(parents=True)
    (submissions / "alice" / NAME).symlink_to(outside)
    assert_invalid(only(collect(submissions, tmp_path)),
                   "the notebook is a link to another file; links are not accepted")


def test_symlinked_student_folder_is_refused_and_not_followed(tmp_path):
    outside = add_student(tmp_path / "elsewhere", "mallory").parent
    submissions = tmp_path / "submissions"
    add_student(submissions, "alice")
    (submissions / "mallory").symlink_to(outside, target_is_directory=True)
    result = by_id(collect(submissions, tmp_path))
    assert_gradable(result["alice"])
    assert_invalid(result["mallory"], intake.FOLDER_IS_LINK)
    assert result["mallory"].notebook_path is None


def test_symlinked_folder_inside_a_student_folder_is_not_searched(tmp_path):
    outside = write_notebook(tmp_path / "elsewhere" / NAME).parent
    submissions = tmp_path / "submissions"
    (submissions / "alice").mkdir(parents=True)
    (submissions / "alice" / "work").symlink_to(outside, target_is_directory=True)
    assert_invalid(only(collect(submissions, tmp_path)), intake.NO_NOTEBOOK)


# --- Unsafe zips ----------------------------------------------------------------------------

def _symlink_entry(name, target):
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode bits below are meaningful
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return {info: target}


UNSAFE_ZIPS = {
    "zip slip": ({"alice/../../evil.txt": b"x"}, "climbs out of its folder"),
    "zip slip with backslashes": ({"alice\\..\\..\\evil.txt": b"x"}, "climbs out of its folder"),
    "absolute path": ({"/tmp/evil.txt": b"x"}, "absolute path"),
    "windows drive": ({"C:/evil.txt": b"x"}, "absolute path"),
    "symlink": (_symlink_entry("alice/" + NAME, b"/etc/passwd"), "symbolic link"),
}


@pytest.mark.parametrize("entries, reason", UNSAFE_ZIPS.values(), ids=UNSAFE_ZIPS.keys())
def test_unsafe_zip_is_refused_before_anything_is_written(tmp_path, entries, reason):
    good = {f"bob/{NAME}": nbformat.writes(lab_notebook())}
    zip_path = zip_entries(tmp_path / "bad.zip", good | entries)
    with pytest.raises(IntakeError, match=reason):
        collect(zip_path, tmp_path)
    assert not [path for path in (tmp_path / "scratch").rglob("*") if path.is_file()]
    assert not (tmp_path / "evil.txt").exists()


def test_zip_with_too_many_entries_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "MAX_ZIP_ENTRIES", 10)
    zip_path = zip_entries(tmp_path / "many.zip", {f"s{n}/{NAME}": b"{}" for n in range(11)})
    with pytest.raises(IntakeError, match="holds 11 entries, more than the 10"):
        collect(zip_path, tmp_path)


def test_zip_too_large_unpacked_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "MAX_ZIP_BYTES", 2 * 1024**2)
    zip_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"alice/{NAME}", b"\x00" * (3 * 1024**2 + 512 * 1024))
    with pytest.raises(IntakeError, match="unpacks to 3.5 MB, more than the 2 MB limit"):
        collect(zip_path, tmp_path)
    assert zip_path.stat().st_size < 100 * 1024  # a bomb: small packed, large unpacked


def test_unreadable_zip_is_an_error_for_the_whole_run(tmp_path):
    zip_path = tmp_path / "broken.zip"
    zip_path.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(IntakeError, match="broken.zip is not a readable zip file"):
        collect(zip_path, tmp_path)


def test_missing_path_and_plain_file_are_errors(tmp_path):
    with pytest.raises(IntakeError, match="does not exist"):
        collect(tmp_path / "nowhere", tmp_path)
    (tmp_path / "grades.csv").write_text("a,b\n")
    with pytest.raises(IntakeError, match="give a folder of submissions or a .zip"):
        collect(tmp_path / "grades.csv", tmp_path)


# --- Student ids, warnings, one row per folder ----------------------------------------------

def test_stray_top_level_files_are_warnings_not_students(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "alice")
    (submissions / "grades.csv").write_text("alice,10\n")
    write_notebook(submissions / NAME)
    result = collect(submissions, tmp_path)
    assert list(by_id(result)) == ["alice"]
    assert result.warnings == (
        "ignored C2_W2_Assignment.ipynb: a file at the top level of the submissions is not "
        "a student's folder",
        "ignored grades.csv: a file at the top level of the submissions is not a student's "
        "folder")


def test_empty_submissions_folder_warns(tmp_path):
    (tmp_path / "submissions").mkdir()
    result = collect(tmp_path / "submissions", tmp_path)
    assert result.submissions == ()
    assert result.warnings == (f"no student folders found in {tmp_path / 'submissions'}",)


def _suffixed(base, folder_name):
    return f"{base}-{hashlib.sha256(folder_name.encode()).hexdigest()[:6]}"


def test_unsafe_folder_names_get_a_safe_suffixed_id_and_an_invalid_row(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "eve\\x")
    add_student(submissions, "bob\n")
    add_student(submissions, "bob_")
    result = collect(submissions, tmp_path)
    eve, bob_newline = _suffixed("eve_x", "eve\\x"), _suffixed("bob_", "bob\n")
    assert list(by_id(result)) == sorted(["bob_", bob_newline, eve])
    assert_gradable(by_id(result)["bob_"])
    assert_invalid(by_id(result)[eve], "the folder name 'eve\\\\x' cannot be a student id "
                   "because it holds a path separator or a control character; rename the "
                   "folder")
    assert by_id(result)[bob_newline].status == INVALID
    assert result.warnings == ()


def test_a_folder_name_formgrader_would_run_is_graded_under_a_plain_id(tmp_path):
    # nbgrader's formgrader writes the id unescaped into a <script>: the id is rebuilt.
    submissions = tmp_path / "submissions"
    hostile = 'x";fetch(location.origin+"api");"'
    add_student(submissions, hostile)
    add_student(submissions, "Anna Müller")
    result = by_id(collect(submissions, tmp_path))
    attacker, anna = _suffixed("x__fetch_location.origin+_api____", hostile), \
        _suffixed("Anna_Müller", "Anna Müller")
    assert sorted(result) == sorted([attacker, anna])
    assert_gradable(result[anna], "the folder name 'Anna Müller' holds characters a student id"
                    " may not (only letters, digits and _ - . @ + =, not first . or -), so it was"
                    f" graded as {anna!r}")
    assert result[attacker].status is None


def test_ids_differing_only_in_case_or_unicode_form_get_a_suffix_and_a_note(tmp_path):
    submissions = tmp_path / "submissions"
    for student_id in ("Alice", "alice", "Jos\u00e9", "Jose\u0301", "zoe"):
        add_student(submissions, student_id)
    result = by_id(collect(submissions, tmp_path))
    alice, jose = _suffixed("Alice", "Alice"), _suffixed("Jose\u0301", "Jose\u0301")
    assert sorted(result) == sorted(["alice", alice, "Jos\u00e9", jose, "zoe"])
    for plain in ("alice", "Jos\u00e9", "zoe"):
        assert_gradable(result[plain])
    assert_gradable(result[alice], (
        "the folder name 'Alice' differs from another student's only in letter case or"
        " character encoding, which some file systems treat as the same name, so it was"
        f" graded as {alice!r}"))
    assert result[jose].status is None and repr(jose) in result[jose].detail


def test_every_folder_yields_one_row_sorted_whatever_its_state(tmp_path):
    submissions = tmp_path / "submissions"
    add_student(submissions, "dave")
    add_student(submissions, "carol", name="old.ipynb")
    add_student(submissions, "bob", notebook=lab_notebook(["UNQ_C1"]))
    (submissions / "erin").mkdir()
    (submissions / "alice").mkdir()
    (submissions / "alice" / NAME).write_bytes(b"")
    result = collect(submissions, tmp_path)
    assert [s.student_id for s in result.submissions] == ["alice", "bob", "carol", "dave",
                                                          "erin"]
    statuses = [s.status for s in result.submissions]
    assert statuses == [INVALID, INVALID, None, None, INVALID]


def test_nbgraders_submission_secret_is_carried_only_when_it_is_what_nbgrader_writes(tmp_path):
    # `nbgrader fetch_feedback` finds a student's page by the secret the exchange gave them.
    submissions = tmp_path / "submitted"
    secrets = {"alice": "ab12" * 32, "bob": "not hex; <script>", "carol": "f" * 300}
    for student, secret in secrets.items():
        notebook = add_student(submissions, student, nbgrader=True)
        (notebook.parent / "submission_secret.txt").write_text(secret + "\n")
    dave = add_student(submissions, "dave", nbgrader=True)
    (dave.parent / "submission_secret.txt").symlink_to(tmp_path / "elsewhere")
    add_student(submissions, "erin", nbgrader=True)
    found = {submission.student_id: submission.exchange_secret for submission
             in collect_submissions(submissions, tmp_path / "scratch", lab).submissions}
    assert found == {"alice": "ab12" * 32, "bob": "", "carol": "", "dave": "", "erin": ""}
