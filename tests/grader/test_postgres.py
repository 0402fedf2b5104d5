"""The gradebook on a real PostgreSQL server (started here on loopback) holds the grades the
default sqlite gradebook holds for the same submissions."""

import csv
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from grader.course.course import COURSE_ID
from grader.labs.c2_w2 import LAB as lab
from grader.publish.results import ResultsError, gradebook_url

# A few of the corpus's students: full marks, one exercise wrong, no readable notebook.
SOME_STUDENTS = ["invalid-truncated", "ok-vectorised-softmax-no-input",
                 "wrong-model-no-bias", "wrong-softmax-off-by-one-loop"]
DATABASE = "gradebook"


def _postgres_program(name):
    """A PostgreSQL program: on PATH, or where Debian keeps it (off PATH), newest first."""
    candidates = [shutil.which(name),
                  *sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)]
    return next((candidate for candidate in candidates if candidate), None)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of its own in a temporary folder, listening on 127.0.0.1 only,
    with an empty database: its SQLAlchemy URL. Stopped and removed afterwards."""
    initdb, pg_ctl = _postgres_program("initdb"), _postgres_program("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (tools/install_system_packages.sh)")
    # Not pytest's tmp_path: PostgreSQL refuses to run as root, and the postgres user cannot
    # enter pytest's private folders.
    folder = Path(tempfile.mkdtemp(prefix="grader-postgres-"))
    as_server_user = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_server_user = ["runuser", "-u", "postgres", "--"]
    port, data = _free_port(), folder / "data"
    subprocess.run([*as_server_user, initdb, "-D", str(data), "-U", "grader", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    settings = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    subprocess.run([*as_server_user, pg_ctl, "-D", str(data), "-l", str(folder / "server.log"),
                    "-o", settings, "-w", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*as_server_user, _postgres_program("createdb"), "-h", "127.0.0.1",
                        "-p", str(port), "-U", "grader", DATABASE], check=True,
                       capture_output=True)
        yield f"postgresql://grader@127.0.0.1:{port}/{DATABASE}"
    finally:
        subprocess.run([*as_server_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w",
                        "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _rows(out):
    with (out / "grades.csv").open(newline="") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


def _scores(db_url):
    """{student: (score, max score)} for every student the gradebook knows, submission or
    not, read through nbgrader's own API."""
    with (warnings.catch_warnings(), Gradebook(db_url, course_id=COURSE_ID) as gradebook):
        warnings.simplefilter("ignore", category=SAWarning)
        scores = {student.id: None for student in gradebook.students}
        for submission in gradebook.assignment_submissions(lab.assignment):
            scores[submission.student.id] = (submission.score, submission.max_score)
        return scores


def _exported(out, tmp_path):
    """`nbgrader export` run by an instructor in OUT/nbgrader: {student: score}."""
    exported = tmp_path / "export.csv"
    subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(exported)],
                   cwd=out / "nbgrader", check=True, capture_output=True,
                   env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    with exported.open(newline="") as file:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(file)}


def test_grades_in_postgresql_equal_grades_in_sqlite(postgres_url, class_dir, graded,
                                                     tmp_path):
    some = tmp_path / "some"
    for student in SOME_STUDENTS:
        shutil.copytree(class_dir / student, some / student)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(some), "--out", str(out),
         "--cell-timeout", "10", "--workers", "2", "--db", postgres_url],
        capture_output=True, text=True, cwd=lab.root, timeout=600)
    assert result.returncode == 0, result.stderr
    assert not (out / "gradebook.db").exists()  # the grades went to PostgreSQL
    in_sqlite, _ = graded  # the whole corpus in the default sqlite gradebook
    sqlite_scores = _scores(gradebook_url(in_sqlite, None))
    assert _scores(gradebook_url(out, postgres_url)) == {
        student: sqlite_scores[student] for student in SOME_STUDENTS}
    assert _rows(out) == {student: _rows(in_sqlite)[student] for student in SOME_STUDENTS}
    # nbgrader's own tools on the results course read the same grades from PostgreSQL
    # (a student without a readable notebook has no submission: nbgrader counts 0).
    assert _exported(out, tmp_path) == {student: float(_rows(out)[student]["score"])
                                        for student in SOME_STUDENTS}


def test_a_bare_postgresql_url_gets_the_installed_driver(tmp_path):
    # SQLAlchemy 2.1 would read it as psycopg 3, which is not installed.
    assert (gradebook_url(tmp_path, "postgresql://ta:secret@db.example:5432/grades")
            == "postgresql+psycopg2://ta:secret@db.example:5432/grades")
    assert (gradebook_url(tmp_path, "postgresql+psycopg2://ta@db/grades")
            == "postgresql+psycopg2://ta@db/grades")
    assert gradebook_url(tmp_path, None) == f"sqlite:///{tmp_path.resolve() / 'gradebook.db'}"


def test_a_gradebook_url_that_is_not_one_is_refused(tmp_path):
    with pytest.raises(ResultsError, match="is not a database URL"):
        gradebook_url(tmp_path, "gradebook on the server")
