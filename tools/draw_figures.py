"""Draw the figures the lab's notebook text shows, as PNGs in images/.

Usage:
    python tools/draw_figures.py               # write images/*.png
    python tools/draw_figures.py --out DIR     # write them into DIR instead

Every figure is drawn with the Agg renderer at a fixed size and dpi, under a fixed style,
and written without metadata, so a rerun with the same matplotlib and Pillow gives
identical bytes.
"""

import argparse
import io
import sys
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGES_DIR = REPO_ROOT / "images"
DATA_DIR = REPO_ROOT / "data"
DPI = 120

INK = "#24304a"
MUTED = "#7a869a"
GRID = "#e3e8ef"
BLUE = "#2f6fb3"
BLUE_FILL = "#e4eef9"
ORANGE = "#d9622b"
ORANGE_FILL = "#fbe9df"
GREEN = "#3a8a55"
GREEN_FILL = "#e3f2e7"
PURPLE = "#7a4fa0"
PURPLE_FILL = "#efe6f6"

# Start from matplotlib's defaults, not whatever matplotlibrc the machine has, so the
# bytes depend only on the matplotlib version.
STYLE = {
    **matplotlib.rcParamsDefault,
    "font.family": "DejaVu Sans",
    "font.size": 11,
    "mathtext.fontset": "dejavusans",
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.titlecolor": INK,
    "axes.titlesize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "text.color": INK,
    "savefig.facecolor": "white",
}


# --- shared drawing helpers ---

def new_figure(width, height):
    figure = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    return figure


def diagram(xlim, ylim, inches_per_unit):
    """A figure sized to its limits, with one frameless axes filling it, equal units in x and y.

    Sizing the figure from the limits keeps an equal aspect from adding blank margins.
    """
    width = (xlim[1] - xlim[0]) * inches_per_unit
    height = (ylim[1] - ylim[0]) * inches_per_unit
    figure = new_figure(width, height)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(*xlim)
    axes.set_ylim(*ylim)
    axes.set_aspect("equal")
    axes.axis("off")
    return figure, axes


def save(figure, path):
    """Write `figure` as a 256-colour PNG.

    Agg writes 32-bit RGBA, and the antialiased edges of many thin lines made the network
    diagram 200 KB; these flat-coloured figures lose nothing visible in a palette, which
    cuts them to a third. Median cut without dithering is deterministic, and Pillow adds no
    metadata of its own, so the bytes stay reproducible.
    """
    rendered = io.BytesIO()
    figure.savefig(rendered, format="png", dpi=DPI, metadata={"Software": None})
    image = Image.open(rendered).convert("RGB").quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="png", optimize=True)
    print(f"wrote {path}")


def box(axes, center, size, text, edge, fill, fontsize=11):
    (x, y), (width, height) = center, size
    axes.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                  boxstyle="round,pad=0,rounding_size=0.08",
                                  edgecolor=edge, facecolor=fill, linewidth=1.4))
    axes.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def arrow(axes, start, end, color=MUTED, width=1.2):
    axes.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12,
                                   color=color, linewidth=width, shrinkA=0, shrinkB=0))


def relu(z):
    return np.maximum(0.0, z)


def softmax(z):
    # Subtracting the max changes nothing mathematically and keeps exp from overflowing.
    exp_z = np.exp(z - np.max(z))
    return exp_z / exp_z.sum()


# --- relu.png ---

def draw_relu_panel(axes):
    z = np.linspace(-3, 3, 301)
    axes.plot(z, relu(z), color=BLUE, linewidth=2.5)
    axes.plot([0], [0], "o", color=ORANGE, markersize=7, zorder=3)
    axes.annotate("kink at z = 0", xy=(0, 0), xytext=(0.35, -0.55), color=ORANGE,
                  arrowprops={"arrowstyle": "-", "color": ORANGE, "linewidth": 1})
    axes.text(-2.8, 2.4, "$a = \\max(0,\\ z)$", fontsize=14, color=BLUE)
    axes.text(-2.8, 0.25, "off: a = 0", color=MUTED, fontsize=10)
    axes.text(1.55, 0.9, "on: a = z", color=MUTED, fontsize=10)
    axes.set(xlim=(-3, 3), ylim=(-1, 3), xlabel="z", title="ReLU activation")
    axes.set_ylabel("a", rotation=0, labelpad=10)
    axes.grid(color=GRID, linewidth=0.8)
    axes.set_axisbelow(True)


