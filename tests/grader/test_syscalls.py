"""The system call policy (grader.run.syscalls): each denied call refused with its errno in a
real confined kernel and what it starts, and all a lab needs still working."""

import errno
import json
import os
import subprocess
import sys
import tempfile

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from test_grader_files import CAPTURE_LINE  # a line of in_kernel.py

from grader.records import RunEnd
from grader.run import grader_files, sandbox, syscalls
from grader.run.execution import execute
from grader.run.sandbox import Limits, run_notebook
from grader.run.warm_kernels import KernelTemplate, template_environment

# x86_64's numbers, as the kernel's code uses them (checked against libseccomp's below).
X86_64 = {"unshare": 272, "clone": 56, "clone3": 435, "mount": 165, "ptrace": 101,
          "personality": 135, "bpf": 321, "io_uring_setup": 425}


def _numbers():
    """Every refused call's number on this machine."""
    return {name: syscalls.syscall_number(name) for name, _, _ in syscalls.rules()}


def test_the_policy_names_what_the_brief_asks():
    names = {name for name, _, _ in syscalls.rules()}
    assert {"unshare", "clone", "clone3", "setns", "mount", "umount2", "pivot_root", "chroot",
            "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
            "mount_setattr", "ptrace", "process_vm_readv", "process_vm_writev", "keyctl",
            "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "kexec_load",
            "kexec_file_load", "init_module", "finit_module", "delete_module", "personality",
            "io_uring_setup", "io_uring_enter", "io_uring_register", "open_by_handle_at",
            "name_to_handle_at", "swapon", "swapoff", "reboot", "syslog", "acct", "quotactl",
            "iopl", "ioperm", "lookup_dcookie", "settimeofday", "clock_settime", "adjtimex",
            "vhangup"} <= names
    errnos = {name: code for name, code, _ in syscalls.rules()}
    assert errnos["clone3"] == errno.ENOSYS and errnos["mount"] == errno.EPERM
    clone = [comparisons for name, _, comparisons in syscalls.rules() if name == "clone"]
    assert sorted(flag for ((_, _, flag, _),) in clone) == \
        sorted(syscalls.NAMESPACE_FLAGS.values())


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64's numbers")
def test_libseccomp_knows_every_name():
    numbers = _numbers()
    assert all(number >= 0 for number in numbers.values()), numbers
    assert {name: numbers[name] for name in X86_64} == X86_64


def test_the_filter_reads_as_the_policy(tmp_path):
    policy = syscalls.Filter()
    with open(tmp_path / "filter.pfc", "w") as file:
        policy.export(file.fileno())
    policy.close()
    text = (tmp_path / "filter.pfc").read_text()
    assert "# default action\n  action ALLOW;" in text
    assert "invalid architecture action\naction ERRNO(1);" in text
    assert f'"clone3" ({_numbers()["clone3"]})' in text and "action ERRNO(38);" in text
    for name in syscalls.DENIED:
        assert f'"{name}"' in text, name


def test_a_new_call_an_old_libseccomp_cannot_name_has_its_unified_number(monkeypatch):
    numbers = _numbers()
    assert {name: numbers[name] for name in syscalls.UNIFIED_NUMBERS} == \
        syscalls.UNIFIED_NUMBERS
    monkeypatch.setattr(syscalls.libseccomp(), "seccomp_syscall_resolve_name", lambda name: -1)
    assert syscalls.syscall_number("mount_setattr") == 442
    with pytest.raises(syscalls.PolicyError, match="system call mount$"):
        syscalls.syscall_number("mount")


def test_an_unknown_call_is_an_error_not_a_gap():
    with pytest.raises(syscalls.PolicyError, match="does not know the system call nosuchcall"):
        syscalls.syscall_number("nosuchcall")


def test_a_missing_policy_is_said():
    here = sandbox._available_protection(None, None, "libseccomp is not installed (x)")
    assert not here.syscalls
    assert any(line.startswith("libseccomp is not installed") and "system call policy" in line
               for line in here.missing)
    assert sandbox._available_protection(None, None, None).syscalls


