"""Attacks on the kernel's boundary, graded in one batch beside honest students.

The last attack round found a forked child of a kernel able to make user, mount and network
namespaces, hold every capability in them and mount a tmpfs (no seccomp filter), a kernel
able to read the worker's request for it from the template's stack frames, and the grader's
files in reach wherever the package was installed. Each attacker here answers both
exercises right, then, once it knows it is being graded, tries one of those and prints what
worked. The batch runs as root with the sandbox on: the system call policy
(grader.run.syscalls) must refuse every call, the kernel must find no host path and none of
the grader, and the honest students beside them get exactly their points.
"""

import json
import os
import subprocess
import sys
import time
import uuid

import nbformat
import pytest
from test_grader_files import CAPTURE_LINE  # a line of in_kernel.py
from test_sandbox_attacks import END, GATE, REPORT, _attacker, _honest, _left_running, _rows

from grader.labs.c2_w2 import LAB as lab
from grader.run import grader_files, syscalls

NOTEBOOK = lab.notebook_name
MARK = "NBGRADER_SANDBOX_ATTACK_BATCH"  # as test_sandbox_attacks: its processes carry it

pytestmark = pytest.mark.usefixtures("sandbox_required")

# Every refused call through libc's syscall(), with harmless arguments. NUMBERS and FLAGS
# are filled in by the test.
SYSCALLS = GATE + r"""
import ctypes, errno, subprocess
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def _call(number, first=0):
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_ulong(first), *[ctypes.c_ulong(0)] * 5)
    if result == 0 and number == NUMBERS["clone"]:
        os._exit(0)  # a child it made: never here while the policy holds
    return errno.errorcode.get(ctypes.get_errno(), "?") if result == -1 else "worked"
def _status(name):
    return [line.split()[1] for line in open("/proc/self/status")
            if line.startswith(name + ":")][0]
if _report["attempted"]:
    _refused = {}
    for _name, _number in NUMBERS.items():
        if _name in ("clone", "unshare"):
            _refused.update({f"{_name} {flag}": _call(_number, value | (17 * (_name == "clone")))
                             for flag, value in FLAGS.items()})
        else:
            _refused[_name] = _call(_number, 0xFFFFFFFF * (_name == "personality"))
    _refused["x32 getpid"] = _call(0x40000000 | 39)
    _report["refused"] = _refused
    _report["seccomp"] = _status("Seccomp")
    _report["child"] = subprocess.run([sys.executable, "-c", "import ctypes\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0],"
        " ctypes.CDLL(None).unshare(0x10000000))"], capture_output=True, text=True).stdout.split()
""" + END

# The last round's attack, as it was: a forked child makes namespaces and mounts a tmpfs,
# then tries to mount over the socket directory the worker reaches through /proc/<pid>/root.
NAMESPACES = GATE + r"""
import ctypes
def _in_a_child():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        facts = {}
        for name, call in (
                ("unshare", lambda: libc.unshare(0x10000000 | 0x00020000 | 0x40000000)),
                ("mount tmpfs", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
                ("mount over sockets",
                 lambda: libc.mount(b"none", b"/run/kernel", b"tmpfs", 0, None))):
            facts[name] = "worked" if call() == 0 else os.strerror(ctypes.get_errno())
        facts["CapEff"] = [l.split()[1] for l in open("/proc/self/status")
                           if l.startswith("CapEff:")][0]
        os.write(write_end, json.dumps(facts).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    return json.loads(os.read(read_end, 4096))
if _report["attempted"]:
    _report["child"] = _in_a_child()
""" + END

# The worker's request for this kernel, looked for on every thread's stack and among the
# objects the collector knows. NEEDLES come in hex (the cell's source must not hold them).
FRAMES = GATE + r"""
import gc
def _search():
    needles = [bytes.fromhex(needle).decode() for needle in HEX]
    seen, found = {id(needles), *map(id, needles)}, set()
    def look(value, depth=0):
        if id(value) in seen or depth > 6:
            return
        seen.add(id(value))
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode(errors="replace")
        if isinstance(value, str):
            found.update(needle for needle in needles if needle in value)
        elif isinstance(value, dict):
            for key, item in list(value.items()):
                look(key, depth + 1)
                look(item, depth + 1)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in list(value):
                look(item, depth + 1)
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            look(vars(value), depth + 1)
    frames = 0
    for frame in sys._current_frames().values():
        while frame is not None:
            frames += 1
            look(frame.f_locals)
            look(frame.f_globals)
            frame = frame.f_back
    for thing in gc.get_objects():
        if isinstance(thing, (dict, list, bytearray)):
            look(thing)
    return {"found": [needles.index(needle) for needle in found], "frames": frames}
if _report["attempted"]:
    _report["search"] = _search()
""" + END