def draw_relu_sum_panel(axes):
    """Shifted, scaled ReLUs add up to a piecewise-linear curve: each one adds a kink."""
    z = np.linspace(0, 3, 301)
    pieces = [(1.0, 0.0, GREEN, "ReLU(z)"), (-2.0, 1.0, ORANGE, "−2·ReLU(z − 1)"),
              (2.0, 2.0, PURPLE, "+2·ReLU(z − 2)")]
    total = np.zeros_like(z)
    for weight, shift, color, label in pieces:
        piece = weight * relu(z - shift)
        total = total + piece
        axes.plot(z, piece, color=color, linewidth=1.3, linestyle="--", label=label)
    axes.plot(z, total, color=BLUE, linewidth=2.8, label="their sum")
    axes.set(xlim=(0, 3), ylim=(-2.2, 2.2), xlabel="z", ylabel="output",
             title="Adding ReLUs builds piecewise-linear functions")
    axes.legend(loc="lower left", fontsize=9, frameon=False)
    axes.grid(color=GRID, linewidth=0.8)
    axes.set_axisbelow(True)


def draw_relu(path):
    figure = new_figure(10, 3.8)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    draw_relu_panel(left)
    draw_relu_sum_panel(right)
    figure.tight_layout(w_pad=3)
    save(figure, path)


# --- softmax.png ---

def draw_softmax(path):
    z = np.array([1.0, 2.0, 3.0, 4.0])
    a = softmax(z)
    figure, axes = diagram((0, 8), (-1.5, 4.0), 1.0)
    rows = [3.0 - 0.8 * j for j in range(len(z))]
    axes.text(1.0, 3.6, "linear outputs z", ha="center", fontsize=11, color=BLUE)
    axes.text(7.0, 3.6, "probabilities a", ha="center", fontsize=11, color=GREEN)
    box(axes, (4.0, 1.8), (1.5, 3.0), "softmax", ORANGE, ORANGE_FILL, fontsize=13)
    for j, y in enumerate(rows):
        box(axes, (1.0, y), (1.5, 0.6), f"$z_{j}$ = {z[j]:g}", BLUE, BLUE_FILL)
        box(axes, (7.0, y), (1.5, 0.6), f"$a_{j}$ = {a[j]:.2f}", GREEN, GREEN_FILL)
        arrow(axes, (1.8, y), (3.2, 1.8 + (y - 1.8) * 0.35))
        arrow(axes, (4.8, 1.8 + (y - 1.8) * 0.35), (6.2, y))
    axes.text(4.0, -0.45, "$a_j = \\dfrac{e^{z_j}}{e^{z_0} + e^{z_1} + e^{z_2} + e^{z_3}}$",
              ha="center", va="center", fontsize=17)
    axes.text(4.0, -1.15, f"e.g. $a_3 = e^{{{z[3]:g}}}\\,/\\,"
              f"(e^{{{z[0]:g}}} + e^{{{z[1]:g}}} + e^{{{z[2]:g}}} + e^{{{z[3]:g}}})"
              f" \\approx {a[3]:.3f}$", ha="center", va="center", fontsize=11, color=MUTED)
    axes.text(7.0, -0.05, f"sum = {a.sum():.2f}", ha="center", va="center",
              fontsize=10, color=MUTED)
    save(figure, path)


# --- network.png ---

LAYERS = [
    # (title, detail, drawn node labels (None for the ellipsis), colors, parameter shapes)
    ("Input", "400 inputs\n(20x20 pixels)",
     ["$x_0$", "$x_1$", "$x_2$", None, "$x_{398}$", "$x_{399}$"], (MUTED, "#f1f3f6"), ""),
    ("Layer 1", "25 units\nReLU", ["", "", "", None, "", ""], (BLUE, BLUE_FILL),
     "$W_1$ (400, 25)\n$b_1$ (25,)"),
    ("Layer 2", "15 units\nReLU", ["", "", None, "", ""], (PURPLE, PURPLE_FILL),
     "$W_2$ (25, 15)\n$b_2$ (15,)"),
    ("Layer 3", "10 units\nlinear", [str(d) for d in range(10)], (ORANGE, ORANGE_FILL),
     "$W_3$ (15, 10)\n$b_3$ (10,)"),
]
LAYER_X = [1.0, 3.6, 6.0, 8.4]
NODE_RADIUS = 0.2


