"""Morphometry of digit images and the thickness / intensity perturbations of Morpho-MNIST.

After Castro et al., "Morpho-MNIST: quantitative assessment and diagnostics for representation
learning" (JMLR 2019), implemented from the paper's description with numpy, scipy and scikit-image.
Lengths are in pixels of the input grid (28x28 for MNIST), grey levels in 0-255.

Conventions:

* **Input**: one image (H, W) or, for :func:`measure`, a batch (N, H, W). Integers (``uint8``)
  are grey levels 0-255, ``bool`` is 0/255, floats are read as [0, 1] when the whole array's
  maximum is <= 1 and as [0, 255] otherwise (a dark float 0-255 image is therefore misread:
  ``measure(images, scale=255.0)`` says the scale instead). Negative, non-finite or > 255
  values are errors.
* **Super-sampling**: the digit's bounding box plus a background margin is upsampled by
  ``SCALE`` = 4 with cubic-spline interpolation (clipped to the crop's grey range) and binarised at
  half its range, ``u >= min(u) + (max(u) - min(u)) / 2``. Cropping first makes this cheap.
* **thickness** = 2 * mean over skeleton pixels of the distance map at the medial ridge / SCALE.
  The skeleton is ``skimage.morphology.skeletonize`` (Zhang-Suen thinning), the distance map the
  Euclidean distance transform of the binary digit; each skeleton pixel reads the map at its
  largest value within one super-sampled pixel up the distance gradient, which cancels the bias of
  a thinned skeleton lying off the ridge on thick, curved strokes.
  :func:`stroke_maps` returns these intermediates (mask, skeleton, distance map, the local
  width 2 * D_ridge / SCALE at each skeleton pixel), whose mean width is the thickness.
* **intensity** = median grey level of the foreground at the input resolution, foreground =
  pixels ``>= min + (max - min) / 2`` (as the Deep SCM generator defines it).
* **slant** = arctan(-mu11 / mu02) in radians, from the central moments of the binary digit in
  (row, column) coordinates: positive when the digit leans right (its top to the right).
* **area** = binary digit pixels / SCALE**2 (px^2); **length** = skeleton length / SCALE (px;
  steps of 1 between orthogonal neighbours, sqrt 2 between diagonal ones); **width** and
  **height** = extent of the central ``1 - 2 * BOUND_FRAC`` of the digit's pixels along the
  slant-corrected columns and along the rows (px).
* **Blank images** (all pixels equal: no stroke) raise :class:`BlankImageError` for a single
  image; in a batch their row is NaN and a ``RuntimeWarning`` names their indices.

Where this differs from Castro's released code: Zhang-Suen thinning plus the ridge read-out instead
of ``skimage``'s medial axis (40x faster, no spurious branches on round stroke ends), and no
Gaussian smoothing after upsampling (it widens strokes thinner than 2 px by ~0.2 px). On MNIST and
Deep SCM digits the two agree to 0.05 px MAE (ours 0.025 px thicker on average, r = 0.995).

Limits: the threshold is relative to the image's brightest pixel (so thickness does not depend on
intensity); a stroke with no fully inked pixel (e.g. 1.5 px split evenly over two pixel columns)
is measured at half its own peak and reads thicker, as do strokes under ~1.2 px. Skeleton lengths
of curves are ~5 % long (8-connected chain steps).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

#: Super-sampling factor of the morphometry and of the perturbations.
SCALE = 4
#: Fraction of the digit's pixels ignored at each end when measuring width and height.
BOUND_FRAC = 0.02
#: The ``scale`` values :func:`as_grey_levels` / :func:`measure` accept (besides None: infer).
SCALES = (1.0, 255.0)
#: Columns of :func:`measure`, in order.
COLUMNS = ("thickness", "intensity", "slant", "area", "length", "width", "height")
#: Largest thickness (px) that :func:`set_thickness` accepts.
MAX_THICKNESS = 10.0
#: Thinnest core (px) that erosion leaves of the thickest stroke, so a digit never vanishes.
MIN_CORE = 0.5
_MARGIN = 2  # background pixels kept around the bounding box (input scale)
_RIDGE_STEPS = (0.5, 1.0)  # super-sampled pixels up the distance gradient


class BlankImageError(ValueError):
    """The image has no stroke: all its pixels are equal."""


# ---------------------------------------------------------------- input checks
def as_grey_levels(images: ArrayLike, scale: float | None = None) -> np.ndarray:
    """Validated float64 grey levels 0-255, same shape as ``images``.

    ``scale`` is the input's full brightness: 255.0 (grey levels 0-255) or 1.0 ([0, 1], times
    255 here). ``None`` infers it: integers are 0-255, bools 0/255, and floats are read as [0, 1]
    when the whole array's maximum is <= 1, as 0-255 otherwise. So a *dark* float image on the
    0-255 scale (brightest pixel <= 1) is misread as [0, 1] and comes back 255 times brighter:
    pass ``scale=255.0`` for such images (and ``scale=1.0`` to be explicit about [0, 1]).
    """
    if scale is not None and scale not in SCALES:
        raise ValueError(f"scale must be 1.0 (images in [0, 1]), 255.0 (grey levels 0-255) or "
                         f"None (infer it), got {scale!r}")
    array = np.asarray(images)
    if array.dtype == bool:
        return array * 255.0
    integer = np.issubdtype(array.dtype, np.integer)
    if not (integer or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"images have dtype {array.dtype}; use uint8 0-255 or floats in [0, 1]")
    if not np.isfinite(array).all():
        raise ValueError("images contain NaN or infinite values")
    low, high = (array.min(), array.max()) if array.size else (0.0, 0.0)
    if low < 0 or high > (255.0 if scale is None else scale):
        if scale is not None:
            raise ValueError(f"images given with scale={scale:g} must lie in [0, {scale:g}]; got "
                             f"{low:g}..{high:g}")
        if integer:
            raise ValueError(f"integer images must hold grey levels 0-255; got {low}..{high}")
        raise ValueError(
            f"float images must lie in [0, 1] or [0, 255]; got {low:g}..{high:g} "
            "(rescale images in [-1, 1] with (x + 1) / 2)"
        )
    full = scale if scale is not None else (255.0 if integer or high > 1.0 else 1.0)
    return array.astype(np.float64) * (255.0 / full)


def _check_shape(grey: np.ndarray, batch: bool) -> None:
    allowed = (2, 3) if batch else (2,)
    if grey.ndim not in allowed:
        wanted = "(H, W) or a batch (N, H, W)" if batch else "one image (H, W)"
        hint = "; squeeze the channel axis" if 1 in grey.shape else ""
        if not batch and grey.ndim == 3:
            hint = "; loop over a batch one image at a time"
        raise ValueError(f"expected {wanted}, got shape {grey.shape}{hint}")
    if min(grey.shape[-2:]) < 3:
        hint = "; channels last? squeeze the channel axis" if grey.shape[-1] in (1, 3, 4) else ""
        raise ValueError(f"images must be at least 3x3 pixels, got {grey.shape[-2:]}{hint}")


def _single_image(image: ArrayLike) -> np.ndarray:
    grey = as_grey_levels(image)
    _check_shape(grey, batch=False)
    return grey


def _check_target(value: float, name: str, high: float) -> float:
    value = float(value)
    if not 0.0 < value <= high:
        raise ValueError(f"target {name} must be in (0, {high:g}], got {value:g}")
    return value


# ---------------------------------------------------------------- super-sampled digit
def _crop(grey: np.ndarray, margin: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Bounding box of the non-background pixels of ``grey`` (H, W), padded by ``margin`` pixels
    of background (= the image minimum). Returns the crop and its top-left corner in ``grey``
    (negative where the padding sticks out of the image)."""
    background = grey.min()
    stroke = grey > background
    rows, cols = np.flatnonzero(stroke.any(axis=1)), np.flatnonzero(stroke.any(axis=0))
    if rows.size == 0:
        raise BlankImageError(f"image has no stroke: all its pixels equal {background:g}")
    top, left = rows[0] - margin, cols[0] - margin
    crop = np.full((rows[-1] + 1 + margin - top, cols[-1] + 1 + margin - left), background)
    inside = grey[max(top, 0):top + crop.shape[0], max(left, 0):left + crop.shape[1]]
    crop[max(-top, 0):max(-top, 0) + inside.shape[0],
         max(-left, 0):max(-left, 0) + inside.shape[1]] = inside
    return crop, (int(top), int(left))


