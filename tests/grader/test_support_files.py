"""The release files as data: read once by the coordinator, written once per worker."""

from grader.course.course import copy_support_files
from grader.labs.c2_w2 import LAB as lab
from grader.run import support_files
from grader.run.support_files import read_support_files, support_dir, write_support_files


def _tree(root):
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_every_support_file_is_read_with_its_content_and_no_cache():
    support = read_support_files()
    for name in lab.release_files:
        source = lab.root / name
        if source.is_file():
            assert support.files[name] == source.read_bytes()
    assert support.files["data/X.npy"] == (lab.root / "data" / "X.npy").read_bytes()
    assert {name.split("/")[0] for name in support.files} == set(lab.release_files)
    assert not [name for name in support.files if "__pycache__" in name]


def test_written_files_read_back_the_same(tmp_path):
    support = read_support_files()
    write_support_files(support, tmp_path / "copy")
    assert _tree(tmp_path / "copy") == support.files
    assert read_support_files(tmp_path / "copy").digest == support.digest


def test_the_digest_changes_with_any_byte(tmp_path):
    copy_support_files(tmp_path)
    before = read_support_files(tmp_path).digest
    style = tmp_path / "deeplearning.mplstyle"
    style.write_bytes(style.read_bytes() + b"\n")
    assert read_support_files(tmp_path).digest != before


def test_a_worker_writes_each_set_of_files_once(tmp_path):
    first = read_support_files()
    directory = support_dir(first)
    assert support_dir(first) == directory  # the next submission reuses it
    assert _tree(directory) == first.files
    copy_support_files(tmp_path)
    (tmp_path / "autils.py").write_text("# another release\n")
    other = read_support_files(tmp_path)
    assert support_dir(other) != directory
    assert (support_dir(other) / "autils.py").read_text() == "# another release\n"


def test_a_worker_writes_them_in_its_own_folder(tmp_path):
    copy_support_files(tmp_path / "release")
    (tmp_path / "release" / "autils.py").write_text("# yet another release\n")
    (tmp_path / "worker").mkdir()
    support_files.write_under(tmp_path / "worker")
    try:
        directory = support_dir(read_support_files(tmp_path / "release"))
    finally:
        support_files.write_under(None)
    assert directory.parent == tmp_path / "worker"
    assert (directory / "autils.py").read_text() == "# yet another release\n"
