"""Every link, image and file the released notebook's text points to is there for the student:
files in the release itself, anchors in the notebook, or pages on a few stable hosts.

The release is what a student gets (`grader release`), so a file of this repository that the
release leaves out (`tools/build_data.py`, say) is a broken reference. There is no network
here: external links must be https on a host known to keep its addresses.
"""

import re
from urllib.parse import urlsplit

import pytest

from grader.course.release import release
from grader.labs.c2_w2 import LAB as lab
from tools.run_notebook import read_notebook

# Project sites with versioned, long-lived pages, and the DOI resolver.
STABLE_HOSTS = {"numpy.org", "matplotlib.org", "www.tensorflow.org", "keras.io", "doi.org"}

MARKDOWN_LINK = re.compile(r"\]\(\s*([^)\s]+)[^)]*\)")
HTML_LINK = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""")
BARE_URL = re.compile(r"\b(?:https?|ftp)://[^\s)>\"'\]]+")
ANCHOR = re.compile(r"""<a\s+(?:name|id)\s*=\s*["']([^"']+)["']""")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# A code span naming a file or folder of the project: `tools/build_data.py`, `data/X.npy`.
FILE_LIKE = re.compile(
    r"^(?:\./)?(?:[A-Za-z_][\w.-]*/)+[\w.-]*$|^[\w-]+\.(?:py|npy|png|ipynb|mplstyle)$")


def references(markdown):
    """Every target the text points to: links, image sources, URLs, file names in code."""
    targets = MARKDOWN_LINK.findall(markdown) + HTML_LINK.findall(markdown)
    # URLs in the running text, once the links' own targets are taken out.
    targets += BARE_URL.findall(HTML_LINK.sub(" ", MARKDOWN_LINK.sub("]", markdown)))
    targets += [span for span in CODE_SPAN.findall(markdown) if FILE_LIKE.match(span)]
    return targets


def broken(target, release_dir, anchors):
    """Why `target` does not resolve for a student, or None when it does."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        if parts.scheme != "https" or parts.hostname not in STABLE_HOSTS:
            return "not an https page on a stable host"
        return None
    if not parts.path:
        return None if parts.fragment in anchors else "no such anchor in the notebook"
    if not (release_dir / parts.path).exists():
        return "not in the student release"
    return None


def test_references_are_found_and_judged(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    markdown = ('<a name="top"></a> [up](#top) [gone](#nowhere) <img src="images/a.png"/> '
                "see `tools/build_data.py` and `np.exp`, (http://yann.lecun.com/exdb/mnist/) "
                "[doi](https://doi.org/10.1109/5.726791) ![x](images/b.png)")
    anchors = set(ANCHOR.findall(markdown))
    found = {target: broken(target, tmp_path, anchors) for target in references(markdown)}
    assert found == {
        "#top": None, "#nowhere": "no such anchor in the notebook", "images/a.png": None,
        "tools/build_data.py": "not in the student release",
        "http://yann.lecun.com/exdb/mnist/": "not an https page on a stable host",
        "https://doi.org/10.1109/5.726791": None, "images/b.png": "not in the student release",
    }


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    return read_notebook(release(lab=lab, out=out)), out


def test_every_reference_of_the_released_text_resolves(released):
    notebook, release_dir = released
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    anchors = set(ANCHOR.findall(markdown))
    targets = references(markdown)
    assert len(targets) >= 10  # the outline's anchors, the figures, the project sites
    problems = {target: broken(target, release_dir, anchors) for target in targets}
    assert {target: why for target, why in problems.items() if why} == {}


def test_the_release_has_the_same_text_as_the_source(released):
    notebook, _ = released
    source = read_notebook(lab.source_notebook)
    assert [c.source for c in notebook.cells if c.cell_type == "markdown"] == \
        [c.source for c in source.cells if c.cell_type == "markdown"]
