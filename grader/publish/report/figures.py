"""The report's figures, written as SVG and embedded as data: URIs.

Two bar charts, drawn here in a few dozen lines of SVG rather than with matplotlib: its
import and two figures cost 0.45 CPU s at the end of every batch, after the last student's
result, where nothing else runs beside it. The same data gives the same bytes, so a
rebuilt report is identical; every text in a figure is escaped (an exercise's title is the
lab's, but a figure is no place to trust it). The page's policy allows data: images, and
an SVG shown as an <img> runs nothing.
"""

import base64
import html
import itertools
import math

from grader.publish.report.data import MARKS, ExerciseMarks, Scores

MARK_COLOURS = {"full": "#2e7d32", "partial": "#f9a825", "zero": "#c62828"}
BAR_COLOUR = "#1565c0"
AXIS_COLOUR = "#333333"
WIDTH = 700
MAX_TICKS = 6  # on the count axis
ROW = 36  # pixels per exercise
LABEL_CHARACTER = 7  # pixels per character of an exercise's label, about, at 12 px
SHOWN_SHARE = 0.06  # a share below this has no percentage written in its bar


def score_histogram(scores: Scores) -> str:
    """The histogram of total scores (a data.Scores) as a data: URI: one bar per bin,
    counts on the left axis (whole numbers), the bins' edges below."""
    left, right, top, bottom, height = 56, 16, 12, 48, 300
    plot_width, plot_height = WIDTH - left - right, height - top - bottom
    bins = scores.bins
    highest = bins[-1].high or 1.0
    ticks = count_ticks(max(score_bin.count for score_bin in bins))
    x = lambda value: left + plot_width * value / highest  # noqa: E731
    y = lambda count: top + plot_height * (1 - count / ticks[-1])  # noqa: E731
    parts = [_line(left, y(0), WIDTH - right, y(0)), _line(left, top, left, y(0))]
    for score_bin in bins:
        parts.append(_rect(x(score_bin.low), y(score_bin.count),
                           x(score_bin.high) - x(score_bin.low), y(0) - y(score_bin.count),
                           BAR_COLOUR, f"{_number(score_bin.low)}-{_number(score_bin.high)}:"
                           f" {score_bin.count}", stroke="white"))
    for edge in [score_bin.low for score_bin in bins] + [bins[-1].high]:
        parts += [_line(x(edge), y(0), x(edge), y(0) + 4),
                  _text(x(edge), y(0) + 17, _number(edge), "middle")]
    for count in ticks:
        parts += [_line(left - 4, y(count), left, y(count)),
                  _text(left - 7, y(count) + 4, str(count), "end")]
    parts += [_text(left + plot_width / 2, height - 8, "total score", "middle"),
              f'<text x="14" y="{top + plot_height / 2:.1f}" text-anchor="middle"'
              f' transform="rotate(-90 14 {top + plot_height / 2:.1f})">submissions</text>']
    return svg_data_uri(WIDTH, height, parts)


def exercise_marks(marks: tuple[ExerciseMarks, ...]) -> str:
    """One horizontal bar per exercise (data.ExerciseMarks), split into the shares of
    full, partial and zero marks, each share's percentage in it, a legend below; as a
    data: URI."""
    labels = [f"{counts.exercise.id} {counts.exercise.title}" for counts in marks]
    left = min(300, 16 + LABEL_CHARACTER * max(len(label) for label in labels))
    right, top, plot_width = 24, 8, WIDTH - left - 24
    axis = top + ROW * len(marks)
    height = axis + 60
    parts = [_line(left, top, left, axis), _line(left, axis, WIDTH - right, axis)]
    for row, (label, counts) in enumerate(zip(labels, marks, strict=True)):
        middle, start = top + ROW * row + ROW / 2, 0.0
        parts.append(_text(left - 8, middle + 4, label, "end"))
        for kind in MARKS:
            share = counts.share(kind)
            parts.append(_rect(left + plot_width * start, middle - 12, plot_width * share, 24,
                               MARK_COLOURS[kind], f"{kind}: {counts.counts.get(kind, 0)}"))
            if share >= SHOWN_SHARE:
                parts.append(_text(left + plot_width * (start + share / 2), middle + 4,
                                   f"{share:.0%}", "middle", fill="white"))
            start += share
    for tick in range(0, 101, 20):
        x = left + plot_width * tick / 100
        parts += [_line(x, axis, x, axis + 4), _text(x, axis + 17, f"{tick}%", "middle")]
    for number, kind in enumerate(MARKS):
        x = WIDTH / 2 - 120 + 90 * number
        parts += [_rect(x, axis + 34, 12, 12, MARK_COLOURS[kind]),
                  _text(x + 17, axis + 44, kind, "start")]
    return svg_data_uri(WIDTH, height, parts)


def count_ticks(highest: int) -> list[int]:
    """Whole-number ticks from 0 to at least `highest` (at least 1), at most MAX_TICKS + 1,
    a step of 1, 2 or 5 times a power of ten."""
    highest = max(1, highest)
    step = next(factor * 10 ** exponent for exponent in itertools.count()
                for factor in (1, 2, 5) if highest <= MAX_TICKS * factor * 10 ** exponent)
    return list(range(0, math.ceil(highest / step) * step + 1, step))


def svg_data_uri(width: float, height: float, parts: list[str]) -> str:
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
           f' viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif"'
           ' font-size="12">' + "".join(parts) + "</svg>")
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _line(x1, y1, x2, y2):
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"'
            f' stroke="{AXIS_COLOUR}"/>')


def _rect(x, y, width, height, fill, title=None, stroke=None):
    """A filled rectangle; with `title`, the tooltip a browser shows over it."""
    shape = (f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}"'
             f' fill="{fill}"' + (f' stroke="{stroke}"' if stroke else ""))
    if title is None:
        return shape + "/>"
    return shape + f"><title>{html.escape(title)}</title></rect>"


def _text(x, y, text, anchor, fill=AXIS_COLOUR):
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">'
            f"{html.escape(text)}</text>")


def _number(value: float) -> str:
    return f"{value:g}"
