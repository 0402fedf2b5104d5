"""The documentation's pages, read as the tests in tests/docs need them: their fenced code
blocks, their links and their headings' anchors, as GitHub makes them."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "bench" / "README.md",
                ROOT / "demo" / "README.md"])
FENCE = re.compile(r"^(```+|~~~+)([^\n`]*)\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
INLINE_CODE = re.compile(r"(`+).+?\1", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SHELL = {"bash", "sh", "shell", "console"}


def relative(page):
    return page.relative_to(ROOT).as_posix()


def code_blocks(text):
    """(language, body) of each fenced block."""
    return [(match.group(2).strip().lower(), match.group(3)) for match in FENCE.finditer(text)]


def prose(text):
    """The text without its fenced blocks and inline code, where links and headings are."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(text):
    return [match.group(1) for match in LINK.finditer(prose(text))]


def anchors(text):
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces
    as hyphens, a repeated one numbered -1, -2, ..."""
    seen, found = {}, set()
    for match in HEADING.finditer(FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", match.group(2).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found
