"""The penalty each feedback page shows is kept in one journal fact: written only when a
page's penalty changes, so that a class on time never rewrites it."""

from grader.publish.publisher import PAGE_PENALTIES, page_penalties


class _Facts:
    """A journal's facts, counting the writes."""

    def __init__(self):
        self.facts, self.writes = {}, 0

    def fact(self, name, default=None):
        value = self.facts.get(name, default)
        return dict(value) if isinstance(value, dict) else value

    def set_fact(self, name, value):
        self.facts[name] = dict(value)
        self.writes += 1


def test_a_class_on_time_never_writes_the_fact():
    journal = _Facts()
    for number in range(1000):
        assert page_penalties(journal, {f"s{number}": 0.0}) == {}
    assert journal.writes == 0


def test_a_late_page_is_written_once_and_forgotten_when_its_penalty_goes():
    journal = _Facts()
    page_penalties(journal, {"late": 10.0})
    page_penalties(journal, {"on-time": 0.0})
    page_penalties(journal, {"late": 10.0})  # the same page again: nothing to write
    assert (journal.facts[PAGE_PENALTIES], journal.writes) == ({"late": 10.0}, 1)
    assert page_penalties(journal) == {"late": 10.0}
    page_penalties(journal, {"late": 0.0})  # an extension: the page shows no penalty
    assert (journal.facts[PAGE_PENALTIES], journal.writes) == ({}, 2)
