"""The release files as data: read once by the coordinator, written once per worker."""

from grader.course.course import copy_release_files
from grader.labs.c2_w2 import LAB as lab
from grader.release_files import read_release_files, write_release_files
from grader.run.support_files import support_dir


def _tree(root):
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


class _Copy:
    """The lab's release files somewhere else: a lab whose root is `root`."""

    def __init__(self, root):
        self.root, self.release_files = root, lab.release_files


def test_every_release_file_is_read_with_its_content_and_no_cache():
    release = read_release_files(lab)
    for name in lab.release_files:
        source = lab.root / name
        if source.is_file():
            assert release.files[name] == source.read_bytes()
    assert release.files["data/X.npy"] == (lab.root / "data" / "X.npy").read_bytes()
    assert {name.split("/")[0] for name in release.files} == set(lab.release_files)
    assert not [name for name in release.files if "__pycache__" in name]


def test_written_files_read_back_the_same(tmp_path):
    release = read_release_files(lab)
    write_release_files(release, tmp_path / "copy")
    assert _tree(tmp_path / "copy") == release.files
    assert read_release_files(_Copy(tmp_path / "copy")).digest == release.digest


def test_the_digest_changes_with_any_byte(tmp_path):
    copy_release_files(lab, tmp_path)
    before = read_release_files(_Copy(tmp_path)).digest
    style = tmp_path / "deeplearning.mplstyle"
    style.write_bytes(style.read_bytes() + b"\n")
    assert read_release_files(_Copy(tmp_path)).digest != before


def test_a_worker_writes_each_set_of_files_once(tmp_path):
    first = read_release_files(lab)
    directory = support_dir(first)
    assert support_dir(first) == directory  # the next submission reuses it
    assert _tree(directory) == first.files
    copy_release_files(lab, tmp_path)
    (tmp_path / "autils.py").write_text("# another release\n")
    other = read_release_files(_Copy(tmp_path))
    assert support_dir(other) != directory
    assert (support_dir(other) / "autils.py").read_text() == "# another release\n"


def test_a_worker_writes_them_in_its_own_folder(tmp_path):
    copy_release_files(lab, tmp_path / "release")
    (tmp_path / "release" / "autils.py").write_text("# yet another release\n")
    (tmp_path / "worker").mkdir()
    directory = support_dir(read_release_files(_Copy(tmp_path / "release")), tmp_path / "worker")
    assert directory.parent == tmp_path / "worker"
    assert (directory / "autils.py").read_text() == "# yet another release\n"
