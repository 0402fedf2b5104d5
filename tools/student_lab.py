"""JupyterLab as students get it: `make lab` runs this, and the browser tests start their
server with the same command and environment.

nbgrader lives in the same venv (the grader needs it), and its JupyterLab and server
extensions are enabled there for every Jupyter server: an "Nbgrader" menu, a "Validate"
button that runs nbgrader's validator instead of `python -m grader validate`, a "Create
Assignment" panel and the formgrader. Students must not see the instructor's tools, so the
lab puts `tools/student_lab_config/` first on JUPYTER_CONFIG_PATH, the highest-priority
config folder, which turns them off for this server only:

- `jupyter_server_config.json` disables nbgrader's server extensions (the names
  `jupyter server extension list` shows);
- `labconfig/page_config.json` disables its JupyterLab extension, `@jupyter/nbgrader`
  (`jupyter labextension list`), all of its plugins.

Anywhere else (`jupyter lab` run by hand, formgrader in a graded course) they stay on.

    python tools/student_lab.py [jupyter lab options...] [NOTEBOOK]

runs `jupyter lab` on 127.0.0.1 with those options, in the current directory.
"""

import json
import os
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "student_lab_config"
CONFIG_PATH_VARIABLE = "JUPYTER_CONFIG_PATH"


def student_lab_command(*options, python=sys.executable):
    """The command that starts the students' JupyterLab, with `options` after ours.

    Loopback only; as root (containers often are), JupyterLab must be told it may run.
    """
    command = [python, "-m", "jupyter", "lab", "--ServerApp.ip=127.0.0.1"]
    if os.getuid() == 0:
        command.append("--allow-root")
    return command + list(options)


def student_lab_env(env=None):
    """`env` (os.environ by default) with the students' config folder first on
    JUPYTER_CONFIG_PATH; folders already there stay, after it."""
    env = dict(os.environ if env is None else env)
    folders = [str(CONFIG_DIR)]
    if env.get(CONFIG_PATH_VARIABLE):
        folders.append(env[CONFIG_PATH_VARIABLE])
    env[CONFIG_PATH_VARIABLE] = os.pathsep.join(folders)
    return env


def bound_port(runtime_dir, pid):
    """The port a Jupyter server (process `pid`, started with `--ServerApp.port=0` and
    JUPYTER_RUNTIME_DIR=`runtime_dir`) says it bound, in its jpserver-PID.json; 0 until it
    has. A port probed free and given to it could be taken before it binds it."""
    info = Path(runtime_dir) / f"jpserver-{pid}.json"
    try:
        return int(json.loads(info.read_text())["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def main(argv=None):
    command = student_lab_command(*(sys.argv[1:] if argv is None else argv))
    # Replaced by JupyterLab: Ctrl+C and make's signals reach the server itself.
    os.execve(command[0], command, student_lab_env())


if __name__ == "__main__":
    main()
