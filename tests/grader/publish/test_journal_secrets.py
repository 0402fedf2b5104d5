"""The journal's part in the per-grading secrets and the students' folder names, its
schema migration from the first release's journal, and the records it reads back."""

import sqlite3

import pytest

from grader.hidden_secrets import SECRET_BYTES, SecretKeyError, grading_secret, parse_secret_key
from grader.labs.c2_w2 import LAB as lab
from grader.publish.journal import SCHEMA, SCHEMA_VERSION, Journal, JournalError
from grader.records import GRADED, ExerciseVerdict, Message, StudentResult

KEY = parse_secret_key("5ec2e7c2" * 4)


def _record(journal, student_id, digest, folder=""):
    journal.record(StudentResult(student_id, GRADED, submission_hash=digest, folder=folder),
                   version="v", batch=1, has_notebook=False, feedback="none")


def test_a_secret_is_saved_before_use_and_reused_only_for_the_same_grading(tmp_path):
    with Journal(tmp_path) as journal:
        secret = journal.secret_for("amy", "d1")
        assert len(secret) == SECRET_BYTES
    with Journal(tmp_path) as journal:  # the batch died while grading amy: resumed
        assert journal.secret_for("amy", "d1") == secret
        assert journal.pending_secrets() == [("amy", "d1", secret)]
        resubmitted = journal.secret_for("amy", "d2")
        assert resubmitted != secret
        _record(journal, "amy", "d1")
        assert journal.pending_secrets() == []  # a recorded result needs its secret no more
        again = journal.secret_for("amy", "d1")  # the next grading of the same file
        assert again not in (secret, resubmitted)


def test_a_regrade_draws_new_secrets_even_for_gradings_in_progress(tmp_path):
    with Journal(tmp_path) as journal:
        assert journal.begin_batch(lab=lab) == 1
        secret = journal.secret_for("amy", "d1")
        assert journal.begin_batch(lab=lab, regrade=True) == 2
        assert journal.pending_secrets() == []
        assert journal.secret_for("amy", "d1") != secret


def test_a_repeat_key_gives_the_same_secrets_to_the_same_gradings_and_new_ones_to_others(
        tmp_path):
    secrets = []
    for out in (tmp_path / "first", tmp_path / "second"):
        with Journal(out) as journal:
            first = journal.secret_for("amy", "d1", KEY)
            other_student = journal.secret_for("bob", "d1", KEY)
            _record(journal, "amy", "d1")
            regraded = journal.secret_for("amy", "d1", KEY)  # attempt 1, not 0
            secrets.append((first, other_student, regraded))
    assert secrets[0] == secrets[1]
    assert len(set(secrets[0])) == 3
    assert secrets[0][0] == grading_secret(KEY, student_id="amy", digest="d1", attempt=0)
    assert grading_secret(None, student_id="amy", digest="d1", attempt=0) != secrets[0][0]


@pytest.mark.parametrize("text", ["5ec2e7", "not hex at all", "00" * 15])
def test_a_repeat_key_must_be_hexadecimal_and_long_enough(text):
    with pytest.raises(SecretKeyError):
        parse_secret_key(text)


def test_the_journal_remembers_each_students_folder_name(tmp_path):
    with Journal(tmp_path) as journal:
        _record(journal, "honest_right", "d1")
        _record(journal, "honest_right-3f9a1c", "d2", folder="honest\\right")
        assert journal.folders() == {"honest_right": "honest_right",
                                     "honest_right-3f9a1c": "honest\\right"}
        assert journal.record_of("honest_right-3f9a1c").folder == "honest\\right"


def test_records_of_the_same_verdicts_share_them_and_each_has_its_own_dict(tmp_path):
    # The class files hold every record at once: a kind of result is read once.
    wrong = {"UNQ_C1": ExerciseVerdict("UNQ_C1", 0.0, 1.0,
                                       (Message("softmax.shape", "the shape is wrong"),))}
    right = {"UNQ_C1": ExerciseVerdict("UNQ_C1", 1.0, 1.0)}
    with Journal(tmp_path) as journal:
        for student_id, verdicts in (("ann", wrong), ("bob", wrong), ("cat", right)):
            journal.record(StudentResult(student_id, GRADED, verdicts=verdicts,
                                         submission_hash=student_id),
                           version="v", batch=1, has_notebook=False, feedback="none")
        ann, bob, cat = journal.records()
    assert ann.verdicts == bob.verdicts == wrong and cat.verdicts == right
    assert ann.verdicts["UNQ_C1"] is bob.verdicts["UNQ_C1"]  # frozen: safe to share
    assert ann.verdicts is not bob.verdicts  # a dict of its own: changing one changes one
    ann.verdicts.pop("UNQ_C1")
    assert bob.verdicts == wrong and journal_reads_again(tmp_path)["ann"].verdicts == wrong


def journal_reads_again(out):
    with Journal(out) as journal:
        return {record.student_id: record for record in journal.records()}


def _first_release_journal(out):
    """A journal as the first release wrote it: no user_version, 13 columns, no pending."""
    out.mkdir()
    with sqlite3.connect(out / "journal.sqlite") as db:
        for statement in SCHEMA:
            db.execute(statement)
        db.execute("INSERT INTO facts VALUES ('hidden_seed', '1234')")
        db.execute("INSERT INTO students VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   ("victim_case", "d0", "v", GRADED, "", "{}", 1.0, "off", 1, "written", 1,
                    1, "2026-12-01T10:00:00+00:00"))


def test_a_journal_of_the_first_release_is_migrated_and_resumes(tmp_path):
    out = tmp_path / "out"
    _first_release_journal(out)
    with Journal(out) as journal:
        (record,) = journal.records()
        assert (record.student_id, record.digest, record.in_gradebook, record.folder) == \
            ("victim_case", "d0", True, "victim_case")
        assert journal.folders() == {"victim_case": "victim_case"}
        # Its one recorded result counts as attempt 0: the next grading is attempt 1.
        assert journal.secret_for("victim_case", "d0", KEY) == grading_secret(
            KEY, student_id="victim_case", digest="d0", attempt=1)
        _record(journal, "victim_case", "d0")
        assert journal.pending_secrets() == []
    with sqlite3.connect(out / "journal.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("SELECT gradings FROM students").fetchone() == (2,)


def test_a_journal_of_a_newer_grader_is_refused(tmp_path):
    with Journal(tmp_path):
        pass
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(JournalError, match="newer grader"):
        Journal(tmp_path)
