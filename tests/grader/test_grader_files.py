"""The grader's own files among the directories a confined kernel sees: found however the
package is installed, then covered in the kernel's root (grader.run.isolation)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import grader
from grader.run import grader_files
from grader.run.grader_files import is_install_metadata

REPOSITORY = Path(grader.__file__).resolve().parents[1]
# A line of the capture's source: in no file a kernel can read.
CAPTURE_LINE = "def capture_model(namespace, inputs):"


def test_the_line_searched_for_is_the_captures():
    # Else the searches for it below and in the kernel tests could not fail.
    in_kernel = REPOSITORY / "grader" / "labs" / "c2_w2" / "in_kernel.py"
    assert CAPTURE_LINE in in_kernel.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [
    "c2w2_grader-0.10.0.dist-info", "c2w2_grader-0.10.0.egg-info", "c2w2-grader.egg-link",
    "__editable__.c2w2_grader-0.10.0.pth", "__editable___c2w2_grader_0_10_0_finder.py",
    "__editable___c2w2_grader_0_10_0_finder.cpython-311.pyc"])
def test_our_install_metadata_is_recognized(name):
    assert is_install_metadata(name)


@pytest.mark.parametrize("name", [
    "nbgrader-0.9.6.dist-info", "c2w2_graderx-1.0.dist-info", "__editable__.other-1.0.pth",
    "grader", "numpy"])
def test_other_packages_metadata_is_not(name):
    assert not is_install_metadata(name)


def test_an_editable_install_is_found(tmp_path):
    site = tmp_path / "site-packages"
    (site / "__pycache__").mkdir(parents=True)
    checkout = tmp_path / "checkout" / "grader"
    checkout.mkdir(parents=True)
    names = ["__editable__.c2w2_grader-0.10.0.pth", "__editable___c2w2_grader_0_10_0_finder.py",
             "__pycache__/__editable___c2w2_grader_0_10_0_finder.cpython-311.pyc"]
    for name in [*names, "numpy.pth", "__pycache__/six.cpython-311.pyc"]:
        (site / name).write_text("")
    (site / "c2w2_grader-0.10.0.dist-info").mkdir()
    (site / "nbgrader").mkdir()
    found = grader_files.grader_files([str(site)], package_dir=str(checkout))
    assert found == sorted([str(checkout), *(str(site / name) for name in names),
                            str(site / "c2w2_grader-0.10.0.dist-info")])


def _installed(tmp_path):
    """The grader as `pip install .` puts it in site-packages (no editable finder), from a
    copy of the project (a build leaves files beside its source)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPOSITORY / "pyproject.toml", project)
    shutil.copytree(REPOSITORY / "grader", project / "grader",
                    ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "prefix" / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(project)],
                   check=True, capture_output=True, timeout=300)
    return site


def test_a_regular_install_is_found(tmp_path):
    site = _installed(tmp_path)
    assert CAPTURE_LINE in (site / "grader/labs/c2_w2/in_kernel.py").read_text()
    found = grader_files.grader_files([str(site)], package_dir=str(site / "grader"))
    assert found == sorted([str(site / "grader"), str(next(site.glob("c2w2_grader-*.dist-info")))])


CONFINED = """
import json, os, sys
from grader.run import grader_files, isolation
site, mount_point, lab = sys.argv[1:4]
hidden = grader_files.grader_files([site], package_dir=os.path.join(site, "grader"))
isolation.confine(isolation.Confinement(mount_point=mount_point, lab_source=lab),
                  [os.path.dirname(site), sys.prefix, os.path.realpath(sys.prefix),
                   sys.base_prefix], hidden)
readable = {}
for top, folders, files in os.walk(os.path.dirname(site)):
    for name in files:
        path = os.path.join(top, name)
        try:
            with open(path, "rb") as file:
                readable[path] = file.read().decode(errors="replace")
        except OSError as error:
            readable[path] = "refused: " + error.strerror
print(json.dumps({"listed": sorted(os.listdir(site)), "readable": readable,
                  "package": os.listdir(os.path.join(site, "grader")), "uid": os.getuid()}))
"""


@pytest.mark.usefixtures("sandbox_required")
def test_a_confined_process_reads_nothing_of_a_regular_install(tmp_path):
    # The mechanism the kernels use, on a real `pip install .` under a mirrored prefix.
    site = _installed(tmp_path)
    (tmp_path / "root").mkdir()
    (tmp_path / "lab").mkdir()
    result = subprocess.run(
        [sys.executable, "-c", CONFINED, str(site), str(tmp_path / "root"), str(tmp_path / "lab")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)})
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["uid"] != 0
    assert "grader" in facts["listed"]  # still there, but empty
    assert facts["package"] == []
    assert all(CAPTURE_LINE not in text for text in facts["readable"].values())
    metadata = [path for path in facts["readable"] if ".dist-info" in path]
    assert metadata == []  # an empty folder in its place


def test_the_search_covers_this_pythons_site_directories():
    import site

    dirs = grader_files.search_dirs()
    assert all(os.path.isdir(path) for path in dirs)
    assert set(site.getsitepackages()) <= set(dirs)
    assert grader_files.PACKAGE_DIR in grader_files.grader_files(dirs)
