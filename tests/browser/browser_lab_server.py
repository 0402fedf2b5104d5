"""A JupyterLab server for the browser tests: loopback only, a random token, a throwaway root.

The server is started with the command and environment `make lab` uses
(tools/student_lab.py: this venv's JupyterLab on 127.0.0.1 without nbgrader's instructor
tools), plus a token and its own config, data, runtime and settings folders, so a
developer's ~/.jupyter cannot change what the tests see.

Nothing listens on a port chosen before it is bound: a port probed free and closed may be
taken by any process before the server binds it (another test's server, a kernel's probe).
The server binds port 0 itself and says which port it got in its runtime folder, and its
kernels listen on ipc sockets in that folder (mode 700, a path short enough for a socket),
not on TCP ports jupyter_client probed the same way.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tools.student_lab import bound_port, student_lab_command, student_lab_env

START_TIMEOUT = 90  # seconds; JupyterLab starts in a few seconds on an idle machine
STOP_TIMEOUT = 20
POLL_INTERVAL = 0.2
LOG_TAIL_CHARS = 3000

# What the lab shows is tested, not JupyterLab's own offers: no news toast over the notebook.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False,
    },
}

# Set by the test run (tests/conftest.py quiets TensorFlow) or by a developer's shell; a
# student has none of them, and the notebook must hide TensorFlow's notes on its own.
ENV_NOT_PASSED_ON = ("TF_CPP_MIN_LOG_LEVEL", "MPLBACKEND", "PYTHONPATH", "JUPYTER_PATH",
                     "JUPYTER_PLATFORM_DIRS", "JUPYTER_CONFIG_PATH")


class LabServerError(RuntimeError):
    pass


@dataclass
class LabServer:
    process: subprocess.Popen
    port: int  # 0 until the server says which port it bound
    token: str
    root_dir: Path
    log_path: Path
    runtime_dir: Path

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, relative_path, workspace):
        """The URL that opens a notebook in a workspace of its own: JupyterLab keeps a
        workspace's open tabs on the server, so a shared one would reopen other tests'
        notebooks beside it."""
        return (f"{self.base_url}/lab/workspaces/{workspace}/tree/{relative_path}"
                f"?token={self.token}")

    def log_tail(self):
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-LOG_TAIL_CHARS:]

    def status_of(self, path):
        """The HTTP status the server answers an authenticated GET of `path` with."""
        request = urllib.request.Request(f"{self.base_url}/{path}",
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def api(self, path, method="GET"):
        request = urllib.request.Request(f"{self.base_url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else None


def start_lab_server(workdir):
    """Start JupyterLab with `workdir/root` as its root; return once /api/status answers."""
    workdir = Path(workdir)
    root_dir = workdir / "root"
    root_dir.mkdir(parents=True, exist_ok=True)
    settings_dir = _write_user_settings(workdir / "settings")
    token = secrets.token_hex(24)
    log_path = workdir / "jupyterlab.log"
    runtime_dir = Path(tempfile.mkdtemp(prefix="lab-runtime-"))
    command = student_lab_command(
        "--no-browser", "--ServerApp.port=0", "--ServerApp.port_retries=0",
        "--KernelManager.transport=ipc",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.user_settings_dir={settings_dir}",
        f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=root_dir,
                                   env=_server_env(workdir, runtime_dir),
                                   start_new_session=True)
    server = LabServer(process, 0, token, root_dir, log_path, runtime_dir)
    try:
        _wait_until_ready(server)
    except BaseException:
        stop_lab_server(server)
        raise
    return server


def _write_user_settings(settings_dir):
    for relative, values in USER_SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return settings_dir


def _server_env(workdir, runtime_dir):
    env = {name: value for name, value in os.environ.items() if name not in ENV_NOT_PASSED_ON}
    for name, folder in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                         ("IPYTHONDIR", "ipython")):
        env[name] = str(workdir / folder)
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    return student_lab_env(env)


def _wait_until_ready(server):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise LabServerError(f"JupyterLab exited with code {server.process.returncode} "
                                 f"before it answered:\n{server.log_tail()}")
        server.port = server.port or bound_port(server.runtime_dir, server.process.pid)
        if server.port:
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                server.api("status")
                return
        time.sleep(POLL_INTERVAL)  # polling a file and a socket: nothing to wait on instead
    raise LabServerError(f"JupyterLab did not answer /api/status within {START_TIMEOUT} s:\n"
                         f"{server.log_tail()}")


def stop_lab_server(server):
    """Shut down through the API (which stops the kernels too), then make sure it is gone."""
    if server.process.poll() is None:
        # Not answering is fine: the signals below end it.
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            server.api("shutdown", method="POST")
    try:
        server.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_session(server.process)
    shutil.rmtree(server.runtime_dir, ignore_errors=True)


def _kill_session(process):
    # The server was started in a session of its own: this ends it and what it started.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue
