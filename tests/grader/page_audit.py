"""What in an HTML page could run in a browser, found with html.parser: shared by the tests
of our feedback pages and of nbgrader's own generate_feedback pages made from OUT."""

import re
from html.parser import HTMLParser

FORBIDDEN_TAGS = frozenset({"iframe", "frame", "frameset", "object", "embed", "applet",
                            "base", "form", "svg", "math"})
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "data", "srcdoc",
                            "xlink:href", "poster", "background", "lowsrc", "dynsrc"})
HARMFUL_URL = re.compile(r"^(javascript|vbscript):|^data:text/html")
IGNORED_IN_URLS = re.compile(r"[\x00-\x20]")  # a browser skips these inside a scheme


class PageAudit(HTMLParser):
    """Reads one page: its scripts (src, text) in order, and each live thing in it."""

    def __init__(self, page):
        super().__init__(convert_charrefs=True)
        self.scripts, self.problems = [], []
        self.policies = []  # the Content-Security-Policy metas' contents
        self.first_in_head = None  # (tag, attributes) of the <head>'s first element
        self._in_head = False
        self._script = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if self._in_head and self.first_in_head is None:
            self.first_in_head = (tag, attributes)
        self._in_head = self._in_head or tag == "head"
        if tag == "script":
            self._script = [attributes.get("src"), ""]
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        if tag == "meta":
            self._meta(attributes)
        for name, value in attrs:
            self._attribute(tag, name, value or "")

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append(tuple(self._script))
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self._script[1] += data

    def _meta(self, attributes):
        equiv = (attributes.get("http-equiv") or "").lower()
        if equiv == "refresh":
            self.problems.append("<meta http-equiv=refresh>")
        if equiv == "content-security-policy":
            self.policies.append(attributes.get("content") or "")

    def _attribute(self, tag, name, value):
        if name.startswith("on"):
            self.problems.append(f"<{tag} {name}=...>")
        url = IGNORED_IN_URLS.sub("", value).lower()
        if name in URL_ATTRIBUTES and HARMFUL_URL.match(url):
            self.problems.append(f"<{tag} {name}={value[:40]!r}>")


def live_parts(page, template_scripts):
    """What in `page` could run: problems, and each script that is not one of
    `template_scripts` (the (src, text) pairs of the template's own page)."""
    audit = PageAudit(page)
    foreign = [script for script in audit.scripts if script not in set(template_scripts)]
    return audit.problems + [f"a script not the template's: {script!r:.120}"
                             for script in foreign]
