"""The gradebook on a real PostgreSQL server (started here on loopback) holds the grades the
default sqlite gradebook holds for the same submissions."""

import contextlib
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

from grader.labs.c2_w2 import LAB as lab
from grader.pipeline import autograde, publish_again
from grader.publish import publisher
from grader.publish.gradebook import GradebookError, GradebookWriter, gradebook_url
from grader.settings import Limits

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


class PostgresServer:
    """A PostgreSQL server of its own in a temporary folder, listening on 127.0.0.1 only,
    with an empty database; it can be stopped and started again (a database outage).

    A port probed free is not reserved: another process may bind it before the server does
    (then the server starts on another port), or while the server is stopped (so a stopped
    server's port is held by a socket that listens to nothing: connections are refused, as
    by a database that is down)."""

    def __init__(self):
        self.initdb, self.pg_ctl = _postgres_program("initdb"), _postgres_program("pg_ctl")
        # Not pytest's tmp_path: PostgreSQL refuses to run as root, and the postgres user
        # cannot enter pytest's private folders.
        self.folder = Path(tempfile.mkdtemp(prefix="grader-postgres-"))
        self.as_server_user = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self.as_server_user = ["runuser", "-u", "postgres", "--"]
        self.port, self.data = _free_port(), self.folder / "data"
        self.held = None  # the stopped server's port, held

    @property
    def url(self):
        return f"postgresql://grader@127.0.0.1:{self.port}/{DATABASE}"

    def create(self, attempts=5):
        self._run(self.initdb, "-D", str(self.data), "-U", "grader", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        for attempt in range(attempts):
            try:
                self.start()
                break
            except subprocess.CalledProcessError:
                if attempt == attempts - 1 or "already in use" not in self._log():
                    raise
                self.port = _free_port()
        self._run(_postgres_program("createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "grader", DATABASE)

    def start(self):
        self._release_port()
        settings = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-o", settings, "-w", "start")

    def stop(self, hold_port=False):
        subprocess.run([*self.as_server_user, self.pg_ctl, "-D", str(self.data), "-m",
                        "immediate", "-w", "stop"], capture_output=True)
        if hold_port:
            self.held = socket.socket()
            self.held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.held.bind(("127.0.0.1", self.port))

    def _release_port(self):
        if self.held is not None:
            self.held.close()
            self.held = None

    def _log(self):
        with contextlib.suppress(OSError):
            return (self.folder / "server.log").read_text(errors="replace")
        return ""

    def remove(self):
        self.stop()
        self._release_port()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, *command):
        subprocess.run([*self.as_server_user, *command], check=True, capture_output=True)


@pytest.fixture(scope="module")
def postgres():
    if not (_postgres_program("initdb") and _postgres_program("pg_ctl")):
        pytest.fail("PostgreSQL is not installed: `make test` installs it "
                    "(tools/install_system_packages.sh)")
    server = PostgresServer()
    try:
        server.create()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def postgres_url(postgres):
    return postgres.url


def _rows(out):
    with (out / "grades.csv").open(newline="") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


def _scores(db_url):
    """{student: (score, max score)} for every student the gradebook knows, submission or
    not, read through nbgrader's own API."""
    with (warnings.catch_warnings(), Gradebook(db_url, course_id=lab.course_id) as gradebook):
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
    # A host that does not answer must not hang the batch: a connect timeout, unless given.
    assert (gradebook_url(tmp_path, "postgresql://ta:secret@db.example:5432/grades")
            == "postgresql+psycopg2://ta:secret@db.example:5432/grades?connect_timeout=10")
    assert (gradebook_url(tmp_path, "postgresql+psycopg2://ta@db/grades?connect_timeout=3")
            == "postgresql+psycopg2://ta@db/grades?connect_timeout=3")
    assert gradebook_url(tmp_path, None) == f"sqlite:///{tmp_path.resolve() / 'gradebook.db'}"


def test_a_gradebook_url_that_is_not_one_is_refused(tmp_path):
    with pytest.raises(GradebookError, match="is not a database URL"):
        gradebook_url(tmp_path, "gradebook on the server")


def test_a_database_down_mid_batch_costs_only_its_rows_until_publish(postgres, class_dir,
                                                                    graded, tmp_path,
                                                                    monkeypatch):
    some = tmp_path / "some"
    for student in SOME_STUDENTS:
        shutil.copytree(class_dir / student, some / student)
    out = tmp_path / "out"
    url = postgres.url.replace(f"/{DATABASE}", "/outage")
    postgres._run(_postgres_program("createdb"), "-h", "127.0.0.1", "-p", str(postgres.port),
                  "-U", "grader", "outage")
    written = []  # the students of the one batch of rows written before the outage

    def then_the_database_stops(self, records):
        write_rows(self, records)
        if not written:
            written.extend(record.student_id for record in records)
            postgres.stop(hold_port=True)

    write_rows = GradebookWriter.record_many
    monkeypatch.setattr(GradebookWriter, "record_many", then_the_database_stops)
    monkeypatch.setattr(publisher, "GRADEBOOK_BATCH", 1)  # a batch of rows per student
    try:
        batch = autograde(submissions=some, out=out, db=url, workers=2,
                          limits=Limits(cell_timeout=10))
    finally:
        postgres.start()
    assert batch.gradebook_problem is not None and len(written) == 1
    pending = [record.student_id for record in batch.records if not record.in_gradebook]
    assert sorted(pending) == sorted(set(SOME_STUDENTS) - set(written))
    in_sqlite, _ = graded
    # grades.csv, feedback and the journal are whole; only the gradebook lacks rows.
    assert _rows(out) == {student: _rows(in_sqlite)[student] for student in SOME_STUDENTS}
    assert all((out / "feedback" / student).is_dir() for student in SOME_STUDENTS
               if not student.startswith("invalid"))
    assert list(_scores(gradebook_url(out, url))) == written
    result = subprocess.run([sys.executable, "-m", "grader", "publish", str(out)],
                            capture_output=True, text=True, cwd=lab.root, timeout=600)
    assert result.returncode == 0, result.stderr
    sqlite_scores = _scores(gradebook_url(in_sqlite, None))
    assert _scores(gradebook_url(out, url)) == {
        student: sqlite_scores[student] for student in SOME_STUDENTS}
    records, problem = publish_again(out=out, lab=lab)  # again: nothing left to write
    assert problem is None and all(record.in_gradebook for record in records)
