"""The Content-Security-Policy a page we write carries: the browser runs no script but the
template's own, whatever the page holds.

The scripts allowed are named from the template alone, from a page rendered for a notebook
with no student content: the sha256 of each of its inline scripts, and the folder of each
script it loads (MathJax, from its CDN, loads its configuration and extensions from beside
the file it starts with). A student's script can never be one of them. Without
'unsafe-inline', the browser also ignores inline event handlers and javascript: URLs, so a
hole in the sanitiser (grader.run.sanitize) still runs nothing.

No 'unsafe-eval': MathJax 2 evaluates the template's `text/x-mathjax-config` block with
eval(), so MathJax starts with its default configuration ($$...$$ and \\(...\\) are typeset,
$...$ is not). Styles are inline in the template (Bootstrap, nbconvert's CSS), and MathJax
writes style attributes, so styles need 'unsafe-inline'; a style cannot run a script.
"""

import base64
import hashlib
import html
import re
from urllib.parse import urlsplit

SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
SOURCE = re.compile(r"""\bsrc\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)


def page_policy(template_page: str) -> str:
    """The policy for pages of the template that rendered `template_page` (a page with no
    student content in it)."""
    inline, loaded = scripts(template_page)
    hashes = [f"'sha256-{_sha256(text)}'" for text in inline]
    folders = sorted({_folder(url) for url in loaded})
    script_sources = " ".join(dict.fromkeys([*hashes, *folders])) or "'none'"
    font_sources = " ".join(folders) or "'none'"
    return ("default-src 'none'; "
            f"script-src {script_sources}; "
            "style-src 'unsafe-inline'; "
            "img-src 'self' data:; "
            f"font-src {font_sources}; "
            "base-uri 'none'; form-action 'none'")


def with_policy(page: str, policy: str) -> str:
    """`page` with `policy` in a <meta> as the first element of its <head>."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">'
    head = HEAD.search(page)
    if head is None:
        raise ValueError("the page has no <head> to hold its policy")
    return page[:head.end()] + "\n" + meta + page[head.end():]


def scripts(page: str) -> tuple[list[str], list[str]]:
    """(texts of the inline scripts, URLs of the loaded ones) in `page`, in order."""
    inline, loaded = [], []
    for match in SCRIPT.finditer(page):
        source = SOURCE.search(match.group(1))
        if source:
            loaded.append(html.unescape(next(part for part in source.groups()
                                             if part is not None)))
        else:
            inline.append(match.group(2))
    return inline, loaded


def _sha256(text):
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _folder(url):
    """The folder `url` is in, as a CSP source (scheme, host, path up to the last '/')."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"the template loads a script from {url!r}, not over https")
    return f"https://{parts.netloc}{parts.path.rpartition('/')[0]}/"