@lru_cache(maxsize=128)
def _upsampler(n: int) -> np.ndarray:
    """(n * SCALE, n) matrix of cubic-spline upsampling by SCALE along one axis (pixel-area
    aligned grid, edge pixels repeated): ``_upsampler(h) @ x @ _upsampler(w).T`` equals
    ``ndi.zoom(x, SCALE, order=3, mode="nearest", grid_mode=True)`` at a fraction of its cost."""
    return ndi.zoom(np.eye(n), (SCALE, 1), order=3, mode="nearest", grid_mode=True)


def _binarise(crop: np.ndarray) -> np.ndarray:
    """Binary digit (h * SCALE, w * SCALE) bool: cubic-spline upsampling of the crop (h, w),
    clipped to its range, thresholded at u >= min + (max - min) / 2."""
    up = _upsampler(crop.shape[0]) @ crop @ _upsampler(crop.shape[1]).T
    np.clip(up, crop.min(), crop.max(), out=up)
    low, high = up.min(), up.max()
    return up >= low + 0.5 * (high - low)


def _trim(mask: np.ndarray) -> np.ndarray:
    """``mask`` cut to its bounding box plus a one-pixel False border (less work downstream)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[max(rows[0] - 1, 0):rows[-1] + 2, max(cols[0] - 1, 0):cols[-1] + 2]


def _ridge_distances(distance: np.ndarray, skeleton: np.ndarray) -> np.ndarray:
    """Distance map D read at the ridge next to each skeleton pixel p, (K,) in super-sampled px:
    max(D(p), D(p + t g / |g|) for t in _RIDGE_STEPS), g = grad D(p), bilinear."""
    rows, cols = np.nonzero(skeleton)
    grad_rows, grad_cols = (g[rows, cols] for g in np.gradient(distance))
    norm = np.hypot(grad_rows, grad_cols)
    norm[norm == 0] = 1.0  # a pixel on a flat ridge stays where it is
    steps = np.asarray(_RIDGE_STEPS)[:, None]
    coords = [(rows + steps * grad_rows / norm).ravel(), (cols + steps * grad_cols / norm).ravel()]
    moved = ndi.map_coordinates(distance, coords, order=1).reshape(steps.size, -1)
    return np.maximum(distance[rows, cols], moved.max(axis=0))


@dataclass(frozen=True, eq=False)
class StrokeMaps:
    """The super-sampled stroke of one image, as the thickness measurement sees it.

    All maps are (h, w), SCALE times the input grid, cut to the digit's bounding box plus a
    one-pixel background border. ``mask``: binary digit (bool); ``skeleton``: its one-pixel centre
    line (bool); ``distance``: Euclidean distance D of each stroke pixel to the background
    (super-sampled px); ``local_width``: (K,) stroke width 2 * D_ridge / SCALE at the K skeleton
    pixels, in ``np.nonzero(skeleton)`` order (input px); ``scale``: the factor SCALE.
    """

    mask: np.ndarray
    skeleton: np.ndarray
    distance: np.ndarray
    local_width: np.ndarray
    scale: int

    @property
    def thickness(self) -> float:
        """Mean stroke thickness (input px): the mean of :attr:`local_width`."""
        return float(self.local_width.mean())


def _maps(mask: np.ndarray) -> StrokeMaps:
    """:class:`StrokeMaps` of a binary super-sampled digit with any background margin."""
    mask = _trim(mask)
    skeleton = skeletonize(mask)
    distance = ndi.distance_transform_edt(mask)
    local_width = 2.0 * _ridge_distances(distance, skeleton) / SCALE  # w = 2 D_ridge / SCALE
    return StrokeMaps(mask, skeleton, distance, local_width, SCALE)


def _binary_digit(grey: np.ndarray) -> np.ndarray:
    """Binary super-sampled digit of a validated image (H, W) of grey levels."""
    return _binarise(_crop(grey, _MARGIN)[0])


def _skeleton_length(skeleton: np.ndarray) -> float:
    """Length of an 8-connected skeleton in its own pixels: 1 per orthogonal step, sqrt 2 per
    diagonal step that no orthogonal pair of steps already covers."""
    s = skeleton
    orthogonal = np.count_nonzero(s[:, :-1] & s[:, 1:]) + np.count_nonzero(s[:-1] & s[1:])
    diagonal = np.count_nonzero(s[:-1, :-1] & s[1:, 1:] & ~s[:-1, 1:] & ~s[1:, :-1])
    anti = np.count_nonzero(s[:-1, 1:] & s[1:, :-1] & ~s[:-1, :-1] & ~s[1:, 1:])
    return orthogonal + math.sqrt(2.0) * (diagonal + anti)


def _slant_extent(mask: np.ndarray) -> tuple[float, float, float]:
    """(slant rad, width px, height px) of a binary super-sampled digit.

    shear s = -mu11 / mu02, slant = arctan(s); upright column x' = dx + s * dy removes the lean;
    width / height = central (1 - 2 BOUND_FRAC) extent of x' / of the rows, + 1 pixel, / SCALE.
    """
    rows, cols = np.nonzero(mask)
    dy, dx = rows - rows.mean(), cols - cols.mean()
    mu02 = np.mean(dy * dy)
    shear = -np.mean(dx * dy) / mu02 if mu02 > 0 else 0.0
    upright = dx + shear * dy
    quantiles = (BOUND_FRAC, 1.0 - BOUND_FRAC)
    width = np.diff(np.quantile(upright, quantiles))[0] + 1.0
    height = np.diff(np.quantile(dy, quantiles))[0] + 1.0
    return float(np.arctan(shear)), float(width / SCALE), float(height / SCALE)


def _median_foreground(grey: np.ndarray) -> float:
    """Median grey level of the pixels >= min + (max - min) / 2 of ``grey`` (H, W)."""
    low, high = grey.min(), grey.max()
    return float(np.median(grey[grey >= low + 0.5 * (high - low)]))


# ---------------------------------------------------------------- measuring
def _morphometry(grey: np.ndarray) -> dict[str, float]:
    """All of :data:`COLUMNS` for one validated image (H, W) of grey levels."""
    maps = _maps(_binary_digit(grey))
    slant, width, height = _slant_extent(maps.mask)
    return {
        "thickness": maps.thickness,
        "intensity": _median_foreground(grey),
        "slant": slant,
        "area": float(np.count_nonzero(maps.mask)) / SCALE**2,
        "length": _skeleton_length(maps.skeleton) / SCALE,
        "width": width,
        "height": height,
    }


def measure(images: ArrayLike, scale: float | None = None) -> pd.DataFrame:
    """Morphometrics of one image (H, W) or a batch (N, H, W): a DataFrame with one row per image
    and :data:`COLUMNS` (thickness, length, width, height in px; area px^2; slant rad;
    intensity grey level 0-255).

    ``scale``: 255.0 for grey levels 0-255, 1.0 for [0, 1], None to infer it as
    :func:`as_grey_levels` does: floats whose maximum is <= 1 are then taken as [0, 1], so a dark
    float image on the 0-255 scale reads 255 times too bright unless ``scale=255.0`` is given.
    Only the intensity depends on it (the other columns use a threshold relative to the image).
    """
    grey = as_grey_levels(images, scale)
    _check_shape(grey, batch=True)
    if grey.ndim == 2:
        return pd.DataFrame([_morphometry(grey)], columns=list(COLUMNS))
    rows, blank = [], []
    for index, image in enumerate(grey):
        try:
            rows.append(_morphometry(image))
        except BlankImageError:
            blank.append(index)
            rows.append(dict.fromkeys(COLUMNS, np.nan))
    if blank:
        warnings.warn(
            f"{len(blank)} blank image(s) without a stroke, rows set to NaN: indices {blank[:20]}",
            RuntimeWarning,
            stacklevel=2,
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def stroke_maps(image: ArrayLike) -> StrokeMaps:
    """The super-sampled mask, skeleton, distance map and local widths behind the thickness of
    one image (H, W); ``stroke_maps(image).thickness == measure_thickness(image)``."""
    return _maps(_binary_digit(_single_image(image)))


def measure_thickness(image: ArrayLike) -> float:
    """Mean stroke thickness (px) of one image (H, W); :class:`BlankImageError` if it has none."""
    return stroke_maps(image).thickness


def measure_dataset_fidelity(
    images: ArrayLike, thickness: ArrayLike, intensity: ArrayLike
) -> dict[str, float]:
    """How well labels match the morphometry of ``images`` (N, H, W): for thickness and intensity,
    MAE = mean |measured - label|, bias = mean(measured - label) and Pearson r; blank images are
    left out (``n`` counts the rest)."""
    measured = measure(images)
    labels = {"thickness": np.asarray(thickness, float), "intensity": np.asarray(intensity, float)}
    if any(len(v) != len(measured) for v in labels.values()):
        raise ValueError(f"need one thickness and one intensity label per image ({len(measured)})")
    keep = measured["thickness"].notna().to_numpy()
    result: dict[str, float] = {"n": float(keep.sum())}
    for name, label in labels.items():
        error = measured[name].to_numpy()[keep] - label[keep]
        result[f"{name}_mae"] = float(np.abs(error).mean())
        result[f"{name}_bias"] = float(error.mean())
        result[f"{name}_r"] = float(np.corrcoef(measured[name].to_numpy()[keep], label[keep])[0, 1])
    return result


# ---------------------------------------------------------------- perturbations
def _tone(grey: np.ndarray, value: float) -> np.ndarray:
    """Grey levels whose foreground median m becomes ``value``, keeping the foreground set.

    y = k x, k = value / m, where k * max <= 255. Where that would clip (moving the half-range
    threshold, hence the thickness), the piecewise-linear curve through (min, k min),
    (half, (k min + 255) / 2), (m, value), (max, max(value, 255)), half = (min + max) / 2, which
    maps the half-range threshold onto the new one (both agree at k * max = 255). ``value`` may
    exceed 255 so that, after clipping, a median between two pixels can still reach 255.
    """
    low, high = grey.min(), grey.max()
    median = _median_foreground(grey)
    gain = value / median
    if gain * high <= 255.0:
        return grey * gain
    base = gain * low
    knots = [low, low + 0.5 * (high - low), median, high]
    return np.interp(grey, knots, [base, 0.5 * (base + 255.0), value, max(value, 255.0)])


def _scale_to_intensity(grey: np.ndarray, target: float, steps: int = 12) -> np.ndarray:
    """uint8 ``clip(rint(_tone(grey, v)))`` whose foreground median is closest to ``target``: v by
    bisection in target +- 32, as rounding moves pixels across the foreground threshold."""
    low, high = max(target - 32.0, 1e-3), target + 32.0
    best = (math.inf, grey)
    for _ in range(steps):
        value = 0.5 * (low + high)
        out = np.clip(np.rint(_tone(grey, value)), 0, 255)
        reached = _median_foreground(out)
        best = min(best, (abs(target - reached), out), key=lambda pair: pair[0])
        if best[0] <= 0.25:
            break
        low, high = (value, high) if reached < target else (low, value)
    return best[1].astype(np.uint8)


def set_intensity(image: ArrayLike, target: float) -> np.ndarray:
    """Image (H, W) uint8 whose foreground pixels have median ``target`` in (0, 255], to within
    rounding; the foreground set is kept, so the thickness barely moves (see ``_tone``).
    """
    target = _check_target(target, "intensity", 255.0)
    grey = _single_image(image)
    if grey.max() == grey.min():
        raise BlankImageError(f"image has no stroke: all its pixels equal {grey.min():g}")
    return _scale_to_intensity(grey, target)


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance (super-sampled px) to the boundary of ``mask``, > 0 inside: pixel-centre
    distances to the other phase, less the half pixel between a pixel centre and the boundary."""
    inside = ndi.distance_transform_edt(mask)
    outside = ndi.distance_transform_edt(~mask)
    return np.where(mask, inside - 0.5, 0.5 - outside)


def _render(signed: np.ndarray, radius: float) -> np.ndarray:
    """Grey crop (h, w) in [0, 1] of the digit dilated by ``radius`` super-sampled px (eroded if
    negative): coverage clip(1/2 + (signed + radius) / SCALE, 0, 1) (an edge ramp one input pixel
    wide), averaged over SCALE x SCALE blocks."""
    coverage = np.clip(0.5 + (signed + radius) / SCALE, 0.0, 1.0)
    h, w = signed.shape[0] // SCALE, signed.shape[1] // SCALE
    return coverage.reshape(h, SCALE, w, SCALE).mean(axis=(1, 3))


def _paste(crop: np.ndarray, corner: tuple[int, int], shape: tuple[int, ...]) -> np.ndarray:
    """``crop`` placed at ``corner`` on a zero image of ``shape``, cut at the image border."""
    out = np.zeros(shape)
    top, left = corner
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + crop.shape[0], shape[0]), min(left + crop.shape[1], shape[1])
    out[r0:r1, c0:c1] = crop[r0 - top:r1 - top, c0 - left:c1 - left]
    return out


def set_thickness(
    image: ArrayLike, target: float, *, corrections: int = 2, tolerance: float = 0.02
) -> np.ndarray:
    """Image (H, W) uint8 whose measured thickness is ``target`` px, in (0, MAX_THICKNESS].

    The binary super-sampled digit is dilated (eroded if negative) by r = (target - current) / 2
    * SCALE super-sampled px, any real r, by shifting its signed distance map; the result is
    rendered with a one-pixel anti-aliased edge at the input resolution. Up to ``corrections``
    times, r += (target - measured) / 2 * SCALE until |measured - target| <= ``tolerance``.
    Erosion stops when the thickest stroke is MIN_CORE px wide (a ``RuntimeWarning`` says so), so
    the digit never vanishes. Grey levels: scaled linearly towards the original's median foreground
    intensity as far as no pixel clips (clipping would change the thickness), so strongly thinned
    digits come out dimmer; follow with :func:`set_intensity`. The background becomes 0.
    """
    target = _check_target(target, "thickness", MAX_THICKNESS)
    grey = _single_image(image)
    current = _maps(_binary_digit(grey)).thickness
    crop, corner = _crop(grey, _MARGIN + 1 + math.ceil(max(target - current, 0.0) / 2))
    signed = _signed_distance(_binarise(crop))
    lowest = MIN_CORE / 2 * SCALE - signed.max()  # the thickest half-width keeps MIN_CORE / 2
    wanted = (target - current) / 2 * SCALE
    best, clamped = (math.inf, None), False
    for _ in range(corrections + 1):
        radius, clamped = max(wanted, lowest), clamped or wanted < lowest
        rendered = _render(signed, radius)
        reached = _maps(_binarise(rendered)).thickness
        best = min(best, (abs(reached - target), rendered), key=lambda pair: pair[0])
        if best[0] <= tolerance:
            break
        wanted = radius + (target - reached) / 2 * SCALE
    if clamped and best[0] > tolerance:
        warnings.warn(
            f"thinning to {target:g} px would erase the digit; stopped at a {MIN_CORE:g} px core",
            RuntimeWarning,
            stacklevel=2,
        )
    out = _paste(best[1], corner, grey.shape)  # [0, 1]
    gain = min(_median_foreground(grey) / _median_foreground(out), 255.0 / out.max())
    return np.clip(np.rint(out * gain), 0, 255).astype(np.uint8)


def thicken(image: ArrayLike, amount: float) -> np.ndarray:
    """Image (H, W) uint8 whose thickness is ``amount`` > 0 px more than the original's."""
    if not amount > 0:
        raise ValueError(f"thicken amount must be > 0 px, got {amount:g} (use thin to thin)")
    return set_thickness(image, measure_thickness(image) + amount)


def thin(image: ArrayLike, amount: float) -> np.ndarray:
    """Image (H, W) uint8 whose thickness is ``amount`` > 0 px less than the original's."""
    current = measure_thickness(image)
    if not 0 < amount < current:
        raise ValueError(
            f"thin amount must be in (0, {current:.2f}) px for this image, got {amount:g}"
        )
    return set_thickness(image, current - amount)
