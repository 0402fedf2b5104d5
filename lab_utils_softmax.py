"""Interactive softmax explorer: four sliders set z, two bar charts show z and softmax(z).

The state and maths live in softmax_explorer_model.py; this module only draws them.
With ``%matplotlib widget`` (ipympl) the chart is a live canvas updated in place; with any
other backend it is re-rendered as a PNG image, so headless runs still show a figure.

One explorer is live at a time: building a new one closes the previous explorer's figure and
widgets, and nothing else. Re-running the explorer's cell therefore never piles up figures
(matplotlib warns past 20), and other cells' figures stay open: a cell that closed every
figure would blank the ones the browser has not drawn yet, as under Run All.
"""

import base64
import html
import textwrap
from io import BytesIO

import ipywidgets as widgets
import matplotlib.pyplot as plt

from softmax_explorer_model import Z_LIMIT, SoftmaxExplorerModel

__all__ = ["plt_softmax", "SoftmaxExplorerView", "SoftmaxExplorerModel"]

READOUT_CLASS = "softmax-readout"
FIGURE_SIZE = (7, 3)
PNG_DPI = 100  # fixed, so a style's savefig.dpi cannot blow the image up
LABEL_OFFSET = 0.02  # gap between a bar and its value label, as a fraction of the y-range


_latest_view = None  # the explorer plt_softmax built last; the only one kept live


def plt_softmax(softmax_fn):
    """Build the explorer for softmax_fn; display it by leaving it last in a cell.

    The explorer built before, if any, is closed first (its figure and widgets only).
    """
    global _latest_view
    if _latest_view is not None:
        _latest_view.close()
    _latest_view = SoftmaxExplorerView(SoftmaxExplorerModel(softmax_fn))
    return _latest_view


class SoftmaxExplorerView:
    """Sliders, bar charts and a text readout that show a SoftmaxExplorerModel."""

    def __init__(self, model):
        self.model = model
        self.sliders = [_z_slider(i, value) for i, value in enumerate(model.z)]
        self.readout = widgets.HTML().add_class(READOUT_CLASS)
        self.fig, (self.z_ax, self.probability_ax) = _new_figure()
        self.z_bars, self.z_labels = _bar_chart(self.z_ax, "z", model.z)
        self.probability_bars, self.probability_labels = _bar_chart(
            self.probability_ax, "a", model.probability_bar_heights()
        )
        self.error_text = _error_text(self.probability_ax)
        self._style_axes()
        self.chart = _chart_widget(self.fig)
        for slider in self.sliders:
            slider.observe(self._on_slider_change, names="value")
        self.widget = widgets.VBox(
            [widgets.HBox([widgets.VBox(self.sliders), self.chart]), self.readout]
        )
        self.refresh()

    def refresh(self):
        """Redraw bars, labels and readout from the model's current state."""
        _set_bars(self.z_bars, self.z_labels, self.model.z, y_span=2 * Z_LIMIT)
        heights = self.model.probability_bar_heights()
        _set_bars(self.probability_bars, self.probability_labels, heights, y_span=1)
        in_error = self.model.error is not None
        for label in self.probability_labels:
            label.set_visible(not in_error)
        self.error_text.set_text(textwrap.fill(self.model.error or "", width=40))
        self.readout.value = self._readout_html()
        self._redraw()

    def close(self):
        """Free the figure and every widget (plt_softmax does it before rebuilding)."""
        plt.close(self.fig)
        _close_widget_tree(self.widget)

    def _on_slider_change(self, change):
        self.model.set_z(self.sliders.index(change["owner"]), change["new"])
        self.refresh()

    def _readout_html(self):
        css_class = "softmax-output" if self.model.error is None else "softmax-error"
        lines = [("softmax-z", self.model.z_line()), (css_class, self.model.softmax_line())]
        return "".join(
            f'<div class="{name}" style="font-family: monospace">{html.escape(text)}</div>'
            for name, text in lines
        )

    def _redraw(self):
        if isinstance(self.chart, widgets.Image):
            self.chart.value = _png_bytes(self.fig)
        else:
            self.fig.canvas.draw_idle()

    def _style_axes(self):
        self.z_ax.set_title("Input $z$")
        self.z_ax.set_ylim(-Z_LIMIT - 1, Z_LIMIT + 1)
        self.z_ax.axhline(0, color="0.4", linewidth=0.8)
        self.probability_ax.set_title(f"Output {self.model.function_name}($z$)")
        self.probability_ax.set_ylim(0, 1.1)
        self.probability_ax.set_yticks([0, 0.25, 0.5, 0.75, 1])

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}  # None once closed
        # Viewers without the live widget (a saved or converted notebook) show this picture.
        bundle["image/png"] = base64.b64encode(_png_bytes(self.fig)).decode("ascii")
        return bundle


