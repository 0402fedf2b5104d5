"""Tests for tools/build_data.py and the data files it committed."""

import numpy as np
import pytest

SIDE = 20


@pytest.fixture(scope="module")
def source(build_data):
    return build_data.load_source()


@pytest.fixture(scope="module")
def committed(build_data):
    data_dir = build_data.DEFAULT_DATA_DIR
    return np.load(data_dir / "X.npy"), np.load(data_dir / "y.npy")


def correlation(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


# --- the resize function on small known inputs ---

def test_weights_rows_sum_to_one(build_data):
    weights = build_data.triangle_weights(28, 20)
    assert weights.shape == (20, 28)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_every_input_pixel_is_used_when_downscaling(build_data):
    # The point of the widened triangle: no input column is skipped, so thin strokes survive.
    weights = build_data.triangle_weights(28, 20)
    assert (weights.sum(axis=0) > 0).all()


def test_resize_output_shape(build_data):
    images = np.zeros((3, 28, 28))
    assert build_data.resize_images(images, SIDE).shape == (3, SIDE, SIDE)
    assert build_data.resize_images(np.zeros((28, 28)), SIDE).shape == (SIDE, SIDE)


def test_constant_image_stays_constant(build_data):
    resized = build_data.resize_images(np.full((28, 28), 0.7), SIDE)
    np.testing.assert_allclose(resized, 0.7, rtol=0, atol=1e-12)


def test_same_size_resize_is_identity(build_data):
    image = np.arange(25.0).reshape(5, 5)
    np.testing.assert_allclose(build_data.resize_images(image, 5), image, atol=1e-12)


def test_downscale_by_two_averages_blocks(build_data):
    # A triangle of half-width 2 centred between two pixels weighs them equally.
    image = np.array([[0.0, 4.0, 8.0, 8.0]] * 4)
    resized = build_data.resize_images(image, 2)
    assert resized.shape == (2, 2)
    assert resized[0, 0] < resized[0, 1]
    np.testing.assert_allclose(resized[0], resized[1])


def test_resize_roughly_preserves_mass(build_data, source):
    images, _ = source
    resized = build_data.resize_images(images[:200], SIDE)
    ratio = resized.sum(axis=(1, 2)) / (images[:200].sum(axis=(1, 2)) * (SIDE / 28) ** 2)
    assert np.all(np.abs(ratio - 1) < 0.05)


def test_thin_stroke_survives(build_data):
    image = np.zeros((28, 28))
    image[:, 13] = 255.0  # a one-pixel vertical line
    resized = build_data.resize_images(image, SIDE)
    assert resized.max(axis=1).min() > 100


# --- the data files ---

def test_shapes_and_dtypes(committed):
    X, y = committed
    assert X.shape == (5000, 400) and X.dtype == np.float64
    assert y.shape == (5000, 1) and y.dtype == np.uint8


def test_values_in_unit_range(committed):
    X, _ = committed
    assert X.min() == 0.0 and X.max() <= 1.0
    assert X.max() > 0.99  # strokes are near full ink, not washed out


def test_labels_sorted_500_per_class(committed):
    _, y = committed
    labels = y[:, 0]
    assert np.all(np.diff(labels.astype(int)) >= 0)
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    assert (y[0, 0], y[1015, 0], y[-1, 0]) == (0, 2, 9)


def nearest_downscale(images, side):
    # Deliberately independent of the code under test: pick the nearest source pixel.
    nearest = ((np.arange(side) + 0.5) * images.shape[-1] / side).astype(int)
    return images[:, nearest][:, :, nearest]


def test_digits_are_upright_when_reshaped_and_transposed(source, committed):
    images, _ = source
    X, _ = committed
    expected = nearest_downscale(images, SIDE)
    picks = np.arange(0, 5000, 97)
    upright = np.array([correlation(X[i].reshape((SIDE, SIDE)).T, expected[i]) for i in picks])
    flipped = np.array([correlation(X[i].reshape((SIDE, SIDE)).T, expected[i].T) for i in picks])
    # Nearest-pixel sampling is crude, so "strongly" means > 0.85, not > 0.99.
    assert upright.min() > 0.85 and np.median(upright) > 0.95
    assert np.median(flipped) < 0.6
    assert (upright > flipped).all()


def test_column_major_unroll(build_data):
    marked = np.zeros((1, 28, 28))
    marked[0, :7, :] = 255.0  # ink in the top rows only
    X, y = build_data.build(marked, [3])
    shown = X[0].reshape((SIDE, SIDE)).T
    assert shown[0].mean() > 0.9 and shown[-1].mean() == 0.0
    assert y.tolist() == [[3]]


# --- reproducibility ---

def test_fresh_build_equals_committed_files(build_data):
    fresh = build_data.build_files()
    for name, content in fresh.items():
        assert (build_data.DEFAULT_DATA_DIR / name).read_bytes() == content, name


def test_check_flags_a_changed_file(build_data, tmp_path, capsys):
    assert build_data.main(["--out", str(tmp_path)]) == 0
    assert build_data.main(["--out", str(tmp_path), "--check"]) == 0
    np.save(tmp_path / "y.npy", np.zeros((5000, 1), np.uint8), allow_pickle=False)
    assert build_data.main(["--out", str(tmp_path), "--check"]) == 1
    assert "y.npy differs from a fresh build" in capsys.readouterr().err


def test_check_flags_a_missing_file(build_data, tmp_path, capsys):
    assert build_data.main(["--out", str(tmp_path), "--check"]) == 1
    assert "is missing" in capsys.readouterr().err
