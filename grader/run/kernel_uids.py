"""The user ids confined kernels run as: a range no one else on the machine uses.

A kernel's user id is the range's base plus its pid, unique while it lives (pids are), so
one kernel can neither signal nor read another's. The range is as long as the machine's
pid_max, and its base is the first one from FIRST_UID up whose range meets no user or
group of /etc/passwd and /etc/group and no subordinate range of /etc/subuid and
/etc/subgid (the ids container tools map into user namespaces): a kernel must never own
the files of a host user or of someone's container.
"""

import functools
from pathlib import Path

FIRST_UID = 200000  # the lowest base: past the ids that useradd and package users take
LAST_ID = 2**32 - 2  # (uid_t) -1 means "no change" to setresuid; no id reaches it
PID_MAX = "/proc/sys/kernel/pid_max"


class NoFreeRange(RuntimeError):
    """No range of ids under LAST_ID is free of the machine's users and subordinate ids."""


def taken_ranges(etc="/etc"):
    """The ids the machine gives out, as sorted (first, end) pairs, end excluded: the
    users' and groups' ids, and the subordinate ranges (name:first:count)."""
    etc = Path(etc)
    taken = [(first, first + count) for name in ("subuid", "subgid")
             for first, count in _subordinate_ranges(etc / name)]
    # A user's id and primary group (passwd), a group's id (group).
    taken += [(number, number + 1) for name, columns in (("passwd", (2, 3)), ("group", (2,)))
              for number in _ids(etc / name, columns)]
    return sorted(taken)


def _subordinate_ranges(path):
    for fields in _records(path):
        if len(fields) >= 3 and fields[1].isdigit() and fields[2].isdigit():
            yield int(fields[1]), int(fields[2])


def _ids(path, columns):
    for fields in _records(path):
        for column in columns:
            if len(fields) > column and fields[column].isdigit():
                yield int(fields[column])


def _records(path):
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            yield line.strip().split(":")


def free_base(taken, span, first=FIRST_UID, last=LAST_ID):
    """The lowest base from `first` such that [base, base + span) meets none of the
    `taken` ranges and ends at or below `last`; NoFreeRange when there is none."""
    base = first
    for start, end in sorted(taken):
        if end <= base:
            continue
        if start >= base + span:
            break
        base = end  # overlaps: move past it
    if base + span > last:
        raise NoFreeRange(f"no range of {span} user ids from {first} up to {last} is free "
                          "of the users, groups and subordinate ids in /etc")
    return base


def pid_max(path=PID_MAX):
    """How many pids the machine may give out (pids are below it)."""
    return int(Path(path).read_text().split()[0])


@functools.cache
def base():
    """This machine's base: kernel user id = base() + pid. Read once per process (the
    template, before it forks its kernels)."""
    return free_base(taken_ranges(), pid_max())
