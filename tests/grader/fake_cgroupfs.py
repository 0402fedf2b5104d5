"""A cgroup v2 file system in a temporary directory, for the hosts cgroup v2 is not mounted on.

Real files stand for the interface files, and every write goes through `FakeCgroup2`, which
enforces the kernel's rules the grader depends on (Documentation/admin-guide/cgroup-v2.rst):

- a group's `cgroup.controllers` is what its parent enabled in `cgroup.subtree_control`,
  and a controller's files (`memory.max`, `memory.events`, `memory.swap.max`, `pids.max`)
  appear in a child only once the parent enabled it;
- a controller can be enabled only if it is in the group's own `cgroup.controllers`;
- no internal processes: a group other than the root cannot enable a controller for its
  children while it holds processes, nor take processes while it has one enabled;
- a process is in exactly one group; writing its pid to a `cgroup.procs` moves it, a dead
  one cannot be moved (ESRCH), and dead or zombie processes are not listed;
- interface files cannot be created (EACCES), read-only ones not written, limits must be
  numbers or "max" (EINVAL);
- `cgroup.kill` kills every process of the group and its descendants;
- a group with processes or children cannot be removed (EBUSY).

The processes are real (the tests start `sleep`s and the code kills them), but the fake
cannot see a process fork: a test adds a child to a group itself, where the kernel would.
"""

import contextlib
import errno
import os
import shutil
import signal
from pathlib import Path

from grader.run.cgroups import Files

MEMORY_EVENTS = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"
CONTROLLER_FILES = {"memory": {"memory.max": "max\n", "memory.events": MEMORY_EVENTS,
                               "memory.current": "0\n"},
                    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
                    "cpu": {"cpu.max": "max 100000\n"}}
LIMITS = {"memory.max", "memory.swap.max", "pids.max"}
READ_ONLY = {"cgroup.controllers", "cgroup.events", "memory.events", "memory.current",
             "pids.current"}


def _error(code, path):
    return OSError(code, os.strerror(code), str(path))


