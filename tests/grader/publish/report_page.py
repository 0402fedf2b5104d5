"""Reading the report's page back: a small tree of its elements, and the counts, lists and
mistakes it shows, from its ids, classes and data- attributes (tests/grader/publish/
test_report.py)."""

from html.parser import HTMLParser
from pathlib import Path


class Element:
    def __init__(self, tag, attrs):
        self.tag, self.attrs, self.children, self.parts = tag, dict(attrs), [], []

    def text(self):
        return " ".join("".join(part if isinstance(part, str) else part.text()
                                for part in self.parts).split())

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag=None, **attrs):
        """Elements with `tag` whose attributes equal `attrs` (class_ for class)."""
        wanted = {name.rstrip("_").replace("_", "-"): value for name, value in attrs.items()}
        return [element for element in self.iter()
                if (tag is None or element.tag == tag)
                and all(element.attrs.get(name) == value for name, value in wanted.items())]

    def find(self, tag=None, **attrs):
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]


class PageParser(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.open = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs)
        self.open[-1].children.append(element)
        self.open[-1].parts.append(element)
        if tag not in self.VOID:
            self.open.append(element)

    def handle_endtag(self, tag):
        assert self.open[-1].tag == tag, f"</{tag}> closes <{self.open[-1].tag}>"
        self.open.pop()

    def handle_data(self, data):
        self.open[-1].parts.append(data)


def parse(path):
    parser = PageParser()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    parser.close()
    assert [element.tag for element in parser.open] == ["document"], "unclosed elements"
    return parser.root


def status_counts(page):
    table = page.find("table", id="status-counts")
    return {row.attrs["data-status"]: int(row.find("td").attrs["data-count"])
            for row in table.find_all("tr")}


def listed_submissions(page, table_id):
    table = page.find_all("table", id=table_id)
    if not table:
        return {}
    return {row.attrs["data-student"]: (row.attrs["data-status"],
                                        row.find("td", class_="detail").text())
            for row in table[0].find_all("tr", class_="submission")}


def exercise_marks(page):
    table = page.find("table", id="exercise-marks")
    return {row.attrs["data-exercise"]: {cell.attrs["data-marks"]: int(cell.attrs["data-count"])
                                         for cell in row.find_all("td")}
            for row in table.find_all("tr") if "data-exercise" in row.attrs}


def score_bins(page):
    return [(float(row.attrs["data-low"]), float(row.attrs["data-high"]),
             int(row.attrs["data-count"]))
            for row in page.find("table", id="score-bins").find_all("tr", class_="score-bin")]


def mistakes(page, exercise):
    """[(kind, wording, all its wordings, student ids, data-students)] per mistake of
    `exercise`, in the page's order (those under "more" last)."""
    section = page.find("section", class_="exercise-mistakes", data_exercise=exercise)
    rows = []
    for row in section.find_all("tr", class_="mistake"):
        wording = row.find("span", class_="wording").text()
        variants = [span.text() for span in row.find_all("span", class_="variant")]
        students = [span.attrs["data-student"] for span in
                    row.find("td", class_="students").find_all("span", class_="student")]
        rows.append((row.attrs["data-kind"], wording, variants or [wording], students,
                     int(row.attrs["data-students"])))
    return rows


def images(page):
    return {element.attrs.get("id"): element.attrs["src"] for element in page.find_all("img")}


def run_facts(page):
    return {dd.attrs["data-fact"]: dd.text()
            for dd in page.find("dl", id="run-facts").find_all("dd")}
