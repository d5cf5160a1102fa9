"""The Pendulum oracle: read the four variables back from an image's pixels (rendered at any
square size, or resized), so that generated counterfactuals can be scored against their targets.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cdae.data.pendulum.scene import (
    BOB_COLOUR,
    GROUND,
    LINE_WIDTH,
    PIVOT,
    SUN_HEIGHT,
    SUN_RADIUS,
    SUPERSAMPLE,
    YLIM,
    _pixel_coords,
    _scene_coords,
    _viewport_pixels,
)


def _as_float_batch(images: np.ndarray) -> np.ndarray:
    """(H, W, C) or (N, H, W, C) uint8 with C in {3, 4} -> (N, H, W, 3) float in [0, 1]."""
    batch = np.asarray(images)
    batch = batch[None] if batch.ndim == 3 else batch
    if batch.ndim != 4 or batch.shape[-1] not in (3, 4) or batch.shape[1] != batch.shape[2]:
        raise ValueError(
            f"expected square RGB(A) images of shape (N, H, W, 3|4) or (H, W, 3|4), got "
            f"{np.asarray(images).shape}; convert model outputs with cdae.plotting.to_display"
        )
    if batch.dtype == np.uint8:
        return batch[..., :3].astype(np.float32) / 255.0
    return np.clip(batch[..., :3].astype(np.float32), 0.0, 1.0)


def _weighted_mean(weights: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Σ w·c / Σ w over the last axis (NaN where Σ w = 0)."""
    total = weights.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights * coords).sum(-1) / total


