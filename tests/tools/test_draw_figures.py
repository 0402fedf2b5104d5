"""Tests for tools/draw_figures.py and the figures it committed to images/."""

import matplotlib.image
import numpy as np
import pytest

NAMES = ["relu.png", "softmax.png", "network.png", "digits.png"]
MAX_BYTES = 150_000


@pytest.fixture(scope="module")
def drawn_dir(draw_figures, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("images")
    assert draw_figures.main(["--out", str(out_dir)]) == 0
    return out_dir


def test_draws_every_figure(draw_figures, drawn_dir):
    assert sorted(draw_figures.FIGURES) == sorted(NAMES)
    assert sorted(path.name for path in drawn_dir.iterdir()) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_figure_is_a_readable_png_of_sensible_size(drawn_dir, name):
    path = drawn_dir / name
    assert 2_000 < path.stat().st_size < MAX_BYTES
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert 600 <= width <= 1600 and 100 <= height <= 1000
    assert pixels.std() > 0.05  # not a blank canvas


@pytest.mark.parametrize("name", NAMES)
def test_rebuild_matches_committed_figure(draw_figures, drawn_dir, name):
    committed = draw_figures.DEFAULT_IMAGES_DIR / name
    assert committed.read_bytes() == (drawn_dir / name).read_bytes(), (
        f"{committed} is stale; rerun `python tools/draw_figures.py`")


def test_softmax_example_numbers(draw_figures):
    a = draw_figures.softmax(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(a.sum(), 1.0)
    np.testing.assert_array_equal(np.round(a, 2), [0.03, 0.09, 0.24, 0.64])


def test_softmax_survives_large_inputs(draw_figures):
    a = draw_figures.softmax(np.array([1000.0, 1000.0]))
    np.testing.assert_allclose(a, [0.5, 0.5])


def test_gallery_takes_one_example_per_digit(draw_figures):
    y = np.repeat(np.arange(10, dtype=np.uint8), 3).reshape(-1, 1)
    X = np.arange(30.0)[:, None] * np.ones((1, 400))
    picks = draw_figures.first_of_each_digit(X, y)
    assert [digit for digit, _ in picks] == list(range(10))
    assert [pixels[0] for _, pixels in picks] == [3.0 * d for d in range(10)]