# Run in a kernel: every refused call made with harmless arguments, through libc's
# syscall(); NUMBERS and FLAGS are filled in by the test.
CALLS = r"""
import ctypes, errno, json, os, subprocess, sys
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def _call(number, *arguments):
    arguments = [ctypes.c_ulong(a) for a in arguments] + [ctypes.c_ulong(0)] * (6 - len(arguments))
    result = _libc.syscall(ctypes.c_long(number), *arguments)
    if result == 0 and number == NUMBERS["clone"]:
        os._exit(0)  # a child it made: never here if the policy holds
    return errno.errorcode.get(ctypes.get_errno(), "?") if result == -1 else "ok"
def _status(name):
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return line.split()[1]
_refused = {}
for _name, _number in NUMBERS.items():
    if _name == "personality":
        _refused[_name] = _call(_number, 0xFFFFFFFF)  # the query Docker allows
    elif _name == "clone":
        _refused.update({f"clone {flag}": _call(_number, value | 17)  # | SIGCHLD
                         for flag, value in FLAGS.items()})
    elif _name == "unshare":
        _refused.update({f"unshare {flag}": _call(_number, value) for flag, value in FLAGS.items()})
    else:
        _refused[_name] = _call(_number)
_refused["x32 getpid"] = _call(0x40000000 | 39)
_child = subprocess.run([sys.executable, "-c", "import ctypes, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0],"
    " libc.unshare(0x10000000), os.strerror(ctypes.get_errno()))"],
    capture_output=True, text=True)
print(json.dumps({"refused": _refused, "seccomp": _status("Seccomp"),
                  "filters": _status("Seccomp_filters"), "child": _child.stdout.split(),
                  "cap_eff": _status("CapEff"), "no_new_privs": _status("NoNewPrivs")}))
"""

# The last attack round: a forked child unshared user, mount and network namespaces,
# held every capability in them and mounted a tmpfs.
FORKED_CHILD = r"""
import ctypes, json, os
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    facts = {"unshare": libc.unshare(0x10000000 | 0x00020000 | 0x40000000),
             "unshare errno": ctypes.get_errno()}
    facts["mount"] = libc.mount(b"none", b"/tmp", b"tmpfs", ctypes.c_ulong(0), None)
    facts["mount errno"] = ctypes.get_errno()
    facts["cap_eff"] = [l.split()[1] for l in open("/proc/self/status")
                        if l.startswith("CapEff:")][0]
    os.write(write_end, json.dumps(facts).encode())
    os._exit(0)
os.close(write_end)
os.waitpid(pid, 0)
print(os.read(read_end, 4096).decode())
"""