class FakeCgroup2(Files):
    """The root of a fake cgroup v2 hierarchy at `self.root`."""

    def __init__(self, directory, *, controllers=("cpu", "memory", "pids"), swap=True):
        self.root = Path(directory) / "cgroup"
        self.swap = swap
        self.delegated_groups = set()
        self.owned_groups = set()  # as a user: groups whose files were given to the user
        self.failing = {}  # file name -> errno: every write to such a file fails
        self.writes = []  # (path, text) of every write, in order
        self.root.mkdir(parents=True)
        for name, text in (("cgroup.controllers", " ".join(controllers) + "\n"),
                           ("cgroup.subtree_control", "\n"), ("cgroup.procs", ""),
                           ("cgroup.max.depth", "max\n")):
            (self.root / name).write_text(text)

    # ---------------------------------------------------------------- set-up for a test

    def make(self, relative, *, procs=(), delegated=False, owned=False):
        """A group made as systemd makes it: every level above enables what the group
        needs (all the root has), the processes `procs` moved into it."""
        group = self.root
        for part in Path(relative).parts:
            if group == self.root or not self._pids(group):
                self.write(group / "cgroup.subtree_control",
                           " ".join(f"+{c}" for c in self._list(group / "cgroup.controllers")))
            group = group / part
            if not group.exists():
                self.mkdir(group)
        for pid in procs:
            self.write(group / "cgroup.procs", str(pid))
        if delegated:
            self.delegated_groups.add(group)
        if owned:
            self.owned_groups.add(group)
        return group

    def self_cgroup(self, group):
        """/proc/self/cgroup of a process in `group` (on a host with only cgroup v2)."""
        return f"0::/{group.relative_to(self.root)}\n" if group != self.root else "0::/\n"

    def fail(self, name, code=errno.EACCES):
        self.failing[name] = code

    def oom_kill(self, group):
        """As if the OOM killer had killed a process of `group` for its memory.max."""
        (group / "memory.events").write_text(MEMORY_EVENTS.replace("oom_kill 0", "oom_kill 1"))

    def groups(self):
        return sorted(path.parent for path in self.root.rglob("cgroup.procs"))

    # ---------------------------------------------------------------- the Files interface

    def read(self, path):
        path = Path(path)
        if path.name == "cgroup.procs":
            return "".join(f"{pid}\n" for pid in self._pids(path.parent))
        return super().read(path)

    def write(self, path, text):
        path = Path(path)
        self.writes.append((path, text))
        if path.name in self.failing:
            raise _error(self.failing[path.name], path)
        if not path.exists():
            raise _error(errno.EACCES, path)  # cgroupfs: no new files
        if path.name in READ_ONLY:
            raise _error(errno.EACCES, path)
        group = path.parent
        if path.name == "cgroup.subtree_control":
            self._subtree_control(group, text)
        elif path.name == "cgroup.procs":
            self._move(int(text), group)
        elif path.name == "cgroup.kill":
            if text.strip() != "1":
                raise _error(errno.EINVAL, path)
            for member in [group, *(g for g in self.groups() if group in g.parents)]:
                for pid in self._pids(member):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        elif path.name in LIMITS:
            value = text.strip()
            if value != "max" and not value.isdigit():
                raise _error(errno.EINVAL, path)
            path.write_text(value + "\n")
        else:
            path.write_text(text)

    def mkdir(self, path):
        path = Path(path)
        parent = path.parent
        if not (parent / "cgroup.procs").exists():
            raise _error(errno.ENOENT, path)
        os.mkdir(path)  # FileExistsError as the real one
        enabled = self._list(parent / "cgroup.subtree_control")
        files = {"cgroup.procs": "", "cgroup.subtree_control": "\n", "cgroup.kill": "",
                 "cgroup.controllers": " ".join(enabled) + "\n", "cgroup.type": "domain\n",
                 "cgroup.events": "populated 0\nfrozen 0\n"}
        for name, text in files.items():
            (path / name).write_text(text)
        for controller in enabled:
            self._add_controller_files(path, controller)

    def rmdir(self, path):
        path = Path(path)
        if not path.exists():
            raise _error(errno.ENOENT, path)
        if self._pids(path) or any(child.is_dir() for child in path.iterdir()):
            raise _error(errno.EBUSY, path)
        shutil.rmtree(path)

    def delegated(self, path):
        return Path(path) in self.delegated_groups

    def writable(self, path):
        return Path(path).parent in self.owned_groups

    # ---------------------------------------------------------------- the rules

    def _subtree_control(self, group, text):
        available = self._list(group / "cgroup.controllers")
        enabled = self._list(group / "cgroup.subtree_control")
        for word in text.split():
            sign, controller = word[0], word[1:]
            if sign not in "+-" or controller not in available:
                raise _error(errno.ENOENT if sign in "+-" else errno.EINVAL,
                             group / "cgroup.subtree_control")
            if sign == "+" and controller not in enabled:
                if group != self.root and self._pids(group):  # no internal processes
                    raise _error(errno.EBUSY, group / "cgroup.subtree_control")
                enabled.append(controller)
            elif sign == "-" and controller in enabled:
                enabled.remove(controller)
        (group / "cgroup.subtree_control").write_text(" ".join(enabled) + "\n")
        for child in (c for c in group.iterdir() if (c / "cgroup.procs").exists()):
            (child / "cgroup.controllers").write_text(" ".join(enabled) + "\n")
            for controller in enabled:
                self._add_controller_files(child, controller)

    def _add_controller_files(self, group, controller):
        files = dict(CONTROLLER_FILES.get(controller, {}))
        if controller == "memory" and self.swap:
            files["memory.swap.max"] = "max\n"
        for name, text in files.items():
            if not (group / name).exists():
                (group / name).write_text(text)

    def _move(self, pid, group):
        if not _alive(pid):
            raise _error(errno.ESRCH, group / "cgroup.procs")
        if group != self.root and self._list(group / "cgroup.subtree_control"):
            raise _error(errno.EBUSY, group / "cgroup.procs")  # no internal processes
        for other in self.groups():
            pids = self._pids(other)
            if pid in pids:
                self._store(other, [p for p in pids if p != pid])
        self._store(group, [*self._pids(group), pid])

    def _pids(self, group):
        text = (group / "cgroup.procs").read_text()
        return [int(pid) for pid in text.split() if _alive(int(pid))]

    def _store(self, group, pids):
        (group / "cgroup.procs").write_text("".join(f"{pid}\n" for pid in pids))

    @staticmethod
    def _list(path):
        return path.read_text().split()


def _alive(pid):
    """Whether `pid` runs (a zombie does not: the kernel does not list it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