GRADER = GATE + r"""
import site
def _import():
    import grader
    return grader.__file__
def _search():
    found, read = [], 0
    for directory in {*site.getsitepackages(), *sys.path}:
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            paths = [path]
            if os.path.isdir(path) and ("grader" in name or "editable" in name):
                paths = [os.path.join(top, file) for top, _, files in os.walk(path)
                         for file in files]
            for candidate in paths:
                try:
                    with open(candidate, "rb") as file:
                        data = file.read(2**20)
                except OSError:
                    continue
                read += 1
                if bytes.fromhex(LINE) in data or bytes.fromhex(CHECKOUT) in data:
                    found.append(candidate)
    return {"found": found, "read": read}
if _report["attempted"]:
    _try("import grader", _import)
    _report["search"] = _search()
""" + END


def _numbers():
    return {name: syscalls.syscall_number(name) for name, _, _ in syscalls.rules()}


def _filled(source, values):
    """`source` with the names the test knows filled in (before _attacker fills its own)."""
    for name, value in values.items():
        source = source.replace(name, repr(value))
    return source


CLASS = {
    "honest-one": _honest,
    "honest-two": _honest,
    "attack-syscalls": _attacker(_filled(SYSCALLS, {
        "NUMBERS": _numbers(), "FLAGS": dict(syscalls.NAMESPACE_FLAGS)})),
    "attack-namespaces": _attacker(NAMESPACES),
    "attack-frames": "frames",  # built once the batch's folders are known
    "attack-grader": _attacker(_filled(GRADER, {
        "LINE": CAPTURE_LINE.encode().hex(),
        "CHECKOUT": grader_files.PACKAGE_DIR.encode().hex()})),
}


@pytest.fixture(scope="module")
def graded(released_lab, tmp_path_factory):
    release = nbformat.read(str(released_lab / NOTEBOOK), as_version=4)
    base = tmp_path_factory.mktemp("kernel-attacks")
    submissions, out = base / "submissions", base / "out"
    batch_tmp = base / "graders-tmp"  # the grader's TMPDIR: its scratch folders are in it
    batch_tmp.mkdir()
    # What the worker's requests hold: scratch folders, cgroup folders, the submissions.
    needles = [str(batch_tmp), "/sys/fs/cgroup", str(submissions), str(out)]
    frames = _attacker(FRAMES.replace("HEX", repr([n.encode().hex() for n in needles])))
    for student, build in CLASS.items():
        build = frames if build == "frames" else build
        path = submissions / student / NOTEBOOK
        path.parent.mkdir(parents=True)
        nbformat.write(build(release, {}), str(path))
    batch = uuid.uuid4().hex
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
         "--workers", "2", "--cell-timeout", "120", "--timeout", "400"],
        capture_output=True, text=True, cwd=lab.root, timeout=1200,
        env={**os.environ, MARK: batch, "TMPDIR": str(batch_tmp)})
    return {"out": out, "result": result, "left": _left_running(batch), "needles": needles,
            "seconds": time.monotonic() - started}


def _report(out, student):
    path = out / "nbgrader" / "autograded" / student / lab.assignment / NOTEBOOK
    text = "".join(output.get("text", "") for cell in nbformat.read(str(path), 4).cells
                   for output in cell.get("outputs", []))
    line = next(line for line in text.splitlines() if line.startswith(REPORT))
    report = json.loads(line[len(REPORT):])
    assert report["attempted"], "the attack did not know it was being graded"
    return report


def test_the_batch_finishes_with_one_row_each(graded):
    assert graded["result"].returncode == 0, graded["result"].stderr
    assert sorted(_rows(graded["out"])) == sorted(CLASS)
    assert "warning" not in graded["result"].stderr  # full protection: nothing to report


@pytest.mark.parametrize("student", sorted(CLASS))
def test_every_student_keeps_exactly_their_points(graded, student):
    row = _rows(graded["out"])[student]
    assert [row["UNQ_C1"], row["UNQ_C2"], row["status"], row["detail"]] == \
        ["50", "50", "graded", ""], row


def test_every_denied_call_is_refused(graded):
    report = _report(graded["out"], "attack-syscalls")
    refused = report["refused"]
    expected = dict.fromkeys(refused, "EPERM")
    expected["clone3"] = "ENOSYS"
    assert refused == expected
    assert len(refused) == len(_numbers()) - 2 + 2 * len(syscalls.NAMESPACE_FLAGS) + 1
    assert report["seccomp"] == "2"
    assert report["child"] == ["2", "-1"]  # what it starts is under the policy too


def test_a_forked_child_makes_no_namespace_and_mounts_nothing(graded):
    report = _report(graded["out"], "attack-namespaces")
    refused = os.strerror(1)  # EPERM
    assert report["child"] == {"unshare": refused, "mount tmpfs": refused,
                               "mount over sockets": refused, "CapEff": "0000000000000000"}


def test_no_host_path_is_found_in_a_kernel(graded):
    search = _report(graded["out"], "attack-frames")["search"]
    assert search["frames"] > 10
    assert [graded["needles"][index] for index in search["found"]] == []


def test_nothing_of_the_grader_is_readable(graded):
    report = _report(graded["out"], "attack-grader")
    assert report["import grader"] == ["failed", "ModuleNotFoundError"]
    assert report["search"]["read"] > 0 and report["search"]["found"] == []


def test_no_process_of_the_batch_is_left(graded):
    assert graded["left"] == []