ORDINARY = r"""
import json, multiprocessing, subprocess, sys, threading
import numpy as np
import tensorflow as tf
facts = {"numpy": float(np.linalg.norm(np.eye(3)))}
results = []
threads = [threading.Thread(target=lambda: results.append(sum(range(1000)))) for _ in range(4)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
facts["threads"] = results
facts["subprocess"] = subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout
with multiprocessing.get_context("fork").Pool(2) as pool:
    facts["fork pool"] = pool.map(abs, [-1, -2, -3])
model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, activation="relu"),
                             tf.keras.layers.Dense(2)])
model.compile(optimizer="adam",
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
history = model.fit(np.ones((8, 4)), np.array([0, 1] * 4), epochs=2, verbose=0)
facts["fit"] = len(history.history["loss"])
facts["cgroup"] = open("/proc/self/cgroup").read().splitlines()
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def template():
    template = KernelTemplate()
    yield template
    template.close()


def _printed(template, *sources, limits=None):
    notebook = new_notebook(cells=[new_code_cell(source) for source in sources])
    with tempfile.TemporaryDirectory() as support:
        outcome = run_notebook(notebook, support_dir=support, notebook_name="lab.ipynb",
                               limits=limits or Limits(cell_timeout=120), kernel_template=template)
    return ["".join(o.get("text", "") + o.get("ename", "") + o.get("evalue", "")
                    for o in cell["outputs"]) for cell in outcome.notebook["cells"]]


def _calls_source():
    flags = dict(syscalls.NAMESPACE_FLAGS, CLONE_NEWTIME=0x80)
    numbers = {name: syscalls.syscall_number(name) for name, _, _ in syscalls.rules()}
    return CALLS.replace("NUMBERS", repr(numbers)).replace(
        "FLAGS", repr({name: value for name, value in flags.items()}))


@pytest.mark.usefixtures("sandbox_required")
def test_a_confined_kernel_is_refused_every_denied_call(template):
    assert sandbox.protection().syscalls
    (printed,) = _printed(template, _calls_source())
    facts = json.loads(printed)
    refused = facts["refused"]
    expected = {name: "EPERM" for name in refused}
    expected["clone3"] = "ENOSYS"
    # clone's CLONE_NEWTIME bit is part of its exit signal: an ordinary clone, not refused
    # (unshare refuses it: unshare is refused whatever its flags).
    expected["clone CLONE_NEWTIME"] = refused["clone CLONE_NEWTIME"]
    assert refused == expected
    assert (facts["seccomp"], facts["filters"], facts["no_new_privs"]) == ("2", "1", "1")
    assert facts["cap_eff"] == "0000000000000000"
    assert facts["child"] == ["2", "-1", "Operation", "not", "permitted"]  # inherited


@pytest.mark.usefixtures("sandbox_required")
def test_a_forked_child_can_make_no_namespace_and_mount_nothing(template):
    (printed,) = _printed(template, FORKED_CHILD)
    facts = json.loads(printed)
    assert facts == {"unshare": -1, "unshare errno": errno.EPERM, "mount": -1,
                     "mount errno": errno.EPERM, "cap_eff": "0000000000000000"}


@pytest.mark.slow
@pytest.mark.usefixtures("sandbox_required")
def test_what_a_lab_needs_still_works(template):
    (printed,) = _printed(template, ORDINARY)
    facts = json.loads(printed.strip().splitlines()[-1])  # after TensorFlow's notes
    assert facts["numpy"] == pytest.approx(3 ** 0.5)
    assert facts["threads"] == [499500] * 4
    assert facts["subprocess"] == "hi\n"
    assert facts["fork pool"] == [1, 2, 3]
    assert facts["fit"] == 2
    # Its own cgroup namespace: no host path of the group it is in.
    assert all(line.endswith(":/") for line in facts["cgroup"]), facts["cgroup"]


FIND_THE_GRADER = r"""
import json, os, site, sys
facts = {}
try:
    import grader
    facts["import"] = grader.__file__
except ImportError as error:
    facts["import"] = type(error).__name__
found, read = [], 0
for directory in {*site.getsitepackages(), *sys.path}:
    if not os.path.isdir(directory):
        continue
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        paths = [path]
        if os.path.isdir(path) and ("grader" in name or "editable" in name):
            paths = [os.path.join(top, file) for top, _, files in os.walk(path) for file in files]
        for candidate in paths:
            if os.path.isfile(candidate):
                try:
                    with open(candidate, "rb") as file:
                        data = file.read(2**20)
                except OSError:
                    continue
                read += 1
                if LINE.encode() in data or CHECKOUT.encode() in data:
                    found.append(candidate)
facts["found"], facts["read"] = found, read
facts["covered"] = {path: open(path, "rb").read().decode(errors="replace")
                    for path in HIDDEN if os.path.exists(path) and not os.path.isdir(path)}
print(json.dumps(facts))
"""


@pytest.mark.usefixtures("sandbox_required")
def test_a_confined_kernel_reads_nothing_of_the_grader(template):
    hidden = grader_files.grader_files(grader_files.search_dirs())
    source = FIND_THE_GRADER.replace("LINE", repr(CAPTURE_LINE)).replace(
        "CHECKOUT", repr(grader_files.PACKAGE_DIR)).replace("HIDDEN", repr(hidden))
    (printed,) = _printed(template, source)
    facts = json.loads(printed)
    assert facts["import"] == "ModuleNotFoundError"
    assert facts["found"] == [] and facts["read"] > 0
    # The editable finder and its .pth, where installed so: there, and empty.
    files = [path for path in hidden if os.path.isfile(path)]
    assert facts["covered"] == dict.fromkeys(files, "")


# NEEDLES come in hex: the cell's own source must not hold them; the decoded strings are
# skipped (by identity), any other string holding one is a leak.
WALK_THE_FRAMES = r"""
import gc, json, sys
NEEDLES = [bytes.fromhex(needle).decode() for needle in HEX]
seen, found = {id(NEEDLES), *map(id, NEEDLES)}, []
def look(value, depth=0):
    if id(value) in seen or depth > 6:
        return
    seen.add(id(value))
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode(errors="replace")
    if isinstance(value, str):
        found.extend(needle for needle in NEEDLES if needle in value)
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
        frame = frame.f_back
