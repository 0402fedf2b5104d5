"""cgroup v2, the default of every current distribution, which these machines do not mount.

Two kinds of tests:
- on a model of cgroup v2's rules (fake_cgroupfs.FakeCgroup2, a temporary directory): where
  the groups go, that `memory` and `pids` are enabled as the kernel requires, the caps, the
  kill, the removal, stale groups, and that any failure is a reason rather than an error;
- on the real cgroup2 file system where one is mounted and writable (here the hybrid
  layout's /sys/fs/cgroup/unified, which has no memory or pids controller: those are bound
  to cgroup v1): making, joining, killing (`cgroup.kill`, double-forked daemons included)
  and removing groups, a delegated cgroup, stale groups of a killed grader, and the
  refusal of controllers the hierarchy does not have.
"""

import errno
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time

import fake_cgroupfs
import nbformat
import pytest
from fake_cgroupfs import FakeCgroup2
from nbformat.v4 import new_code_cell, new_notebook

from grader.records import KernelProtection, RunEnd
from grader.run import cgroup_groups, cgroups, sandbox
from grader.run.execution import execute
from grader.run.warm_kernels import KernelTemplate

MB = 2**20


@pytest.fixture
def fake(tmp_path):
    return FakeCgroup2(tmp_path)


@pytest.fixture
def sleepers():
    """Start `sleep`s; every one is killed and reaped at the end."""
    started = []

    def start(seconds=600, **kwargs):
        process = subprocess.Popen(["sleep", str(seconds)], **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def _find(fake, own, **kwargs):
    kwargs.setdefault("euid", 0)
    return cgroups.find(fake.root, files=fake, self_cgroup=fake.self_cgroup(own), **kwargs)


def _kernel_groups(fake):
    return [group for group in fake.groups() if group.name.startswith("kernel-")]


def _dead(process, seconds=5):
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return process.returncode == -signal.SIGKILL


# ------------------------------------------------------------------ the model's own rules

def test_the_model_refuses_what_the_kernel_refuses(fake, sleepers):
    parent = fake.make("a")
    fake.mkdir(parent / "child")
    assert not (parent / "child" / "memory.max").exists()  # not enabled by the parent
    with pytest.raises(OSError) as refused:
        fake.write(parent / "child" / "memory.max", "100")
    assert refused.value.errno == errno.EACCES
    fake.write(parent / "cgroup.procs", str(sleepers().pid))
    with pytest.raises(OSError) as busy:  # it holds a process
        fake.write(parent / "cgroup.subtree_control", "+memory")
    assert busy.value.errno == errno.EBUSY
    with pytest.raises(OSError) as busy:
        fake.rmdir(parent)
    assert busy.value.errno == errno.EBUSY
    empty = fake.make("b")
    fake.write(empty / "cgroup.subtree_control", "+memory +pids")
    fake.mkdir(empty / "child")
    assert (empty / "child" / "memory.max").exists() and (empty / "child" / "pids.max").exists()
    with pytest.raises(OSError) as busy:  # it enabled a controller for its children
        fake.write(empty / "cgroup.procs", str(sleepers().pid))
    assert busy.value.errno == errno.EBUSY
    with pytest.raises(OSError) as missing:
        fake.write(empty / "child" / "cgroup.subtree_control", "+io")
    assert missing.value.errno == errno.ENOENT


# ------------------------------------------------------------------ where the groups go

def test_as_root_outside_a_delegated_cgroup_kernels_go_under_a_grader_group(fake):
    session = fake.make("user.slice/session-1.scope", procs=[os.getpid()])
    hierarchy = _find(fake, session)
    grader = fake.root / "grader"
    assert hierarchy.version == 2 and hierarchy.parents == (grader,)
    assert fake.read(grader / "cgroup.subtree_control").split() == ["memory", "pids"]
    assert fake.read(session / "cgroup.procs").split() == [str(os.getpid())]  # left alone
    group = hierarchy.kernel_cgroup(memory_mb=300, max_processes=64)
    assert group.dirs == [grader / group.name]
    assert fake.read(group.dirs[0] / "memory.max").strip() == str(300 * MB)
    assert fake.read(group.dirs[0] / "memory.swap.max").strip() == "0"
    assert fake.read(group.dirs[0] / "pids.max").strip() == "64"
    group.close()
    assert _kernel_groups(fake) == []


def test_a_root_without_the_controllers_enabled_gets_them(tmp_path):
    # No systemd: the root enabled nothing. The root may hold processes and still enable.
    fake = FakeCgroup2(tmp_path)
    fake.write(fake.root / "cgroup.procs", str(os.getpid()))
    hierarchy = _find(fake, fake.root)
    assert {"memory", "pids"} <= set(fake.read(fake.root / "cgroup.subtree_control").split())
    hierarchy.kernel_cgroup(memory_mb=100, max_processes=8).close()


def test_in_a_delegated_cgroup_the_grader_moves_to_a_leaf_and_kernels_go_beside_it(
        fake, sleepers):
    helper = sleepers()  # another process of the grader's, in the same scope
    scope = fake.make("system.slice/grader.scope", procs=[os.getpid(), helper.pid],
                      delegated=True)
    hierarchy = _find(fake, scope)
    assert hierarchy.parents == (scope,)
    assert fake.read(scope / "cgroup.procs") == ""  # no internal processes
    assert sorted(fake.read(scope / "supervisor" / "cgroup.procs").split()) == sorted(
        [str(os.getpid()), str(helper.pid)])
    assert fake.read(scope / "cgroup.subtree_control").split() == ["memory", "pids"]
    group = hierarchy.kernel_cgroup(memory_mb=300, max_processes=64)
    assert group.dirs == [scope / group.name]
    group.close()
    # A worker started by the grader afterwards starts in the leaf: same place, no nesting.
    again = _find(fake, scope / "supervisor")
    assert again.parents == (scope,)
    assert not (scope / "supervisor" / "supervisor").exists()
    assert not (fake.root / "grader").exists()  # systemd's root left alone


def test_as_a_user_only_a_delegated_cgroup_will_do(tmp_path):
    fake = FakeCgroup2(tmp_path)
    session = fake.make("user.slice/session-1.scope", procs=[os.getpid()])
    with pytest.raises(cgroups.CgroupError, match="not running as root, and not started in "
                                                  "a delegated cgroup"):
        _find(fake, session, euid=1000)
    # systemd-run --user --scope -p Delegate=yes: the scope's files belong to the user.
    scope = fake.make("user.slice/user@1000.service/app.slice/run-1.scope",
                      procs=[os.getpid()], owned=True)
    assert _find(fake, scope, euid=1000).parents == (scope,)


def test_controllers_not_delegated_are_a_reason(tmp_path):
    fake = FakeCgroup2(tmp_path, controllers=("cpu", "pids"))
    scope = fake.make("system.slice/grader.scope", procs=[os.getpid()], delegated=True)
    with pytest.raises(cgroups.CgroupError, match="the memory controller cannot be enabled"):
        _find(fake, scope)


def test_a_grader_group_holding_processes_is_a_reason(fake, sleepers):
    squatter = fake.make("grader", procs=[sleepers().pid])
    with pytest.raises(cgroups.CgroupError, match="no-internal-processes rule"):
        _find(fake, fake.make("user.slice/session-1.scope", procs=[os.getpid()]))
    assert fake.read(squatter / "cgroup.procs").strip()  # and it is left as it was


# ------------------------------------------------------------------ a kernel's group

def test_memory_cap_process_cap_and_the_oom_counter(fake):
    hierarchy = _find(fake, fake.make("system.slice/grader.scope", procs=[os.getpid()],
                                      delegated=True))
    group = hierarchy.kernel_cgroup(memory_mb=4096, max_processes=1024)
    assert fake.read(group.dirs[0] / "memory.max").strip() == str(4096 * MB)
    assert fake.read(group.dirs[0] / "pids.max").strip() == "1024"
    assert not group.hit_memory_limit()
    fake.oom_kill(group.dirs[0])  # read from memory.events, as the kernel counts it
    assert group.hit_memory_limit()
    group.close()


def test_without_swap_accounting_there_is_no_swap_cap_to_write(tmp_path):
    fake = FakeCgroup2(tmp_path, swap=False)
    hierarchy = _find(fake, fake.make("s.scope", procs=[os.getpid()], delegated=True))
    group = hierarchy.kernel_cgroup(memory_mb=300, max_processes=64)
    assert fake.read(group.dirs[0] / "memory.max").strip() == str(300 * MB)
    assert not any(path.name == "memory.swap.max" for path, _ in fake.writes)
    group.close()


def test_everything_in_the_group_is_killed_and_the_group_removed(fake, sleepers):
    hierarchy = _find(fake, fake.make("s.scope", procs=[os.getpid()], delegated=True))
    group = hierarchy.kernel_cgroup(memory_mb=300, max_processes=64)
    kernel = sleepers()
    daemon = sleepers(start_new_session=True)  # as a double-forked daemon: its own session
    assert group.add(kernel.pid) and group.add(daemon.pid)
    assert sorted(group.pids()) == sorted([kernel.pid, daemon.pid])
    group.close()
    assert _dead(kernel) and _dead(daemon)
    assert _kernel_groups(fake) == []
    assert any(path.name == "cgroup.kill" for path, _ in fake.writes)


# ------------------------------------------------------------------ failures: a reason

@pytest.mark.parametrize("name", ["cgroup.subtree_control", "memory.max", "memory.swap.max",
                                  "pids.max", "cgroup.procs"])
def test_any_write_that_fails_is_a_reason_and_leaves_nothing(fake, name):
    scope = fake.make("s.scope", procs=[os.getpid()], delegated=True)
    fake.fail(name, errno.EPERM)
    with pytest.raises(cgroups.CgroupError, match="Operation not permitted"):
        _find(fake, scope)
    assert _kernel_groups(fake) == []


def test_without_cgroup_kill_each_process_is_killed(fake, sleepers):
    fake.fail("cgroup.kill")  # Linux before 5.14 has none
    hierarchy = _find(fake, fake.make("s.scope", procs=[os.getpid()], delegated=True))
    group = hierarchy.kernel_cgroup(memory_mb=300, max_processes=64)
    kernel, daemon = sleepers(), sleepers(start_new_session=True)
    group.add(kernel.pid)
    group.add(daemon.pid)
    group.close()
    assert _dead(kernel) and _dead(daemon)
    assert _kernel_groups(fake) == []


# ------------------------------------------------------------------ stale groups

def _dead_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_groups_whose_maker_is_gone_are_removed_with_what_is_in_them(fake, sleepers):
    scope = fake.make("s.scope", procs=[os.getpid()], delegated=True)
    hierarchy = _find(fake, scope)
    namespace, pid, start = cgroups._identity()
    orphan = scope / f"kernel-{namespace}-{_dead_pid()}-{start}-0badcafe"
    reused = scope / f"kernel-{namespace}-{pid}-{start + 1}-0badcafe"  # same pid, not us
    mine = hierarchy.kernel_cgroup(memory_mb=100, max_processes=8)
    mine_but_forgotten = hierarchy.kernel_cgroup(memory_mb=100, max_processes=8)
    fresh_legacy, old_legacy, busy_legacy, foreign = (
        scope / "kernel-0123456789ab", scope / "kernel-ba9876543210",
        scope / "kernel-aaaaaaaaaaaa", scope / f"kernel-{namespace + 1}-1-1-0badcafe")
    for group in (orphan, reused, fresh_legacy, old_legacy, busy_legacy, foreign):
        fake.mkdir(group)
    daemon = sleepers(start_new_session=True)
    fake.write(orphan / "cgroup.procs", str(daemon.pid))
    fake.write(busy_legacy / "cgroup.procs", str(sleepers().pid))
    long_ago = time.time() - cgroups.STALE_EMPTY_SECONDS - 60
    for group in (old_legacy, busy_legacy, foreign, mine_but_forgotten.dirs[0]):
        os.utime(group, (long_ago, long_ago))
    removed = hierarchy.remove_stale()
    assert sorted(removed) == sorted([orphan.name, reused.name, old_legacy.name, foreign.name,
                                      mine_but_forgotten.name])
    assert _dead(daemon)
    assert sorted(_kernel_groups(fake)) == sorted(
        [mine.dirs[0], fresh_legacy, busy_legacy])  # ours, or maybe another grader's
    mine.close()


# ------------------------------------------------------------------ degrading, said once

@pytest.fixture(scope="module")
def template():
    template = KernelTemplate()
    yield template
    template.close()


def _notebook(*sources):
    return nbformat.from_dict(new_notebook(cells=[new_code_cell(s) for s in sources]))


def test_a_kernel_whose_group_cannot_be_made_runs_with_rlimits_and_it_is_said_once(
        fake, template, tmp_path, monkeypatch, caplog):
    hierarchy = _find(fake, fake.make("s.scope", procs=[os.getpid()], delegated=True))
    monkeypatch.setattr(cgroups, "_probed", {os.getpid(): (hierarchy, None)})
    monkeypatch.setattr(cgroup_groups, "_kernel_failure", None)
    assert sandbox.protection().cgroups
    fake.fail("memory.max", errno.EACCES)  # from now on, as if the machine changed
    report = ("import resource\n"
              "print(resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY)")
    with caplog.at_level(logging.WARNING, logger=cgroups.__name__):
        outcomes = [execute(_notebook(report), workdir=tmp_path,
                            cell_timeout=20, timeout=60, kernel_template=template,
                            memory_mb=2000, max_processes=64)
                    for _ in range(2)]
    for outcome in outcomes:
        assert outcome.end is RunEnd.FINISHED and not outcome.reason
        assert outcome.notebook["cells"][0]["outputs"][0]["text"] == "True\n"  # capped
    assert [path.name for path, _ in fake.writes].count("memory.max") == 2  # trial, 1st
    assert len([r for r in caplog.records if r.name == cgroups.__name__]) == 1  # not twice
    assert _kernel_groups(fake) == []
    reason = cgroups.unavailable_reason()
    assert "a kernel's cgroup could not be made" in reason and "memory.max" in reason
    here = sandbox.protection()
    assert not here.cgroups and not here.kernel.cgroups
    assert len([m for m in here.missing if "could not be made" in m]) == 1
    assert sandbox.fallback_rlimits(here, sandbox.Limits(memory_mb=2000)).memory_mb == 2000


def test_the_batch_says_once_how_many_kernels_went_without_a_cgroup():
    full = sandbox.Protection(namespaces=True, cgroups=True)
    confined, no_group = full.kernel, KernelProtection(namespaces=True)
    kernels = [confined, no_group, None, no_group, confined]  # None: no kernel ran
    (warning,) = sandbox.without_cgroups(kernels, full)
    assert warning.startswith("2 submissions ran without a cgroup")
    assert sandbox.without_cgroups([confined] * 3, full) == []
    assert sandbox.without_cgroups([no_group], sandbox.OFF) == []  # said by `missing`


def test_a_machine_without_cgroups_is_one_warning_and_rlimits(monkeypatch):
    monkeypatch.setattr(cgroups, "_probed", {os.getpid(): (None, "cannot set up cgroups: X")})
    monkeypatch.setattr(cgroup_groups, "_kernel_failure", None)
    here = sandbox.protection()
    assert not here.cgroups
    assert [m for m in here.missing if "cgroups" in m] == [
        m for m in here.missing if m.startswith("cannot set up cgroups: X")]
    assert len([m for m in here.missing if m.startswith("cannot set up cgroups")]) == 1
    assert sandbox.fallback_rlimits(here, sandbox.Limits(memory_mb=700)).memory_mb == 700
    assert cgroups.kernel_cgroup(memory_mb=700, max_processes=8) is None


# ------------------------------------------------------------------ the real cgroup2

def _cgroup2_mount():
    if os.geteuid() != 0:
        return None
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _device, point, kind, options, *_ = line.split()
            if kind == "cgroup2" and "rw" in options.split(","):
                return point
    return None


CGROUP2 = _cgroup2_mount()
real_v2 = pytest.mark.skipif(CGROUP2 is None, reason="no writable cgroup2 mount as root")


@pytest.fixture
def unified():
    """The real cgroup2 root and a parent name of this test's own, removed afterwards."""
    parent = f"grader-test-{os.getpid()}-{secrets.token_hex(3)}"
    yield cgroups.Path(CGROUP2), parent
    leftover = cgroups.Path(CGROUP2) / parent
    if leftover.exists():
        for child in leftover.iterdir():
            if child.is_dir():
                child.rmdir()
        leftover.rmdir()


def _real(root, parent, **kwargs):
    return cgroups.find(root, parent=parent, controllers=(), self_cgroup="0::/\n", euid=0,
                        **kwargs)


@real_v2
def test_real_v2_a_double_forked_daemon_is_killed_and_the_group_removed(unified):
    root, parent = unified
    hierarchy = _real(root, parent)
    assert hierarchy.version == 2 and hierarchy.parents == (root / parent,)
    group = hierarchy.kernel_cgroup(memory_mb=100, max_processes=8)
    # In the group first, then it double-forks a daemon: the kernel keeps it in the group.
    shell = subprocess.Popen(["sh", "-c", "read go; setsid sh -c 'sleep 1901 &' ; exec sleep 1902"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert group.add(shell.pid)
    shell.stdin.write(b"go\n")
    shell.stdin.close()
    deadline = time.monotonic() + 10
    while len(group.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group.pids()) == 2  # the shell (now sleep 1902) and the daemon
    group.close()
    assert _dead(shell)
    assert not subprocess.run(["pgrep", "-f", "sleep 1901"], capture_output=True).stdout
    assert not group.dirs[0].exists()


@real_v2
def test_real_v2_controllers_the_hierarchy_lacks_are_a_reason(unified):
    root, parent = unified
    available = (root / "cgroup.controllers").read_text().split()
    if {"memory", "pids"} <= set(available):
        pytest.skip("this cgroup2 has memory and pids: test_cgroups.py covers it")
    with pytest.raises(cgroups.CgroupError, match="cannot be enabled"):
        cgroups.find(root, parent=parent, self_cgroup="0::/\n", euid=0)


GRADER_IN_A_SCOPE = """
import json, subprocess, sys
from grader.run import cgroups
sys.stdin.readline()  # moved into the scope meanwhile
hierarchy = cgroups.find(sys.argv[1], parent="unused", controllers=())
group = hierarchy.kernel_cgroup(memory_mb=100, max_processes=8)
kernel = subprocess.Popen(["sleep", "1903"])
group.add(kernel.pid)
print(json.dumps({"parents": [str(p) for p in hierarchy.parents], "group": str(group.dirs[0]),
                  "own": open("/proc/self/cgroup").read(), "in_group": group.pids()}),
      flush=True)
if sys.argv[2] == "die":
    sys.stdin.readline()  # killed here
group.close()
kernel.wait()
print(json.dumps({"left": group.dirs[0].exists()}), flush=True)
"""


def _grader_in(scope, root, how, project_root):
    grader = subprocess.Popen([sys.executable, "-c", GRADER_IN_A_SCOPE, str(root), how],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=project_root, env={**os.environ, "PYTHONPATH": str(project_root)})
    (scope / "cgroup.procs").write_text(str(grader.pid))
    grader.stdin.write("\n")
    grader.stdin.flush()
    return grader, json.loads(grader.stdout.readline())


@real_v2
def test_real_v2_a_delegated_scope_is_used_from_a_leaf_of_its_own(unified, project_root):
    root, parent = unified
    scope = root / parent
    scope.mkdir()
    os.setxattr(scope, "trusted.delegate", b"1")  # as systemd marks Delegate=yes
    grader, seen = _grader_in(scope, root, "finish", project_root)
    assert seen["parents"] == [str(scope)]
    assert seen["own"].strip().endswith(f"0::/{parent}/supervisor")
    assert seen["group"].startswith(f"{scope}/kernel-") and len(seen["in_group"]) == 1
    assert json.loads(grader.stdout.readline()) == {"left": False}
    assert grader.wait(timeout=30) == 0


@real_v2
def test_real_v2_the_groups_of_a_killed_grader_are_removed_by_the_next(unified, project_root):
    root, parent = unified
    scope = root / parent
    scope.mkdir()
    os.setxattr(scope, "trusted.delegate", b"1")
    grader, seen = _grader_in(scope, root, "die", project_root)
    survivor, = seen["in_group"]
    live, _ = _grader_in(scope, root, "die", project_root)  # another grader, still running
    grader.kill()
    grader.wait()
    assert os.path.exists(seen["group"])  # left behind, its sleep still in it
    hierarchy = cgroups.find(root, parent="unused", controllers=(),
                             self_cgroup=f"0::/{parent}/supervisor\n", euid=0)
    assert not os.path.exists(seen["group"])
    assert not fake_cgroupfs._alive(survivor)  # killed with its group
    left = _kernel_groups_in(scope)
    assert len(left) == 1  # the running grader's, untouched
    live.kill()
    live.wait()
    assert hierarchy.remove_stale() == left
    assert _kernel_groups_in(scope) == []


def _kernel_groups_in(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("kernel-"))
