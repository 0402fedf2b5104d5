"""Late work end to end: a class collected in nbgrader's layout (one student on time, two
late, one late but with an extension, one without a timestamp), graded once and published
again under each late policy; the penalties checked in grades.csv, `nbgrader export`, the
report and the feedback pages. Then the grades and the pages handed back: to an LMS, and
through nbgrader's generate_feedback and release_feedback into an exchange."""

import contextlib
import csv
import html
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import corpus
import nbformat
import pytest
from nbgrader.utils import notebook_hash

from grader.labs.c2_w2 import LAB
from tools.student_lab import bound_port

DUE = "2026-12-02T00:00:00+01:00"  # 23:00 UTC on the 1st
FULL = corpus.ANSWERS["ok-loop-softmax-input-model"]
HALF = corpus.ANSWERS["wrong-model-softmax-output"]
# student -> (answers, timestamp.txt or None)
CLASS = {
    "on_time": (FULL, "2026-12-01 22:00:00.000000 UTC"),
    "late": (FULL, "2026-12-03 00:00:00.000000 UTC"),  # 25 h late: 2 started days
    "extended": (FULL, "2026-12-02 20:00:00.000000 UTC"),  # 21 h late, extension: on time
    "no_stamp": (FULL, None),
    "late_half": (HALF, "2026-12-05 00:00:00.000000 UTC"),  # 73 h late: 4 started days
}
LATE_SECONDS = {"on_time": 0, "late": 25 * 3600, "extended": 0, "no_stamp": 0,
                "late_half": 73 * 3600}
# The secret nbgrader's exchange gave on_time at submit time: fetch_feedback finds the page
# by it, so the grader must carry it over (the others get one drawn for them).
EXCHANGE_SECRET = "5eed" * 32
SCORES = {"on_time": 100, "late": 100, "extended": 100, "no_stamp": 100, "late_half": 50}
PENALTIES = {  # policy -> the students it takes points from, and how many
    "10%": {"late": 20, "late_half": 40},
    "zero": {"late": 100, "late_half": 50},
    "none": {},
}


def _grader(*args):
    result = subprocess.run([sys.executable, "-m", "grader", *map(str, args)],
                            capture_output=True, text=True, cwd=LAB.root, timeout=900)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def late_out(released_lab, tmp_path_factory, sandbox_required):
    """(OUT, the collected course): the class graded under 10% per day."""
    root = tmp_path_factory.mktemp("late")
    release = nbformat.read(released_lab / LAB.notebook_name, as_version=4)
    for student, ((softmax, model), stamp) in CLASS.items():
        folder = root / "course" / "submitted" / student / LAB.assignment
        folder.mkdir(parents=True)
        nbformat.write(corpus.answered(release, softmax, model), folder / LAB.notebook_name)
        if stamp:
            (folder / "timestamp.txt").write_text(stamp)
    secret_file = root / "course" / "submitted" / "on_time" / LAB.assignment
    (secret_file / "submission_secret.txt").write_text(EXCHANGE_SECRET)
    (root / "extensions.csv").write_text("student_id,due\nextended,2026-12-03T23:00:00Z\n")
    out = root / "out"
    _grader("autograde", root / "course" / "submitted", "--out", out, "--workers", 2,
            "--cell-timeout", 10, "--due", DUE, "--late-penalty", "10%",
            "--extensions", root / "extensions.csv")
    return out


def _grades(out):
    with (out / "grades.csv").open(newline="") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


def _nbgrader_export(out, tmp_path):
    exported = tmp_path / "export.csv"
    subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(exported)],
                   cwd=out / "nbgrader", check=True, capture_output=True, timeout=600)
    with exported.open(newline="") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


def _page_text(out, student):
    page = (out / "feedback" / student / "C2_W2_Assignment.html").read_text()
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.mark.parametrize("policy", ["10%", "zero", "none"])
def test_each_policy_in_grades_csv_nbgrader_export_the_report_and_the_pages(
        late_out, policy, tmp_path):
    if policy != "10%":  # recomputed from the journal's timestamps, never graded again
        published = _grader("publish", late_out, "--late-penalty", policy)
        assert "Published 5 students" in published.stdout
    grades, exported = _grades(late_out), _nbgrader_export(late_out, tmp_path)
    report = (late_out / "report.html").read_text()
    for student, score in SCORES.items():
        penalty = PENALTIES[policy].get(student, 0)
        row = grades[student]
        assert (row["score"], row["late_seconds"], row["penalty"], row["final_score"]) == \
            (str(score), str(LATE_SECONDS[student]), str(penalty), str(score - penalty)), student
        assert row["timestamp"] == ("" if student == "no_stamp" else
                                    CLASS[student][1].replace(" ", "T", 1)
                                    .replace(".000000 UTC", "+00:00"))
        nb_row = exported[student]
        assert float(nb_row["raw_score"]) == score
        assert float(nb_row["late_submission_penalty"]) == penalty, student
        assert float(nb_row["score"]) == score - penalty
        assert nb_row["timestamp"].startswith(row["timestamp"][:19].replace("T", " "))
        assert nb_row["duedate"].startswith("2026-12-01 23:00:00")
        assert (f'data-student="{student}" data-late-seconds="{LATE_SECONDS[student]}"'
                f' data-penalty="{penalty}" data-final-score="{score - penalty}"') in report
        text = _page_text(late_out, student)
        assert (f"Late submission penalty: -{penalty:g} points." in text) == bool(penalty)
    assert f'data-penalty="{policy}"' in report
    assert "2026-12-01 23:00:00 UTC" in report  # the due date, as the report writes times


