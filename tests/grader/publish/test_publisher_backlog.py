"""The publisher's queue is bounded: a cluster that grades faster than one publisher saves
waits for it, instead of piling the class's results (their notebooks) up in memory; and it
keeps no Future of a result already saved."""

import concurrent.futures
import threading

import pytest

from grader.labs.c2_w2 import LAB as lab
from grader.publish.gradebook import results_course
from grader.publish.journal import Journal
from grader.publish.publisher import Publisher
from grader.records import StudentResult

WAIT = 10  # seconds, for what must happen; what must not is checked after a short while


@pytest.fixture
def publisher_of(tmp_path, monkeypatch):
    """A Publisher(backlog=...) whose saving of a student is `save(result)`."""
    opened = []

    def make(save, backlog):
        monkeypatch.setattr(Publisher, "_publish", lambda self, result, on_done: save(result))
        journal = Journal(tmp_path / "out")
        ready = concurrent.futures.Future()
        ready.set_result(None)
        publisher = Publisher(out=tmp_path / "out", lab=lab, journal=journal,
                              course=results_course(tmp_path / "out", lab),
                              gradebook_ready=ready, db_url="sqlite://", version="", batch=1,
                              backlog=backlog)
        opened.append(journal)
        return publisher

    yield make
    for journal in opened:
        journal.close()


def _result(number):
    return StudentResult(f"student-{number}", "graded")


def test_a_full_backlog_waits_for_a_result_to_be_saved(publisher_of):
    go_on, saved = threading.Event(), []

    def slow(result):
        go_on.wait(WAIT)
        saved.append(result.student_id)

    publisher = publisher_of(slow, backlog=2)
    publisher.publish(_result(1))
    publisher.publish(_result(2))
    third = threading.Thread(target=publisher.publish, args=(_result(3),))
    third.start()
    third.join(0.5)
    assert third.is_alive(), "a third result was taken with two waiting"
    go_on.set()
    third.join(WAIT)
    assert not third.is_alive()
    publisher.close()
    assert saved == ["student-1", "student-2", "student-3"]


def test_no_future_of_a_saved_result_is_kept(publisher_of):
    publisher = publisher_of(lambda result: None, backlog=4)
    for number in range(200):
        publisher.publish(_result(number))
    assert len(publisher._pending) <= 4 + 1
    publisher.close()
    assert not publisher._failed


def test_a_fault_while_saving_is_raised_by_close_not_in_the_batch(publisher_of):
    def broken(result):
        if result.student_id == "student-1":
            raise RuntimeError("broken")

    publisher = publisher_of(broken, backlog=2)
    for number in range(20):  # the batch goes on past the fault
        publisher.publish(_result(number))
    with pytest.raises(RuntimeError, match="broken"):
        publisher.close()
