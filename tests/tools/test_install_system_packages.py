"""`make test` installs what its tests start besides Python, when missing: Chromium and
PostgreSQL, with apt-get, through sudo when not root. Run here with a PATH of stand-ins
(apt-get and sudo that only write down how they were called, an `id` that says which user
runs it), since this machine has both packages and nothing is to be installed for real."""

import os
import shutil
import subprocess

import pytest

SCRIPT = "tools/install_system_packages.sh"
RECORDER = """#!/bin/sh
echo "{name} $* [DEBIAN_FRONTEND=$DEBIAN_FRONTEND]" >> "$CALLS"
{then}
"""


@pytest.fixture
def machine(tmp_path):
    """A PATH with the tools the script uses and stand-ins; `run(uid, has=...)` runs it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "ls", "cat", "printf"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    stand_ins = {"apt-get": RECORDER.format(name="apt-get", then=""),
                 "sudo": RECORDER.format(name="sudo", then='exec "$@"'),
                 "id": '#!/bin/sh\necho "$FAKE_UID"\n',
                 "chromium": "#!/bin/sh\n"}
    postgresql = tmp_path / "postgresql"
    calls = tmp_path / "calls"

    def run(uid=0, has=("apt-get", "sudo", "id"), target="test", venv=True, libseccomp=True):
        for name, text in stand_ins.items():
            path = bin_dir / name
            path.unlink(missing_ok=True)
            if name in has:
                path.write_text(text)
                path.chmod(0o755)
        if "postgresql" in has:
            (postgresql / "15" / "bin").mkdir(parents=True, exist_ok=True)
            (postgresql / "15" / "bin" / "initdb").write_text("")
        else:
            shutil.rmtree(postgresql, ignore_errors=True)
        calls.write_text("")
        python = bin_dir / "python3"  # a Python whose `import ensurepip, venv` works or not
        python.write_text(f"#!/bin/sh\nexit {0 if venv else 1}\n")
        python.chmod(0o755)
        env = {"PATH": str(bin_dir), "CALLS": str(calls), "FAKE_UID": str(uid),
               "POSTGRESQL_LIB": str(postgresql), "PYTHON": str(python)}
        if not libseccomp:  # folders without it (else the machine's, which has it)
            env["LIBSECCOMP_DIRS"] = str(tmp_path / "no-libraries")
        result = subprocess.run([str(bin_dir / "bash"), SCRIPT, target], env=env,
                                capture_output=True, text=True, cwd=os.getcwd())
        return result, calls.read_text().splitlines()

    return run


@pytest.fixture(autouse=True)
def _at_the_project_root(project_root, monkeypatch):
    monkeypatch.chdir(project_root)


def test_as_root_it_installs_what_is_missing_with_apt_and_says_so(machine):
    result, calls = machine(uid=0)
    assert result.returncode == 0, result.stderr
    assert calls == [
        "apt-get update -qq [DEBIAN_FRONTEND=noninteractive]",
        "apt-get install -y -qq --no-install-recommends chromium postgresql "
        "[DEBIAN_FRONTEND=noninteractive]"]
    assert result.stdout.splitlines()[0] == (
        "make test: installing chromium postgresql (Chromium for the browser tests and "
        "PostgreSQL for the gradebook tests) with apt-get")


def test_as_a_user_it_goes_through_sudo(machine):
    result, calls = machine(uid=1000)
    assert result.returncode == 0, result.stderr
    assert calls == [
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq [DEBIAN_FRONTEND=]",
        "apt-get update -qq [DEBIAN_FRONTEND=noninteractive]",
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
        "--no-install-recommends chromium postgresql [DEBIAN_FRONTEND=]",
        "apt-get install -y -qq --no-install-recommends chromium postgresql "
        "[DEBIAN_FRONTEND=noninteractive]"]
    assert "with sudo apt-get" in result.stdout


def test_only_what_is_missing(machine):
    result, calls = machine(uid=1000, has=("apt-get", "sudo", "id", "chromium"))
    assert result.returncode == 0, result.stderr
    assert calls[-1] == ("apt-get install -y -qq --no-install-recommends postgresql "
                         "[DEBIAN_FRONTEND=noninteractive]")
    assert "installing postgresql (PostgreSQL for the gradebook tests)" in result.stdout


def test_nothing_missing_nothing_done_nothing_said(machine):
    result, calls = machine(uid=1000, has=("apt-get", "sudo", "id", "chromium", "postgresql"))
    assert (result.returncode, result.stdout, result.stderr, calls) == (0, "", "", [])


def test_without_apt_or_sudo_it_says_what_to_do(machine):
    result, calls = machine(uid=0, has=("sudo", "id", "chromium"))
    assert result.returncode == 1 and calls == []
    assert "no apt-get" in result.stderr and "postgresql" in result.stderr
    result, calls = machine(uid=1000, has=("apt-get", "id"))
    assert result.returncode == 1 and calls == []
    assert "run it as root, or install sudo" in result.stderr


def test_make_test_installs_them_and_make_lab_does_not(project_root):
    def planned(target):
        return subprocess.run(["make", "-n", "-W", "requirements.txt", target],
                              capture_output=True, text=True, cwd=project_root,
                              check=True).stdout
    test = planned("test").splitlines()
    pytest_line = next(index for index, line in enumerate(test) if " -m pytest" in line)
    venv_line = next(index for index, line in enumerate(test) if " -m venv " in line)
    assert _line_of(test, f"bash {SCRIPT} setup") < venv_line
    assert _line_of(test, f"bash {SCRIPT} test") < pytest_line
    lab = planned("lab")
    assert f"bash {SCRIPT} setup" in lab and f"bash {SCRIPT} test" not in lab
    ci = (project_root / ".ci" / "run").read_text().splitlines()
    assert [line for line in ci if line and not line.startswith("#")][-1] == "make test"


def _line_of(lines, text):
    return next(index for index, line in enumerate(lines) if line.endswith(text))


def test_a_python_without_venv_gets_python3_venv_for_the_lab_too(machine):
    result, calls = machine(uid=0, has=("apt-get", "id", "chromium", "postgresql"),
                            target="setup", venv=False)
    assert result.returncode == 0, result.stderr
    assert calls[-1] == ("apt-get install -y -qq --no-install-recommends python3-venv "
                         "[DEBIAN_FRONTEND=noninteractive]")
    assert result.stdout.splitlines()[0] == (
        "make setup: installing python3-venv (Python's venv module for .venv) with apt-get")


def test_setup_needs_neither_chromium_nor_postgresql(machine):
    result, calls = machine(uid=0, target="setup")
    assert (result.returncode, result.stdout, result.stderr, calls) == (0, "", "", [])
    result, calls = machine(uid=0, venv=False)  # `make test` on Debian's own Python
    assert calls[-1] == ("apt-get install -y -qq --no-install-recommends python3-venv "
                         "chromium postgresql [DEBIAN_FRONTEND=noninteractive]")


def test_without_libseccomp_setup_installs_it(machine):
    result, calls = machine(uid=0, target="setup", libseccomp=False)
    assert result.returncode == 0, result.stderr
    assert calls[-1] == ("apt-get install -y -qq --no-install-recommends libseccomp2 "
                         "[DEBIAN_FRONTEND=noninteractive]")
    assert "libseccomp for the kernels' system call policy" in result.stdout