def test_the_due_date_moves_without_a_regrade(late_out):
    """A later --due given to publish: nobody is late; the policy is kept from before."""
    _grader("publish", late_out, "--due", "2026-12-06T00:00:00Z", "--late-penalty", "10%")
    try:
        assert {row["penalty"] for row in _grades(late_out).values()} == {"0"}
    finally:
        _grader("publish", late_out, "--due", DUE)
    assert _grades(late_out)["late"]["penalty"] == "20"


def test_lms_exports_and_one_page_per_student(late_out, tmp_path):
    _grader("publish", late_out, "--late-penalty", "10%")
    _grader("export", late_out, "--format", "canvas", "--to", tmp_path / "canvas.csv")
    rows = list(csv.reader((tmp_path / "canvas.csv").open()))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "C2_W2"]
    assert ["late", "", "late", "late", "", "80"] in rows
    _grader("export", late_out, "--format", "moodle")
    assert "late_half,10\n" in (late_out / "grades-moodle.csv").read_text()
    _grader("feedback", late_out, "--to", tmp_path / "pages")
    assert sorted(path.name for path in (tmp_path / "pages").iterdir()) == \
        sorted(f"{student}.html" for student in CLASS)


def test_nbgraders_generate_and_release_feedback_reach_the_exchange(late_out, tmp_path):
    exchange = tmp_path / "exchange"
    exchange.mkdir(mode=0o777)
    os.chmod(exchange, 0o777)  # nbgrader wants a world-writable exchange
    config = [f"--CourseDirectory.root={late_out / 'nbgrader'}",
              f"--Exchange.root={exchange}", f"--CourseDirectory.course_id={LAB.course_id}"]
    for command in (["release_feedback", LAB.assignment],
                    ["generate_feedback", LAB.assignment, "--force"],
                    ["release_feedback", LAB.assignment]):
        result = subprocess.run([sys.executable, "-m", "nbgrader", *command, *config],
                                cwd=late_out / "nbgrader", capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, (command, result.stdout + result.stderr)
    released = list((exchange / LAB.course_id / "feedback").glob("*.html"))
    assert len(released) == len(CLASS)
    # Where on_time's `nbgrader fetch_feedback` looks: named by the secret they were given.
    name = notebook_hash(secret=EXCHANGE_SECRET, notebook_id=Path(LAB.notebook_name).stem)
    assert (exchange / LAB.course_id / "feedback" / f"{name}.html").is_file()


# ---------------------------------------------------------------- formgrader, in a browser

FORMGRADER_START_SECONDS = 120


@pytest.fixture
def formgrader(late_out, tmp_path):
    """formgrader (a Jupyter server with nbgrader's extension) on OUT's course, loopback
    only, with a token: its base URL with the token. It binds port 0 and says which port it
    got (a port probed free may be taken before a server binds it)."""
    token = secrets.token_hex(16)
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.py").write_text(
        'c.ServerApp.jpserver_extensions = {"nbgrader.server_extensions.formgrader": True}\n')
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "PYTHONPATH": str(LAB.root)}
    course = late_out / "nbgrader"
    with (tmp_path / "formgrader.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={course}"],
            cwd=course, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        base = _wait_for(server, token, tmp_path / "runtime", tmp_path / "formgrader.log")
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_for(server, token, runtime, log):
    """The server's base URL, once it answers; its port from its jpserver-PID.json."""
    deadline = time.monotonic() + FORMGRADER_START_SECONDS
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-3000:]
        port = bound_port(runtime, server.pid)
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            if port:
                base = f"http://127.0.0.1:{port}"
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                return base
        time.sleep(0.5)  # polling a file and a socket: nothing to wait on instead
    raise AssertionError(f"formgrader did not start:\n{log.read_text()[-3000:]}")


@pytest.fixture
def chromium():
    """Headless Chromium, as tests/browser drives it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.mark.browser
def test_formgrader_shows_the_release_the_submissions_the_due_date_and_the_scores(
        late_out, formgrader, chromium, tmp_path):
    _grader("publish", late_out, "--due", DUE, "--late-penalty", "10%")
    base, token = formgrader
    page = chromium.new_page()
    try:
        page.goto(f"{base}/formgrader/manage_assignments?token={token}")
        row = page.locator("tr", has=page.locator("td.num-submissions")).filter(
            has_text=LAB.assignment)
        row.locator("td.num-submissions a, td.num-submissions").first.wait_for()
        page.wait_for_function("document.querySelector('td.num-submissions')"
                               " && document.querySelector('td.num-submissions').innerText"
                               ".trim() !== ''")
        assert row.locator("td.num-submissions").inner_text().strip() == str(len(CLASS))
        assert row.locator("td.status").inner_text().strip() == "released"
        assert "2026-12-01 23:00:00" in row.locator("td.duedate").inner_text()
        page.screenshot(path=tmp_path / "manage_assignments.png")
        page.goto(f"{base}/formgrader/gradebook/{LAB.assignment}/C2_W2_Assignment"
                  f"?token={token}")
        page.wait_for_function(f"document.querySelectorAll('td.score').length"
                               f" === {len(CLASS)}")
        scores = sorted(float(text.split("/")[0]) for text in
                        page.locator("td.score").all_inner_texts())
        assert scores == sorted(float(score) for score in SCORES.values())
        page.screenshot(path=tmp_path / "gradebook.png")
    finally:
        page.close()
