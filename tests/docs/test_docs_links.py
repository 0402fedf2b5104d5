"""Every relative link of the documentation leads somewhere: the file or folder exists and,
for a link to a heading (#anchor), the page has that heading."""

from urllib.parse import unquote

import pytest
from doc_pages import PAGES, ROOT, anchors, links, relative

EXTERNAL = ("http://", "https://", "mailto:")


def _relative_links():
    return [(page, target) for page in PAGES
            for target in links(page.read_text(encoding="utf-8"))
            if not target.startswith(EXTERNAL)]


def _shown(value):
    return relative(value) if hasattr(value, "relative_to") else value


@pytest.mark.parametrize(("page", "target"), _relative_links(), ids=_shown)
def test_a_relative_link_resolves(page, target):
    path_part, _, anchor = target.partition("#")
    linked = (page.parent / unquote(path_part)).resolve() if path_part else page
    assert linked.exists(), f"{relative(page)} links to {target}, which does not exist"
    assert ROOT in linked.parents or linked == ROOT, f"{target} leaves the repository"
    if anchor:
        assert linked.suffix == ".md", f"{target}: an anchor into a file that is no page"
        assert anchor in anchors(linked.read_text(encoding="utf-8")), \
            f"{relative(page)} links to {target}: {relative(linked)} has no such heading"


def test_the_pages_link_to_each_other():
    assert len(_relative_links()) > 50
    readme_links = links((ROOT / "README.md").read_text(encoding="utf-8"))
    for page in PAGES:
        if page.parent == ROOT / "docs":
            assert f"docs/{page.name}" in readme_links, f"the README does not link {page.name}"


def test_anchors_are_made_as_github_makes_them():
    text = "# Doing the lab\n## What OUT holds, and what is private\n## `--due`\n## A\n## A\n"
    assert anchors(text) == {"doing-the-lab", "what-out-holds-and-what-is-private", "--due",
                             "a", "a-1"}