def _z_slider(index, value):
    return widgets.FloatSlider(
        value=value,
        min=-Z_LIMIT,
        max=Z_LIMIT,
        step=0.1,
        description=f"z{index}",
        readout_format=".1f",
        continuous_update=True,
        layout=widgets.Layout(width="260px"),
    )


def _new_figure():
    # ioff: ipympl must not display the canvas on its own; it is shown inside our layout.
    with plt.ioff():
        fig, axes = plt.subplots(1, 2, figsize=FIGURE_SIZE, layout="constrained")
    if not isinstance(fig.canvas, widgets.DOMWidget):
        # Drawn as a PNG by us, so pyplot (e.g. the inline backend) must not show it too.
        plt.close(fig)
    else:
        _make_canvas_compact(fig.canvas)
    return fig, axes


def _make_canvas_compact(canvas):
    canvas.toolbar_visible = False
    canvas.header_visible = False
    canvas.footer_visible = False
    canvas.resizable = False


def _chart_widget(fig):
    if isinstance(fig.canvas, widgets.DOMWidget):
        return fig.canvas
    return widgets.Image(format="png").add_class("softmax-chart")


def _bar_chart(ax, symbol, heights):
    positions = range(len(heights))
    colors = [f"C{i}" for i in positions]
    bars = ax.bar(positions, heights, color=colors, width=0.6)
    labels = [ax.text(i, 0, "", ha="center", fontsize=10) for i in positions]
    ax.set_xticks(list(positions), [f"${symbol}_{i}$" for i in positions])
    ax.grid(axis="x", visible=False)
    return bars, labels


def _set_bars(bars, labels, heights, y_span):
    bottom, top = bars[0].axes.get_ylim()
    for bar, label, height in zip(bars, labels, heights, strict=True):
        bar.set_height(height)
        # Keep each label inside the axes even when a wrong softmax overshoots.
        shown_at = min(max(height, bottom), top - 0.1 * y_span)
        offset = LABEL_OFFSET * y_span
        label.set_y(shown_at + offset if height >= 0 else shown_at - offset)
        label.set_verticalalignment("bottom" if height >= 0 else "top")
        label.set_text(f"{height:.2f}")


def _error_text(ax):
    centre = {"transform": ax.transAxes, "ha": "center", "va": "center"}
    return ax.text(0.5, 0.5, "", color="C3", fontsize=10, **centre)


def _png_bytes(fig):
    buffer = BytesIO()
    # "standard" bbox: a style's tight bbox would resize the image as labels move.
    with plt.rc_context({"savefig.bbox": "standard"}):
        fig.savefig(buffer, format="png", dpi=PNG_DPI)
    return buffer.getvalue()


def _close_widget_tree(widget, closed=None):
    """Close a widget and every widget it holds: children, but also layouts, styles and a
    canvas's toolbar, each a comm of its own that closing its owner leaves open."""
    closed = set() if closed is None else closed
    if id(widget) in closed:
        return
    closed.add(id(widget))
    for name in widget.keys:  # the synced traits, where held widgets live
        value = getattr(widget, name)
        for held in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(held, widgets.Widget):
                _close_widget_tree(held, closed)
    widget.close()
