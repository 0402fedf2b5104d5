"""tools/student_lab.py: JupyterLab for students, without nbgrader's instructor tools.

The browser tests see the page; these check the configuration itself, quickly: what a
Jupyter server started with the students' environment reads, against what the venv enables.
"""

import json
import os
import subprocess
import sys

import nbgrader
import pytest

from tools.student_lab import CONFIG_DIR, student_lab_command, student_lab_env

# Printed by a fresh interpreter with the students' environment: the server extensions a
# Jupyter server enables and the extensions JupyterLab's page config disables (a list).
EFFECTIVE_CONFIG = """
import json, sys
from jupyter_core.paths import jupyter_config_path
from jupyter_server.extension.config import ExtensionConfigManager
from jupyterlab_server.config import get_page_config
from jupyterlab.commands import get_app_dir
extensions = ExtensionConfigManager(read_config_path=jupyter_config_path())
page_config = get_page_config([], app_settings_dir=get_app_dir() + "/settings")
json.dump({"jpserver_extensions": extensions.get_jpserver_extensions(),
           "disabledExtensions": page_config["disabledExtensions"]}, sys.stdout)
"""


def _effective_config(env):
    result = subprocess.run([sys.executable, "-c", EFFECTIVE_CONFIG], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _environment_without_student_config():
    return {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}


@pytest.fixture(scope="module")
def plain():
    """What any Jupyter server of this venv gets: an instructor's `jupyter lab`."""
    return _effective_config(_environment_without_student_config())


@pytest.fixture(scope="module")
def student():
    """What `make lab` and the browser tests' server get."""
    return _effective_config(student_lab_env(_environment_without_student_config()))


def _nbgrader_server_extensions(jpserver_extensions, enabled):
    return {name for name, on in jpserver_extensions.items()
            if name.split(".")[0] == "nbgrader" and bool(on) == enabled}


def test_the_venv_enables_nbgrader_for_instructors(plain):
    # What the students' config turns off; if nbgrader stopped enabling anything, the
    # other tests here would pass without checking a thing.
    assert _nbgrader_server_extensions(plain["jpserver_extensions"], enabled=True)
    assert "@jupyter/nbgrader" not in plain["disabledExtensions"]


def test_students_get_no_nbgrader_server_or_lab_extension(plain, student):
    installed = _nbgrader_server_extensions(plain["jpserver_extensions"], enabled=True)
    assert _nbgrader_server_extensions(student["jpserver_extensions"], enabled=False) == installed
    assert not _nbgrader_server_extensions(student["jpserver_extensions"], enabled=True)
    for lab_extension in nbgrader._jupyter_labextension_paths():
        assert lab_extension["dest"] in student["disabledExtensions"]
    # Only nbgrader's: JupyterLab's own server extensions and the widgets stay on.
    assert student["jpserver_extensions"]["jupyterlab"] is True
    assert student["disabledExtensions"] == ["@jupyter/nbgrader"]


def test_the_students_config_comes_first_and_keeps_other_folders():
    env = student_lab_env({"JUPYTER_CONFIG_PATH": "/elsewhere", "HOME": "/home/student"})
    assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep) == [str(CONFIG_DIR), "/elsewhere"]
    assert env["HOME"] == "/home/student"
    assert student_lab_env({})["JUPYTER_CONFIG_PATH"] == str(CONFIG_DIR)


def test_the_command_runs_this_venvs_jupyterlab_on_loopback_with_the_options_last():
    command = student_lab_command("--ServerApp.port=9000", "C2_W2_Assignment.ipynb")
    assert command[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert "--ServerApp.ip=127.0.0.1" in command
    assert command[-2:] == ["--ServerApp.port=9000", "C2_W2_Assignment.ipynb"]
    assert ("--allow-root" in command) == (os.getuid() == 0)
