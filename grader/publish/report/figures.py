"""The report's figures, drawn with matplotlib and embedded as PNG data: URIs.

The same data gives the same bytes (no metadata in the PNG, matplotlib's default style
whatever the machine's matplotlibrc says), so a rebuilt report is identical. matplotlib is
imported only when a figure is drawn: it takes a third of a second to import, which every
command that imports grader.publish.report (for ReportError) would otherwise pay.
"""

import base64
import io
from typing import Any

from grader.publish.report.data import MARKS, ExerciseMarks, Scores

MARK_COLOURS = {"full": "#2e7d32", "partial": "#f9a825", "zero": "#c62828"}
BAR_COLOUR = "#1565c0"
DPI = 100


def score_histogram(scores: Scores) -> str:
    """The histogram of total scores (a data.Scores) as a data: URI."""
    with _style():
        figure = _new_figure(width=7, height=3)
        axes = figure.add_subplot()
        bins = scores.bins
        lows = [score_bin.low for score_bin in bins]
        axes.bar(lows, [score_bin.count for score_bin in bins], width=bins[0].high - bins[0].low,
                 align="edge", color=BAR_COLOUR, edgecolor="white")
        axes.set_xlim(0, bins[-1].high)
        axes.set_xticks([*lows, bins[-1].high])
        axes.set_xlabel("total score")
        axes.set_ylabel("submissions")
        axes.yaxis.get_major_locator().set_params(integer=True)
        axes.spines[["top", "right"]].set_visible(False)
        return png_data_uri(figure)


def exercise_marks(marks: tuple[ExerciseMarks, ...]) -> str:
    """One horizontal bar per exercise (data.ExerciseMarks), split into the shares of
    full, partial and zero marks, as a data: URI."""
    with _style():
        figure = _new_figure(width=7, height=0.9 + 0.6 * len(marks))
        axes = figure.add_subplot()
        labels = [f"{counts.exercise.id} {counts.exercise.title}" for counts in marks]
        left = [0.0] * len(marks)
        for kind in MARKS:
            shares = [counts.share(kind) for counts in marks]
            bars = axes.barh(labels, shares, left=left, color=MARK_COLOURS[kind], label=kind)
            axes.bar_label(bars, labels=[f"{share:.0%}" if share >= 0.06 else ""
                                         for share in shares],
                           label_type="center", color="white")
            left = [start + share for start, share in zip(left, shares, strict=True)]
        axes.set_xlim(0, 1)
        axes.xaxis.set_major_formatter("{x:.0%}")
        axes.invert_yaxis()
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncols=len(MARKS),
                    frameon=False)
        axes.spines[["top", "right"]].set_visible(False)
        return png_data_uri(figure)


def png_data_uri(figure: Any) -> str:
    buffer = io.BytesIO()
    # No metadata (matplotlib writes its version as "Software" otherwise).
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _style():
    import matplotlib.style

    return matplotlib.style.context("default")


def _new_figure(*, width, height):
    # A Figure of its own, not pyplot: no global state, no display; savefig draws with Agg.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")
