"""The confined kernels' user ids: a range that meets no user, group or subordinate ids."""

import pytest

from grader.run import kernel_uids
from grader.run.kernel_uids import FIRST_UID, LAST_ID, NoFreeRange, free_base, taken_ranges


def _etc(tmp_path, **files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_files_give_every_id_and_range_they_hold(tmp_path):
    etc = _etc(tmp_path,
               passwd="root:x:0:0:root:/root:/bin/bash\n# a comment\n\n"
                      "alice:x:1000:1000::/home/alice:/bin/sh\nbroken line\n",
               group="root:x:0:\nstaff:x:50:alice\n",
               subuid="alice:100000:65536\nbob:300000:65536\n",
               subgid="alice:100000:65536\nnonsense:x:y\n")
    assert taken_ranges(etc) == [(0, 1), (0, 1), (0, 1), (50, 51), (1000, 1001), (1000, 1001),
                                 (100000, 165536), (100000, 165536), (300000, 365536)]


def test_missing_files_take_nothing(tmp_path):
    assert taken_ranges(tmp_path) == []


def test_a_free_machine_starts_at_the_first_id():
    assert free_base([(0, 1), (1000, 1001)], span=32768) == FIRST_UID


def test_the_base_moves_past_every_overlap():
    # A subordinate range under FIRST_UID + pid_max, then a user inside the next try, then
    # a gap too small: the range starts after all three.
    taken = [(150000, 210000), (240000, 240001), (260000, 290000)]
    base = free_base(taken, span=32768)
    assert base == 290000
    assert all(end <= base or start >= base + 32768 for start, end in taken)


def test_a_gap_that_fits_is_used():
    assert free_base([(FIRST_UID + 40000, FIRST_UID + 50000)], span=32768) == FIRST_UID
    assert free_base([(FIRST_UID, FIRST_UID + 10), (FIRST_UID + 40000, FIRST_UID + 40001)],
                     span=32768) == FIRST_UID + 10


def test_no_room_under_the_last_id_is_an_error():
    with pytest.raises(NoFreeRange, match="no range of 4194304 user ids"):
        free_base([(FIRST_UID, LAST_ID - 100)], span=4194304)
    assert free_base([], span=4194304, first=LAST_ID - 4194304) == LAST_ID - 4194304


def test_the_machines_base_holds_its_pids(tmp_path):
    base = kernel_uids.base()
    span = kernel_uids.pid_max()
    assert base >= FIRST_UID and base + span <= LAST_ID
    assert all(end <= base or start >= base + span for start, end in taken_ranges())
    assert kernel_uids.pid_max(_etc(tmp_path, pid_max="4194304\n") / "pid_max") == 4194304
