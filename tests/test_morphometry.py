"""Morphometry (cdae.data.morphometry): accuracy on strokes of known geometry, the perturbations
on real MNIST digits, agreement with the Deep SCM labels, and clear errors on bad input."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from cdae.data import morphometry
from cdae.data.idx import read_idx
from cdae.data.mnist import MnistNotFoundError, load_mnist
from cdae.paths import deepscm_dir

FINE = 16  # drawing resolution of the synthetic strokes, per output pixel


def _draw(inside) -> np.ndarray:
    """(28, 28) uint8 image of the region ``inside(y, x)`` (coordinates in output pixels), with
    area-averaged edges: each output pixel is the covered fraction of its FINE x FINE samples."""
    y, x = (np.mgrid[0 : 28 * FINE, 0 : 28 * FINE] + 0.5) / FINE
    coverage = inside(y, x).reshape(28, FINE, 28, FINE).mean(axis=(1, 3))
    return np.rint(coverage * 255).astype(np.uint8)


def _ring(width, radius, cy, cx):
    return _draw(lambda y, x: np.abs(np.hypot(y - cy, x - cx) - radius) <= width / 2)


def _line(width, angle, cy, cx, half_length=9.0):
    """A straight stroke with round caps: points within width / 2 of a segment."""
    def inside(y, x):
        across = (x - cx) * np.cos(angle) - (y - cy) * np.sin(angle)
        along = (x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
        return np.hypot(across, np.maximum(np.abs(along) - half_length, 0)) <= width / 2
    return _draw(inside)


def _parallelogram(width, height, shear):
    """Upright box width x height centred at (14, 14), sheared so its top leans right by shear."""
    def inside(y, x):
        return (np.abs(x - 14 + shear * (y - 14)) <= width / 2) & (np.abs(y - 14) <= height / 2)
    return _draw(inside)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    try:
        return load_mnist("test").images[:150]
    except MnistNotFoundError:
        pytest.skip("MNIST not found: set CDAE_MNIST_DIR (CI sets it to ../shared/data/mnist)")


# ---------------------------------------------------------------- accuracy on known geometry
@pytest.mark.parametrize("width", [1.5, 2.0, 3.0, 4.0, 5.0])
def test_strokes_of_known_width_measure_their_width(width):
    """The binarising threshold is half the image's range, so each stroke has at least one fully
    covered pixel, as real digits do (a 1.5 px line split evenly over two pixels, neither full,
    reads ~2 px: its width is then taken at half its own peak)."""
    shapes = [
        _ring(width, 7.0, 14.0, 14.0),
        _ring(width, 8.3, 13.6, 14.4),
        _line(width, 0.0, 14.2, 14.5),
        _line(width, 0.45, 13.7, 14.3),
        _line(width, 2.1, 14.4, 14.1),
    ]
    measured = morphometry.measure(np.stack(shapes))["thickness"].to_numpy()
    np.testing.assert_allclose(measured, width, atol=0.15)


def test_area_and_length_of_rings_and_lines():
    width, radius = 2.0, 8.0
    row = morphometry.measure(_ring(width, radius, 14.0, 14.0)).iloc[0]
    assert row["area"] == pytest.approx(2 * math.pi * radius * width, rel=0.03)
    # 8-connected chain lengths (steps 1 and sqrt 2) overestimate curves by ~5 %
    assert row["length"] == pytest.approx(2 * math.pi * radius, rel=0.07)
    for angle in (0.0, math.pi / 4):  # segment of length 18 between the round caps
        assert morphometry.measure(_line(width, angle, 14.0, 14.0))["length"][0] == pytest.approx(
            18.0, abs=1.0
        )


@pytest.mark.parametrize("shear", [-0.3, 0.0, 0.35])
def test_slant_width_height_of_a_parallelogram(shear):
    row = morphometry.measure(_parallelogram(4.0, 16.0, shear)).iloc[0]
    assert row["slant"] == pytest.approx(math.atan(shear), abs=0.03)  # > 0: top leans right
    assert row["width"] == pytest.approx(4.0, abs=0.4)
    assert row["height"] == pytest.approx(16.0, abs=1.0)


def test_input_scales_agree_and_batch_matches_single():
    image = _ring(2.5, 7.0, 14.0, 14.0)
    batch = morphometry.measure(np.stack([image, _line(3.0, 0.3, 14.0, 14.0)]))
    assert list(batch.columns) == list(morphometry.COLUMNS) and len(batch) == 2
    single = morphometry.measure(image)
    pd.testing.assert_frame_equal(single, batch.iloc[:1])
    for version in (image / 255.0, image.astype(np.float32), image.astype(np.int64)):
        pd.testing.assert_frame_equal(morphometry.measure(version), single)
    assert morphometry.measure_thickness(image) == single["thickness"][0]


def test_scale_reads_dark_float_images_as_given():
    """Floats with maximum <= 1 are inferred to be [0, 1]; scale=255.0 reads them as 0-255."""
    image = _ring(2.5, 7.0, 14.0, 14.0)
    single = morphometry.measure(image)
    pd.testing.assert_frame_equal(morphometry.measure(image / 255.0, scale=1.0), single)
    pd.testing.assert_frame_equal(morphometry.measure(image.astype(float), scale=255.0), single)
    dark = image * (0.8 / 255.0)  # grey levels 0..0.8 on the 0-255 scale: a very dark ring
    inferred, given = morphometry.measure(dark), morphometry.measure(dark, scale=255.0)
    assert inferred["intensity"][0] == pytest.approx(0.8 * single["intensity"][0])  # misread
    assert given["intensity"][0] == pytest.approx(0.8 * single["intensity"][0] / 255.0)
    assert given["intensity"][0] < 1.0
    assert given["thickness"][0] == inferred["thickness"][0]  # a relative threshold
    with pytest.raises(ValueError, match=r"scale=1 must lie in \[0, 1\]"):
        morphometry.measure(image.astype(float), scale=1.0)
    with pytest.raises(ValueError, match="scale must be 1.0.*255.0.*None"):
        morphometry.measure(image, scale=100.0)


def test_stroke_maps_show_what_the_thickness_averages():
    width = 3.0
    image = _line(width, 0.0, 14.2, 14.5)  # vertical, 18 px between the round caps
    maps = morphometry.stroke_maps(image)
    assert maps.scale == morphometry.SCALE
    assert maps.mask.shape == maps.skeleton.shape == maps.distance.shape
    assert maps.mask.dtype == bool and not (maps.skeleton & ~maps.mask).any()
    assert (maps.distance[~maps.mask] == 0).all() and (maps.distance[maps.mask] >= 1).all()
    assert maps.local_width.shape == (np.count_nonzero(maps.skeleton),)
    assert np.median(maps.local_width) == pytest.approx(width, abs=0.15)  # away from the caps
    assert maps.thickness == maps.local_width.mean() == morphometry.measure(image)["thickness"][0]
    rows = np.flatnonzero(maps.mask.any(axis=1))  # super-sampled: SCALE rows per input pixel
    assert (rows[-1] - rows[0] + 1) / morphometry.SCALE == pytest.approx(18.0 + width, abs=1.0)


# ---------------------------------------------------------------- perturbations on real digits
def test_set_thickness_hits_gamma_targets_on_real_digits(digits):
    targets = 0.5 + np.random.default_rng(0).gamma(10.0, 1 / 5.0, size=len(digits))
    out = np.stack([morphometry.set_thickness(d, t) for d, t in zip(digits, targets, strict=True)])
    assert out.dtype == np.uint8 and out.shape == digits.shape
    error = np.abs(morphometry.measure(out)["thickness"].to_numpy() - targets)
    assert np.median(error) <= 0.2
    assert np.percentile(error, 90) <= 0.3


def test_set_thickness_is_monotone_and_deterministic(digits):
    targets = [1.5, 2.0, 2.5, 3.0, 4.0, 5.0]
    measured = [morphometry.measure_thickness(morphometry.set_thickness(digits[3], t))
                for t in targets]
    assert np.all(np.diff(measured) > 0.3)
    first, again = (morphometry.set_thickness(digits[3], 3.3) for _ in range(2))
    np.testing.assert_array_equal(first, again)


def test_thicken_and_thin_move_thickness_by_the_amount(digits):
    current = morphometry.measure_thickness(digits[0])
    assert morphometry.measure_thickness(morphometry.thicken(digits[0], 1.0)) == pytest.approx(
        current + 1.0, abs=0.1
    )
    assert morphometry.measure_thickness(morphometry.thin(digits[0], 0.5)) == pytest.approx(
        current - 0.5, abs=0.1
    )


def test_thinning_never_erases_the_digit(digits):
    thick = morphometry.set_thickness(digits[1], 5.0)
    with pytest.warns(RuntimeWarning, match="would erase the digit"):
        out = morphometry.set_thickness(thick, 0.05)
    assert (out > 0).sum() >= 4
    assert morphometry.measure_thickness(out) > 0


def test_set_intensity_sets_the_median_foreground(digits):
    thin = morphometry.set_thickness(digits[2], 1.4)  # few saturated pixels: must not clip
    for image in (digits[0], digits[5], thin):
        for target in (40.0, 100.5, 180.0, 250.0, 255.0):
            out = morphometry.set_intensity(image, target)
            assert out.dtype == np.uint8
            assert morphometry.measure(out)["intensity"][0] == pytest.approx(target, abs=1.0)


def test_set_intensity_keeps_the_thickness(digits):
    before = morphometry.measure(digits[:20])["thickness"].to_numpy()
    for target in (64.0, 128.0, 200.0, 235.0):
        out = np.stack([morphometry.set_intensity(d, target) for d in digits[:20]])
        after = morphometry.measure(out)["thickness"].to_numpy()
        np.testing.assert_allclose(after, before, atol=0.1)


def test_deepscm_labels_match_the_morphometry():
    folder = deepscm_dir()
    if not (folder / "t10k-morpho.csv").exists():
        pytest.skip(f"Deep SCM Morpho-MNIST not found in {folder}: set CDAE_DEEPSCM_DIR")
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")[:300]
    labels = pd.read_csv(folder / "t10k-morpho.csv")[:300]
    fidelity = morphometry.measure_dataset_fidelity(images, labels["thickness"],
                                                    labels["intensity"])
    assert fidelity["n"] == 300
    assert fidelity["thickness_mae"] < 0.2 and fidelity["thickness_r"] > 0.97
    assert fidelity["intensity_mae"] < 1.0 and fidelity["intensity_r"] > 0.999


# ---------------------------------------------------------------- blank and bad input
def test_blank_image_raises_alone_and_is_nan_in_a_batch():
    blank = np.zeros((28, 28), np.uint8)
    for call in (morphometry.measure, morphometry.measure_thickness, morphometry.stroke_maps):
        with pytest.raises(morphometry.BlankImageError, match="no stroke"):
            call(blank)
    with pytest.raises(ValueError, match="no stroke"):
        morphometry.set_thickness(np.full((28, 28), 7, np.uint8), 2.0)
    with pytest.raises(ValueError, match="no stroke"):
        morphometry.set_intensity(blank, 100.0)
    batch = np.stack([_ring(2.0, 7.0, 14.0, 14.0), blank, _ring(3.0, 7.0, 14.0, 14.0)])
    with pytest.warns(RuntimeWarning, match=r"indices \[1\]"):
        table = morphometry.measure(batch)
    assert table.iloc[1].isna().all() and table.drop(index=1).notna().all().all()


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (np.zeros((28, 28, 1), np.uint8), ValueError, "squeeze the channel axis"),
        (np.zeros((2, 1, 28, 28), np.uint8), ValueError, r"got shape \(2, 1, 28, 28\)"),
        (np.zeros((2, 2), np.uint8), ValueError, "at least 3x3"),
        (np.full((28, 28), -0.5), ValueError, r"\[0, 1\] or \[0, 255\]"),
        (np.full((28, 28), 300.0), ValueError, r"\[0, 1\] or \[0, 255\]"),
        (np.full((28, 28), np.nan), ValueError, "NaN"),
        (np.full((28, 28), 256, np.int64), ValueError, "grey levels 0-255"),
        (np.zeros((28, 28), np.complex64), TypeError, "dtype complex64"),
    ],
)
def test_bad_images_are_rejected(images, error, match):
    with pytest.raises(error, match=match):
        morphometry.measure(images)


def test_bad_targets_and_amounts_are_rejected():
    image = _ring(2.0, 7.0, 14.0, 14.0)
    for target in (0.0, -1.0, morphometry.MAX_THICKNESS + 1, float("nan")):
        with pytest.raises(ValueError, match="target thickness must be in"):
            morphometry.set_thickness(image, target)
    for target in (0.0, 255.5, -3.0):
        with pytest.raises(ValueError, match="target intensity must be in"):
            morphometry.set_intensity(image, target)
    with pytest.raises(ValueError, match="one image"):
        morphometry.set_thickness(np.stack([image, image]), 2.0)
    with pytest.raises(ValueError, match="thin amount"):
        morphometry.thin(image, 5.0)
    with pytest.raises(ValueError, match="thicken amount"):
        morphometry.thicken(image, -1.0)
    with pytest.raises(ValueError, match="one thickness and one intensity label per image"):
        morphometry.measure_dataset_fidelity(np.stack([image, image]), [2.0], [255.0, 255.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid call warns about nothing
        morphometry.set_thickness(image, 2.5)