def _measure_bob(rgb: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """θ = atan2(x̄ - 10, 10.5 - ȳ) from the centroid of the red bob below y = 12."""
    red = (BOB_COLOUR[0] - BOB_COLOUR[1]) / 255
    weight = np.clip((rgb[..., 0] - rgb[..., 1]) / red, 0, 1) * (ys < 12)[None, :, None]
    flat = weight.reshape(len(rgb), -1)
    cx = _weighted_mean(flat, np.broadcast_to(xs[None, :], weight.shape[1:]).ravel())
    cy = _weighted_mean(flat, np.broadcast_to(ys[:, None], weight.shape[1:]).ravel())
    return np.degrees(np.arctan2(cx - PIVOT[0], PIVOT[1] - cy))


def _visible_edges(size: int) -> tuple[float, float]:
    """Scene x of the left and right edges of the drawn area (the clipped axes box)."""
    full = size * SUPERSAMPLE
    first, last = _viewport_pixels(full)[:2]
    left, right = _scene_coords(np.array([first, last + 1.0]), 0.0, full)[0]
    return float(left), float(right)


def _visible_bar(profile: np.ndarray, xs: np.ndarray, edges: tuple[float, float]) -> tuple:
    """Centre, visible length (scene units) and whether it touches the left / right edge, of
    per-column coverages (N, W) in [0, 1]."""
    dx = xs[1] - xs[0]
    centre, visible = _weighted_mean(profile, xs), profile.sum(-1) * dx
    return (centre, visible, centre - visible / 2 < edges[0] + dx / 2,
            centre + visible / 2 > edges[1] - dx / 2)


#: Sun chords are read on rows from this far below the sun's centre (scene units) ...
SUN_ROWS_BELOW = 1.5
#: ... up to this many pixel heights below the top of the axes box, out of reach of the blur that
#: resizing (e.g. 96 -> 64 px, anti-aliased) spreads from the box's clipped top edge.
SUN_ROWS_MARGIN = 2.0
#: A chord touching the border is clipped when it is shorter than 2·sqrt(3² - (y - 20.5)²) by
#: more than this many pixel widths (drawn discs come out a fraction of a pixel short).
SUN_CLIP_TOLERANCE = 0.3


def _sun_rows(ys: np.ndarray) -> np.ndarray:
    """Indices of the rows whose centres lie in [20.5 - 1.5, 21 - 2 pixel heights] (the nearest
    row to 20.5 - 1.5 in images too small for that band)."""
    pixel = abs(float(ys[0] - ys[1]))
    inside = (ys >= SUN_HEIGHT - SUN_ROWS_BELOW) & (ys <= YLIM[1] - SUN_ROWS_MARGIN * pixel)
    rows = np.flatnonzero(inside)
    return rows if rows.size else np.array([np.argmin(np.abs(ys - SUN_HEIGHT + SUN_ROWS_BELOW))])


def _measure_sun(rgb: np.ndarray, xs: np.ndarray, ys: np.ndarray, edges: tuple) -> tuple:
    """φ = atan2(10, x_sun - 10), x_sun the mean over :func:`_sun_rows` of each orange chord's
    centre; a chord that touches the image border and is short of its full length
    2·sqrt(3² - (y - 20.5)²) is completed from the border outwards. The rows stay clear of the
    clipped top of the sun, so the reading holds at any image size and after resizing."""
    estimates, clipped_rows = [], []
    tolerance = SUN_CLIP_TOLERANCE * (xs[1] - xs[0])
    for row in _sun_rows(ys):
        chord = np.clip(1 - rgb[:, row, :, 2], 0, 1)  # orange has no blue
        centre, visible, at_left, at_right = _visible_bar(chord, xs, edges)
        half = math.sqrt(max(SUN_RADIUS**2 - (ys[row] - SUN_HEIGHT) ** 2, 0.0))
        clipped = (at_left | at_right) & (visible < 2 * half - tolerance)
        left, right = clipped & at_left, clipped & at_right & ~at_left
        estimates.append(np.where(left, edges[0] + visible - half,
                                  np.where(right, edges[1] - visible + half, centre)))
        clipped_rows.append(clipped)
    x_sun = np.mean(estimates, axis=0)
    angle = np.degrees(np.arctan2(SUN_HEIGHT - PIVOT[1], x_sun - PIVOT[0]))
    return angle, np.any(clipped_rows, axis=0)


def _measure_shadow(rgb: np.ndarray, xs: np.ndarray, ys: np.ndarray, edges: tuple) -> tuple:
    """Length and position of the dark bar on the ground line (its visible part)."""
    size = rgb.shape[1]
    band = np.abs(_pixel_coords(0.0, ys, size)[1] - _pixel_coords(0.0, GROUND, size)[1])
    darkness = np.clip(1 - rgb.max(-1), 0, 1)[:, band < LINE_WIDTH * size / 2 + 1, :].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.nan_to_num(darkness / darkness.max(-1, keepdims=True))
    position, length, left, right = _visible_bar(profile, xs, edges)
    return length, position, left | right


def measure(images: np.ndarray) -> pd.DataFrame:
    """Read the four variables back from rendered images (an oracle for generated ones).

    (N, H, W, 3|4) or (H, W, 3|4) uint8 (or float in [0, 1]) -> DataFrame with
    :data:`VARIABLES` (degrees, scene units) and ``sun_clipped``, ``shadow_clipped``: where the
    shadow runs off the image only its visible part is measured. Pendulum angle from the red bob's
    centroid, light angle from the sun's position, shadow from the dark bar on the ground line.

    Any square size works, rendered at that size or resized (e.g. 96 -> 64 px as the pendulum
    configs train): on 64 px images the angles come back within about 0.4°, the shadow within
    about 0.1 scene units (``tests/test_pendulum.py``).
    """
    rgb = _as_float_batch(images)
    size = rgb.shape[1]
    centres = np.arange(size) + 0.5
    xs, ys = _scene_coords(centres, centres, size)
    edges = _visible_edges(size)
    light, sun_clipped = _measure_sun(rgb, xs, ys, edges)
    length, position, shadow_clipped = _measure_shadow(rgb, xs, ys, edges)
    return pd.DataFrame({
        "pendulum_angle": _measure_bob(rgb, xs, ys), "light_angle": light,
        "shadow_length": length, "shadow_position": position,
        "sun_clipped": sun_clipped, "shadow_clipped": shadow_clipped,
    })