def node_heights(count, spacing=0.52, middle=3.1):
    return [middle + spacing * ((count - 1) / 2 - k) for k in range(count)]


def draw_layer(axes, x, layer):
    title, detail, labels, (edge, fill), shapes = layer
    heights = node_heights(len(labels))
    for label, y in zip(labels, heights, strict=True):
        if label is None:
            axes.text(x, y, "⋮", ha="center", va="center", fontsize=18, color=MUTED)
            continue
        axes.add_patch(Circle((x, y), NODE_RADIUS, edgecolor=edge, facecolor=fill,
                              linewidth=1.4, zorder=3))
        axes.text(x, y, label, ha="center", va="center", fontsize=8, zorder=4)
    axes.text(x, 6.55, title, ha="center", va="bottom", fontsize=12, fontweight="bold",
              color=edge)
    axes.text(x, 6.5, detail, ha="center", va="top", fontsize=10)
    axes.text(x, 0.35, shapes, ha="center", va="top", fontsize=10, linespacing=1.5)
    return [y for label, y in zip(labels, heights, strict=True) if label is not None]


def connect(axes, x_from, heights_from, x_to, heights_to):
    for y_from in heights_from:
        for y_to in heights_to:
            axes.plot([x_from + NODE_RADIUS, x_to - NODE_RADIUS], [y_from, y_to],
                      color=GRID, linewidth=0.8, zorder=1)


def draw_network(path):
    figure, axes = diagram((0.0, 12.1), (-0.5, 7.1), 0.8)
    previous = None
    for x, layer in zip(LAYER_X, LAYERS, strict=True):
        heights = draw_layer(axes, x, layer)
        if previous is not None:
            connect(axes, *previous, x, heights)
        previous = (x, heights)
    output_x, output_heights = previous
    box(axes, (9.85, 3.1), (1.2, 0.9), "softmax", GREEN, GREEN_FILL)
    arrow(axes, (output_x + 0.45, 3.1), (9.2, 3.1))
    arrow(axes, (10.5, 3.1), (11.0, 3.1))
    axes.text(11.1, 3.1, "P(y = 0)\nP(y = 1)\n⋮\nP(y = 9)", ha="left", va="center",
              fontsize=10, linespacing=1.4)
    axes.text(10.4, 6.55, "Output", ha="center", va="bottom", fontsize=12,
              fontweight="bold", color=GREEN)
    axes.text(10.4, 6.5, "probabilities\nof digits 0-9", ha="center", va="top", fontsize=10)
    save(figure, path)


# --- digits.png ---

def first_of_each_digit(X, y):
    labels = y[:, 0]
    return [(digit, X[np.flatnonzero(labels == digit)[0]]) for digit in range(10)]


def draw_digits(path, data_dir=DATA_DIR):
    X = np.load(Path(data_dir) / "X.npy")
    y = np.load(Path(data_dir) / "y.npy")
    figure = new_figure(8, 1.15)
    panels = figure.subplots(1, 10)
    for axes, (digit, pixels) in zip(panels, first_of_each_digit(X, y), strict=True):
        # Rows of X are unrolled column by column; the transpose puts the digit upright.
        axes.imshow(pixels.reshape((20, 20)).T, cmap="gray", vmin=0, vmax=1,
                    interpolation="nearest")
        axes.set_title(f"y = {digit}", fontsize=10)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.03, top=0.8, wspace=0.12)
    save(figure, path)


FIGURES = {
    "relu.png": draw_relu,
    "softmax.png": draw_softmax,
    "network.png": draw_network,
    "digits.png": draw_digits,
}


def draw_all(out_dir):
    with matplotlib.rc_context(STYLE):
        for name, draw in FIGURES.items():
            draw(Path(out_dir) / name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_IMAGES_DIR,
                        help="directory for the PNGs (default: images/ in the repo)")
    args = parser.parse_args(argv)
    draw_all(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
