"""A Dask cluster on this machine's loopback, started as an instructor starts one on several
machines: a `dask scheduler` and `dask worker` processes (one thread each) from this
virtualenv, which import the grader it has installed (`make setup` installs the checkout,
editable). For the tests and the grading benchmark:

    with loopback_cluster(folder, workers=2) as address:
        ...  # python -m grader autograde CLASS --out OUT --scheduler address

Each process writes its log into `folder`; all of them are stopped on leaving.
"""

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dask
from distributed import Client

from tools.tls_files import NAMES, write_tls_files

REPO_ROOT = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).parent / "dask"
STOP_SECONDS = 30
# As docs/cluster.md starts a scheduler: Dask's debugging log of each connection's last
# messages kept short (grader.run.local_cluster.SCHEDULER_CONFIG).
SCHEDULER_SETTINGS = {"DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH": "20"}
# And its workers: no statistical profiler (grader.run.local_cluster.WORKER_CONFIG).
WORKER_SETTINGS = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}


class ClusterStartError(RuntimeError):
    """The scheduler or a worker did not start; the message names its log."""


@contextlib.contextmanager
def loopback_cluster(folder, *, workers=2, timeout=120, tls=False):
    """Start a scheduler and `workers` workers on 127.0.0.1; yield the scheduler's address
    once every worker has joined (within `timeout` seconds). With `tls`, they talk over TLS
    with a certificate and key made for the cluster, written into FOLDER/tls/ as an
    instructor writes theirs (docs/cluster.md); `tls_settings(folder)` is what a client
    needs of them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    secure = _tls_arguments(folder) if tls else []
    # No dashboard; the small HTTP servers (health, metrics) listen on free ports.
    processes = [_start(folder, "scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
                        "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                        "--scheduler-file", str(folder / "scheduler.json"), *secure,
                        *(["--protocol", "tls"] if tls else []))]
    try:
        address = _scheduler_address(folder, processes[0], timeout)
        for number in range(1, workers + 1):
            processes.append(_start(folder, f"worker-{number}", "worker", address,
                                    "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                                    "--local-directory", str(folder / f"worker-{number}"),
                                    *secure))
        with dask.config.set(tls_settings(folder) if tls else {}):
            _wait_for_workers(address, workers, timeout, folder)
        yield address
    finally:
        _stop(processes)


def tls_settings(folder):
    """Dask's settings for a client of a `loopback_cluster(folder, tls=True)`: as an
    instructor sets them (DASK_DISTRIBUTED__COMM__TLS__... variables, docs/cluster.md)."""
    ca, cert, key = (str(Path(folder) / "tls" / name) for name in NAMES)
    return {"distributed.comm.require-encryption": True, "distributed.comm.tls.ca-file": ca,
            "distributed.comm.tls.client.cert": cert, "distributed.comm.tls.client.key": key}


def _tls_arguments(folder):
    """The `dask` options of a cluster whose certificate and key are written into
    FOLDER/tls/ (tools/tls_files.py, as an instructor writes theirs)."""
    files = write_tls_files(folder / "tls")
    return ["--tls-ca-file", str(files["ca.pem"]), "--tls-cert", str(files["cert.pem"]),
            "--tls-key", str(files["key.pem"])]

def _start(folder, name, *arguments):
    """`dask ARGUMENTS` in the background, its output in FOLDER/NAME.log."""
    env = _environment()  # both unpickle the grader's tasks: they import it
    with open(folder / f"{name}.log", "w") as log:
        return subprocess.Popen([str(DASK), *arguments], env=env, cwd=folder, stdout=log,
                                stderr=subprocess.STDOUT)


def _environment():
    """What the cluster's processes run with: as they are, when the virtualenv's installed
    grader is this checkout (as on a grading machine); with this checkout first on
    PYTHONPATH when another one is installed (a second working tree of the repository)."""
    probe = subprocess.run([sys.executable, "-c", "import grader, pathlib;"
                            " print(pathlib.Path(grader.__file__).resolve().parents[1])"],
                           cwd="/", capture_output=True, text=True, env=os.environ)
    environment = {**os.environ, **SCHEDULER_SETTINGS, **WORKER_SETTINGS}
    if probe.stdout.strip() == str(REPO_ROOT):
        return environment
    return {**environment, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")]))}


def _scheduler_address(folder, scheduler, timeout):
    scheduler_file = folder / "scheduler.json"
    deadline = time.monotonic() + timeout
    while (address := _written_address(scheduler_file)) is None:
        if scheduler.poll() is not None or time.monotonic() > deadline:
            raise ClusterStartError(f"the Dask scheduler did not start: {folder}/scheduler.log")
        time.sleep(0.1)
    return address


def _written_address(scheduler_file):
    """The address in the scheduler's file; None until it is there and written whole (the
    scheduler creates the file, then writes it: a read between the two found it empty)."""
    try:
        return json.loads(scheduler_file.read_text())["address"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _wait_for_workers(address, workers, timeout, folder):
    with Client(address, timeout=timeout) as client:
        try:
            client.wait_for_workers(workers, timeout=timeout)
        except TimeoutError:
            raise ClusterStartError(f"{workers} Dask workers did not join within {timeout} s: "
                                    f"{folder}/worker-*.log") from None


def _stop(processes):
    """The workers, then the scheduler: a worker whose scheduler went first hangs on its
    way out until its nanny kills it (8 s), leaving its temporary files behind."""
    scheduler, workers = processes[0], processes[1:]
    for group in (workers, [scheduler]):
        for process in group:  # all at once: each takes a moment to close
            process.terminate()
        for process in group:
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