for thing in gc.get_objects():
    if isinstance(thing, (dict, list, bytearray)):
        look(thing)
print(json.dumps({"found": sorted(set(found)), "frames": frames}))
"""


@pytest.mark.usefixtures("sandbox_required")
def test_no_host_path_is_left_in_a_kernel(template, tmp_path, monkeypatch):
    # The worker's scratch folders (the kernel's mount point, its lab's copy) under a
    # folder of a name found nowhere else; the cgroup folder; the connection file's.
    scratch = tmp_path / "HOSTSCRATCH-4f1d"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    from jupyter_core.paths import jupyter_runtime_dir

    needles = [str(scratch), "/sys/fs/cgroup", jupyter_runtime_dir()]
    encoded = [needle.encode().hex() for needle in needles]
    (printed,) = _printed(template, WALK_THE_FRAMES.replace("HEX", repr(encoded)))
    facts = json.loads(printed)
    assert facts["frames"] > 10
    assert facts["found"] == [], facts


def test_without_libseccomp_the_policy_is_missing_and_said(monkeypatch):
    def missing(name, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(syscalls, "_LIBSECCOMP", None)
    monkeypatch.setattr(syscalls.ctypes, "CDLL", missing)
    with pytest.raises(syscalls.PolicyError, match="libseccomp is not installed"):
        syscalls.Filter()
    assert syscalls.unavailable_reason().startswith("libseccomp is not installed")


def test_a_policy_that_cannot_be_built_is_an_error(monkeypatch):
    monkeypatch.setattr(syscalls, "DENIED", (*syscalls.DENIED, "nosuchcall"))
    with pytest.raises(syscalls.PolicyError, match="nosuchcall"):
        syscalls.Filter()


def test_the_probe_installs_the_policy_in_a_new_process():
    assert syscalls.unavailable_reason() is None
    assert syscalls.seccomp_mode() == 0  # this process: untouched


# A template whose process may not install a seccomp filter (a filter of its own refuses
# seccomp() and prctl(PR_SET_SECCOMP)), as on a machine whose kernel lacks seccomp.
NO_SECCOMP = """
import ctypes, runpy
from grader.run import syscalls
library = syscalls.libseccomp()
context = library.seccomp_init(syscalls.ACT_ALLOW)
library.seccomp_rule_add_array(context, syscalls.act_errno(1), syscalls.syscall_number("seccomp"),
                               0, None)
set_seccomp = (syscalls.ArgumentComparison * 1)(syscalls.ArgumentComparison(0, 4, 22, 0))
library.seccomp_rule_add_array(context, syscalls.act_errno(1), syscalls.syscall_number("prctl"),
                               1, set_seccomp)
assert library.seccomp_load(context) == 0
runpy.run_module("grader.run.warm_kernels", run_name="__main__", alter_sys=True)
"""


class TemplateWithoutSeccomp(KernelTemplate):
    def _start(self):
        return subprocess.Popen([sys.executable, "-c", NO_SECCOMP], cwd="/",
                                env=template_environment(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)


def test_a_policy_that_cannot_be_loaded_fails_that_submission(tmp_path):
    template = TemplateWithoutSeccomp()
    notebook = nbformat.from_dict(new_notebook(cells=[new_code_cell("print('unfiltered')")]))
    try:
        outcome = execute(notebook, workdir=tmp_path, cell_timeout=10, timeout=60,
                          kernel_template=template, syscall_policy=True)
    finally:
        template.close()
    assert outcome.end is RunEnd.SANDBOX_FAILED
    assert "PolicyError: the system call policy: seccomp_load: " in outcome.reason
    assert outcome.notebook.cells[0].outputs == []  # nothing ran
