"""The Pendulum dataset of CausalVAE (Yang et al., CVPR 2021), rendered from its geometry.

Scene coordinates are those of the original figures' axes (x in [0, 20], y in [-1, 21], y up)::

    pivot P = (10, 10.5); bob centre B = P + 8 (sin θ, -cos θ), bob radius 1.5
        (θ = 0 hangs straight down, θ > 0 swings the bob to the right)
    parallel light rays of direction (cos φ, sin φ); the sun (radius 3) sits where the ray through
        the pivot meets y = 20.5:  x_sun = 10 + 10 cot φ   (φ < 90°: sun right of the pivot)
    ground projection of (x, y) on y = -0.5:  g(x, y) = x + (-0.5 - y) cot φ
    T = P + 9.5 (sin θ, -cos θ)   (far edge of the bob)
    shadow_position = (g(P) + g(T)) / 2,   shadow_length = max(3, |g(P) - g(T)|)

The SCM: ``pendulum_angle`` and ``light_angle`` are independent roots, ``shadow_length`` and
``shadow_position`` are noiseless functions of both (the formulas above).

Conventions:

* **Units**: angles in degrees; the grid has θ = 0.9·i, φ = 0.9·j (π/200 rad = 0.9°) for the
  integers i in [-40, 43], j in [60, 147] without 100, i.e. 84 × 87 = 7,308 images. Shadow length
  and position are in scene units (the image's x axis spans 0 to 20).
* **Files**: ``a_<i>_<j>_<int(shadow_length)>_<int(shadow_position)>.png`` as CausalVAE names them
  (``int`` truncates toward zero), so CausalVAE's loaders read our folders and we read theirs;
  exact float labels are in ``labels.csv``.
* **Split**: 5,482 train / 1,826 test, drawn at random from ``seed`` (the original sent every
  fourth image in grid order to test, which gives the same sizes).
* **Images**: 96 × 96 RGBA, opaque white background, laid out like the original 1-inch matplotlib
  figures at 96 dpi: the scene fills the default subplot box, whose x and y scales differ slightly
  (3.72 vs 3.36 px per unit), so discs are drawn as slight ellipses, as in the original.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from cdae.files import exclusive_lock
from cdae.paths import data_dir

# ------------------------------------------------------------------ geometry (scene units)
PIVOT = (10.0, 10.5)
ROD_LENGTH = 8.0
BOB_RADIUS = 1.5
SHADOW_REACH = ROD_LENGTH + BOB_RADIUS  # the rod point whose shadow ends the shadow: 9.5
SUN_RADIUS = 3.0
SUN_HEIGHT = 20.5
GROUND = -0.5
MIN_SHADOW = 3.0
XLIM = (0.0, 20.0)
YLIM = (-1.0, 21.0)

# ------------------------------------------------------------------ grid and variables
ANGLE_STEP = 0.9  # degrees per grid index (π/200 rad)
I_VALUES = np.arange(-40, 44)
J_VALUES = np.array([j for j in range(60, 148) if j != 100])
PENDULUM_RANGE = (ANGLE_STEP * I_VALUES[0], ANGLE_STEP * I_VALUES[-1])  # (-36.0, 38.7) degrees
LIGHT_RANGE = (ANGLE_STEP * J_VALUES[0], ANGLE_STEP * J_VALUES[-1])  # (54.0, 132.3) degrees
VARIABLES = ("pendulum_angle", "light_angle", "shadow_length", "shadow_position")
N_IMAGES, N_TEST = 7308, 1826
SPLITS = ("train", "test")

# ------------------------------------------------------------------ drawing
IMAGE_SIZE = 96
VIEWPORT = (0.125, 0.11, 0.9, 0.88)  # left, bottom, right, top: matplotlib's default subplot box
LINE_WIDTH = 4 / 96  # rod and shadow: 3 pt at 96 dpi = 4 px of a 96 px image
SUPERSAMPLE = 4
BACKGROUND = (255, 255, 255)
ROD_COLOUR = (0, 0, 0)
BOB_COLOUR = (178, 34, 34)  # firebrick
SUN_COLOUR = (255, 165, 0)  # orange
SHADOW_COLOUR = (0, 0, 0)

LABELS_CSV = "labels.csv"
MANIFEST = "MANIFEST.sha256"
INFO_JSON = "dataset.json"
FILE_NAME = re.compile(r"^a_(-?\d+)_(-?\d+)_(-?\d+)_(-?\d+)\.png$")
_TOLERANCE = 1e-9


class PendulumDataError(ValueError):
    """A Pendulum folder is malformed: unreadable names, wrong image sizes, mismatched labels."""


@dataclass(frozen=True)
class PendulumSplit:
    """``images`` (N, 96, 96, 4) uint8 RGBA; ``labels`` one row per image with at least
    ``pendulum_angle, light_angle`` (degrees), ``shadow_length, shadow_position`` (scene units);
    ``source`` says where they came from."""

    images: np.ndarray
    labels: pd.DataFrame
    source: str

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class PendulumCounterfactual:
    """``labels`` (N rows, columns :data:`VARIABLES`) after the intervention; ``images``
    (N, 96, 96, 4) uint8, rendered from those labels."""

    labels: pd.DataFrame
    images: np.ndarray


# ================================================================== physics: labels
def _check_angles(theta: np.ndarray, phi: np.ndarray, check_range: bool) -> None:
    """Raise ValueError for angles outside the grid's ranges (or, unchecked, outside physics)."""
    if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(phi))):
        raise ValueError("pendulum_angle and light_angle must be finite numbers (degrees)")
    if check_range:
        for name, values, (lo, hi) in (("pendulum_angle", theta, PENDULUM_RANGE),
                                       ("light_angle", phi, LIGHT_RANGE)):
            bad = values[(values < lo - _TOLERANCE) | (values > hi + _TOLERANCE)]
            if bad.size:
                raise ValueError(
                    f"{name}={bad.flat[0]:g}° is outside the dataset's range [{lo:g}, {hi:g}] "
                    "degrees; pass check_range=False to extrapolate on purpose"
                )
    elif np.any(np.abs(theta) > 90) or np.any((phi <= 0) | (phi >= 180)):
        raise ValueError(
            "the renderer needs -90 <= pendulum_angle <= 90 and 0 < light_angle < 180 degrees "
            "(the pendulum hangs down, the sun is above the ground)"
        )


def ground_projection(x: np.ndarray | float, y: np.ndarray | float,
                      light_angle: np.ndarray | float) -> np.ndarray | float:
    """x where the light ray through scene point (x, y) meets the ground:
    g = x + (-0.5 - y) · cot φ, with φ = ``light_angle`` in degrees."""
    phi = np.radians(light_angle)
    return x + (GROUND - y) * np.cos(phi) / np.sin(phi)


def sun_position(light_angle: np.ndarray | float) -> np.ndarray | float:
    """x of the sun's centre on y = 20.5: x_sun = 10 + (20.5 - 10.5) · cot φ (degrees in)."""
    phi = np.radians(light_angle)
    return PIVOT[0] + (SUN_HEIGHT - PIVOT[1]) * np.cos(phi) / np.sin(phi)


def rod_point(pendulum_angle: np.ndarray | float, distance: float) -> tuple:
    """Scene point at ``distance`` along the rod from the pivot: P + d (sin θ, -cos θ)."""
    theta = np.radians(pendulum_angle)
    return PIVOT[0] + distance * np.sin(theta), PIVOT[1] - distance * np.cos(theta)


def _as_output(values: np.ndarray) -> np.ndarray | float:
    return float(values) if np.ndim(values) == 0 else values


def pendulum_labels(pendulum_angle: np.ndarray | float, light_angle: np.ndarray | float,
                    check_range: bool = True) -> dict[str, np.ndarray | float]:
    """All four variables for angles in degrees (numpy arrays broadcast; scalars give floats).

    shadow_position = (g(P) + g(T)) / 2 and shadow_length = max(3, |g(P) - g(T)|), with g the
    ground projection, P the pivot and T the point 9.5 along the rod. Angles outside the grid's
    ranges raise ``ValueError`` unless ``check_range=False``.
    """
    theta, phi = np.broadcast_arrays(np.asarray(pendulum_angle, dtype=np.float64),
                                     np.asarray(light_angle, dtype=np.float64))
    _check_angles(theta, phi, check_range)
    pivot_shadow = ground_projection(PIVOT[0], PIVOT[1], phi)
    tip_shadow = ground_projection(*rod_point(theta, SHADOW_REACH), phi)
    length = np.maximum(MIN_SHADOW, np.abs(pivot_shadow - tip_shadow))
    position = (pivot_shadow + tip_shadow) / 2
    values = (theta, phi, length, position)
    return {name: _as_output(np.array(v)) for name, v in zip(VARIABLES, values, strict=True)}


#: The name used by the project's agreed interface.
labels = pendulum_labels


def grid() -> pd.DataFrame:
    """The 7,308 grid points in the original order (i outer, j inner): columns ``i, j`` and
    :data:`VARIABLES`."""
    i, j = (a.ravel() for a in np.meshgrid(I_VALUES, J_VALUES, indexing="ij"))
    table = pd.DataFrame({"i": i, "j": j})
    for name, values in pendulum_labels(ANGLE_STEP * i, ANGLE_STEP * j).items():
        table[name] = values
    return table


@lru_cache(maxsize=1)
def label_ranges() -> dict[str, tuple[float, float]]:
    """``{variable: (min, max)}`` over the grid (shadow length 3 to 12.58, position 2.01 to
    19.61 scene units)."""
    table = grid()
    return {name: (float(table[name].min()), float(table[name].max())) for name in VARIABLES}


# ================================================================== rendering
def _pixel_coords(x: np.ndarray | float, y: np.ndarray | float, size: int) -> tuple:
    """Scene (x, y) -> continuous pixel coordinates (u right, v down) of a size × size image."""
    left, bottom, right, top = VIEWPORT
    u = (left + (x - XLIM[0]) / (XLIM[1] - XLIM[0]) * (right - left)) * size
    v = (1 - bottom - (y - YLIM[0]) / (YLIM[1] - YLIM[0]) * (top - bottom)) * size
    return u, v


def _scene_coords(u: np.ndarray | float, v: np.ndarray | float, size: int) -> tuple:
    """Inverse of :func:`_pixel_coords`."""
    left, bottom, right, top = VIEWPORT
    x = XLIM[0] + (u / size - left) / (right - left) * (XLIM[1] - XLIM[0])
    y = YLIM[0] + (1 - bottom - v / size) / (top - bottom) * (YLIM[1] - YLIM[0])
    return x, y


def image_extent(size: int = IMAGE_SIZE) -> tuple[float, float, float, float]:
    """``(x_left, x_right, y_bottom, y_top)`` of the whole image in scene units, for
    ``plt.imshow(image, extent=image_extent())`` so scene geometry can be drawn on top."""
    x0, y_top = _scene_coords(0.0, 0.0, size)
    x1, y_bottom = _scene_coords(float(size), float(size), size)
    return x0, x1, y_bottom, y_top


def _span(a: float, b: float) -> tuple[int, int]:
    """Inclusive range of pixels whose centres (k + 0.5) lie in [a, b): PIL fills inclusive
    boxes and floors coordinates, so passing these integers keeps shapes unbiased."""
    return math.ceil(a - 0.5), math.ceil(b - 0.5) - 1


def _viewport_pixels(full: int) -> tuple[int, int, int, int]:
    """First and last pixel columns, then rows (inclusive), inside the viewport (axes box)."""
    u0, v1 = _pixel_coords(XLIM[0], YLIM[0], full)
    u1, v0 = _pixel_coords(XLIM[1], YLIM[1], full)
    return (*_span(u0, u1), *_span(v0, v1))


def _draw_scene(theta: float, phi: float, length: float, position: float, size: int) -> np.ndarray:
    """Draw at ``SUPERSAMPLE``× then box-downsample: (size, size, 4) uint8, alpha 255."""
    full = size * SUPERSAMPLE
    canvas = Image.new("RGB", (full, full), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    half_width = LINE_WIDTH * full / 2

    def box(x0: float, x1: float, v0: float, v1: float) -> list[int]:
        """PIL box covering scene x in [x0, x1) and canvas rows v in [v0, v1)."""
        u0, u1 = _pixel_coords(np.array([x0, x1]), 0.0, full)[0]
        (left, right), (top, bottom) = _span(u0, u1), _span(v0, v1)
        return [left, top, right, bottom]

    def disc(cx: float, cy: float, radius: float, colour: tuple[int, int, int]) -> None:
        v_top, v_bottom = _pixel_coords(0.0, np.array([cy + radius, cy - radius]), full)[1]
        draw.ellipse(box(cx - radius, cx + radius, v_top, v_bottom), fill=colour)

    bob = tuple(float(c) for c in rod_point(theta, ROD_LENGTH))
    ends = [tuple(float(c) for c in _pixel_coords(*point, full)) for point in (PIVOT, bob)]
    draw.line(ends, fill=ROD_COLOUR, width=round(2 * half_width))
    disc(*bob, BOB_RADIUS, BOB_COLOUR)
    disc(float(sun_position(phi)), SUN_HEIGHT, SUN_RADIUS, SUN_COLOUR)
    v_ground = float(_pixel_coords(0.0, GROUND, full)[1])
    draw.rectangle(box(position - length / 2, position + length / 2, v_ground - half_width,
                       v_ground + half_width), fill=SHADOW_COLOUR)

    first_u, last_u, first_v, last_v = _viewport_pixels(full)  # clip to the axes box
    for clip in ((0, 0, full - 1, first_v - 1), (0, last_v + 1, full - 1, full - 1),
                 (0, 0, first_u - 1, full - 1), (last_u + 1, 0, full - 1, full - 1)):
        if clip[2] >= clip[0] and clip[3] >= clip[1]:
            draw.rectangle(clip, fill=BACKGROUND)
    small = np.asarray(canvas.reduce(SUPERSAMPLE))  # box average of SUPERSAMPLE² pixels
    rgba = np.full((size, size, 4), 255, dtype=np.uint8)
    rgba[..., :3] = small
    return rgba


def _check_shadow(length: np.ndarray, position: np.ndarray) -> None:
    if not (np.all(np.isfinite(length)) and np.all(np.isfinite(position))):
        raise ValueError("shadow_length and shadow_position must be finite (scene units)")
    if np.any(length <= 0):
        raise ValueError(f"shadow_length must be positive, got {length.min():g}")


def render_batch(pendulum_angle: np.ndarray, light_angle: np.ndarray, size: int = IMAGE_SIZE,
                 shadow_length: np.ndarray | None = None,
                 shadow_position: np.ndarray | None = None,
                 check_range: bool = True) -> np.ndarray:
    """Render N scenes: (N,) angles in degrees (broadcast, flattened) -> (N, size, size, 4)
    uint8.

    ``shadow_length`` / ``shadow_position`` (N,), when given, replace the physical shadow (an
    intervention on an effect); otherwise they follow from the angles.
    """
    computed = pendulum_labels(np.atleast_1d(pendulum_angle), np.atleast_1d(light_angle),
                               check_range)
    theta, phi = computed["pendulum_angle"].ravel(), computed["light_angle"].ravel()
    length = computed["shadow_length"] if shadow_length is None else shadow_length
    position = computed["shadow_position"] if shadow_position is None else shadow_position
    length, position = (np.broadcast_to(np.asarray(a, dtype=np.float64), theta.shape)
                        for a in (length, position))
    _check_shadow(length, position)
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    out = np.empty((theta.size, size, size, 4), dtype=np.uint8)
    for k in range(theta.size):
        out[k] = _draw_scene(theta[k], phi[k], length[k], position[k], size)
    return out


def render(pendulum_angle: float, light_angle: float, size: int = IMAGE_SIZE,
           shadow_length: float | None = None, shadow_position: float | None = None,
           check_range: bool = True) -> np.ndarray:
    """One scene, angles in degrees -> (size, size, 4) uint8 RGBA (deterministic).

    See :func:`render_batch` for the shadow overrides and ``check_range``.
    """
    if np.ndim(pendulum_angle) or np.ndim(light_angle):
        raise ValueError("render takes one pair of angles; use render_batch for arrays")
    return render_batch(pendulum_angle, light_angle, size, shadow_length, shadow_position,
                        check_range)[0]


# ================================================================== oracle measurement
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


# ================================================================== file names and the split
def file_name(i: int, j: int, shadow_length: float, shadow_position: float) -> str:
    """CausalVAE's name ``a_<i>_<j>_<int(length)>_<int(position)>.png`` (int() truncates)."""
    return f"a_{int(i)}_{int(j)}_{int(shadow_length)}_{int(shadow_position)}.png"


def parse_file_name(name: str) -> tuple[int, int, int, int]:
    """``(i, j, int shadow length, int shadow position)`` from a CausalVAE file name."""
    match = FILE_NAME.match(Path(name).name)
    if match is None:
        raise PendulumDataError(
            f"{name!r} is not a CausalVAE Pendulum file name; expected "
            "'a_<i>_<j>_<shadow length>_<shadow position>.png' with integers"
        )
    i, j, length, position = (int(g) for g in match.groups())
    return i, j, length, position


def dataset_table(seed: int = 0, limit: int | None = None) -> pd.DataFrame:
    """The rows :func:`write_dataset` writes: the grid (or a seeded subset of ``limit`` points),
    with ``split`` (test fraction 1,826 / 7,308, seeded) and ``file`` (``<split>/<name>``)."""
    table = grid()
    rng = np.random.default_rng(seed)
    if limit is not None:
        if not 2 <= limit <= len(table):
            raise ValueError(f"limit must be between 2 and {len(table)}, got {limit}")
        table = table.iloc[np.sort(rng.choice(len(table), size=limit, replace=False))]
    table = table.reset_index(drop=True)
    n_test = max(1, round(len(table) * N_TEST / N_IMAGES))
    split = np.full(len(table), "train", dtype=object)
    split[rng.permutation(len(table))[:n_test]] = "test"
    table.insert(0, "split", split)
    names = [file_name(*row) for row in table[["i", "j", "shadow_length", "shadow_position"]]
             .itertuples(index=False)]
    table.insert(0, "file", [f"{s}/{n}" for s, n in zip(split, names, strict=True)])
    return table


# ================================================================== writing and verifying
def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _looks_like_dataset(folder: Path) -> bool:
    return any((folder / name).exists() for name in (MANIFEST, LABELS_CSV, INFO_JSON))


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not (out.is_dir() and _looks_like_dataset(out)):
        raise ValueError(
            f"{out} exists and is not a Pendulum dataset folder; refusing to replace it. "
            "Choose an empty or new folder."
        )
    if not overwrite:
        raise FileExistsError(
            f"{out} already holds a Pendulum dataset; pass overwrite=True to replace it, or "
            "use load_or_generate() to reuse it"
        )


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` folder onto ``out``; an old ``out`` is removed afterwards."""
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}") if out.exists() else None
    if old is not None:
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_dataset(out: str | os.PathLike, seed: int = 0, limit: int | None = None,
                  overwrite: bool = False, progress: bool = True) -> Path:
    """Render the grid into ``out`` and return it: ``train/`` and ``test/`` PNGs with CausalVAE
    names, ``labels.csv`` (exact labels, split, file), ``dataset.json`` and ``MANIFEST.sha256``.

    Everything is written to a temporary sibling folder that is renamed onto ``out`` at the end,
    so an interrupted run leaves no half-written dataset. ``limit`` renders a seeded subset.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    _check_target(out, overwrite)
    table = dataset_table(seed, limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        for split in SPLITS:
            (tmp / split).mkdir(parents=True)
        digests = {}
        rows = table[["file", "pendulum_angle", "light_angle"]].itertuples(index=False)
        for file, theta, phi in tqdm(rows, total=len(table), desc="pendulum", disable=not progress):
            data = _png_bytes(render(theta, phi))
            (tmp / file).write_bytes(data)
            digests[file] = hashlib.sha256(data).hexdigest()
        table.to_csv(tmp / LABELS_CSV, index=False)
        info = {"dataset": "pendulum", "format": 1, "seed": seed, "limit": limit,
                "n_train": int((table.split == "train").sum()),
                "n_test": int((table.split == "test").sum()),
                "units": {"angles": "degrees", "shadow": "scene units (x axis 0-20)"}}
        (tmp / INFO_JSON).write_text(json.dumps(info, indent=2) + "\n")
        for name in (LABELS_CSV, INFO_JSON):
            digests[name] = hashlib.sha256((tmp / name).read_bytes()).hexdigest()
        lines = [f"{digest}  {path}\n" for path, digest in sorted(digests.items())]
        (tmp / MANIFEST).write_text("".join(lines))
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def verify_dataset(root: str | os.PathLike) -> list[str]:
    """Problems found by checking ``root`` against its ``MANIFEST.sha256`` (empty list: intact).

    Reports a missing or malformed manifest, missing files, files whose sha256 differs, and PNGs
    under ``train/`` or ``test/`` that the manifest does not list.
    """
    root = Path(root)
    manifest = root / MANIFEST
    if not manifest.is_file():
        return [f"{manifest} is missing"]
    expected = {}
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        digest, _, path = line.partition("  ")
        if len(digest) != 64 or not path:
            return [f"{manifest} line {number} is not '<sha256>  <path>': {line[:80]!r}"]
        expected[path] = digest
    problems = []
    for path, digest in expected.items():
        file = root / path
        if not file.is_file():
            problems.append(f"missing {path}")
        elif hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            problems.append(f"sha256 mismatch for {path}")
    for split in SPLITS:
        extra = {f"{split}/{p.name}" for p in (root / split).glob("*.png")} - set(expected)
        problems += [f"unlisted file {path}" for path in sorted(extra)]
    return problems


# ================================================================== reading
def _read_png(path: Path) -> np.ndarray:
    """One 96 × 96 PNG as (96, 96, 4) uint8 RGBA (RGB or palette files get alpha 255)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image if image.mode == "RGBA" else image.convert("RGBA"))
    except OSError as exc:
        raise PendulumDataError(f"cannot read {path} as an image: {exc}") from exc
    if array.shape != (IMAGE_SIZE, IMAGE_SIZE, 4):
        raise PendulumDataError(
            f"{path} is {array.shape[1]}×{array.shape[0]} pixels; Pendulum images are "
            f"{IMAGE_SIZE}×{IMAGE_SIZE}"
        )
    return array


def _labels_from_csv(root: Path, split: str) -> pd.DataFrame:
    table = pd.read_csv(root / LABELS_CSV)
    missing_columns = sorted({"file", "split", *VARIABLES} - set(table.columns))
    if missing_columns:
        raise PendulumDataError(f"{root / LABELS_CSV} lacks the columns {missing_columns}")
    table = table[table["split"] == split].reset_index(drop=True)
    if table.empty:
        raise PendulumDataError(f"{root / LABELS_CSV} has no rows with split == {split!r}")
    absent = [f for f in table["file"] if not (root / f).is_file()]
    if absent:
        raise FileNotFoundError(
            f"{len(absent)} image(s) listed in {root / LABELS_CSV} are missing, e.g. "
            f"{root / absent[0]}; regenerate with load_or_generate() or write_dataset()"
        )
    extra = {f"{split}/{p.name}" for p in (root / split).glob("*.png")} - set(table["file"])
    if extra:
        raise PendulumDataError(
            f"{len(extra)} PNG(s) in {root / split} are not in {LABELS_CSV}, e.g. "
            f"{sorted(extra)[0]}; the folder and its labels do not match"
        )
    return table


def _labels_from_names(root: Path, split: str) -> pd.DataFrame:
    """Labels of a CSV-less CausalVAE folder, parsed from the file names. The shadow labels are
    recomputed exactly from (i, j) when their truncations agree with the names; otherwise (a
    modified generator) the names' integers are kept, with a warning."""
    folder = root / split
    paths = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not paths:
        raise FileNotFoundError(
            f"no {LABELS_CSV} in {root} and no PNGs in {folder}; expected this project's "
            "layout or CausalVAE's (train/ and test/ with a_<i>_<j>_<len>_<pos>.png)"
        )
    parsed = np.array([parse_file_name(p.name) for p in paths], dtype=np.int64)
    table = pd.DataFrame({"file": [f"{split}/{p.name}" for p in paths], "split": split,
                          "i": parsed[:, 0], "j": parsed[:, 1]})
    exact = pendulum_labels(ANGLE_STEP * table["i"].to_numpy(),
                            ANGLE_STEP * table["j"].to_numpy(), check_range=False)
    agree = all(np.array_equal(np.trunc(exact[name]), parsed[:, k])
                for k, name in ((2, "shadow_length"), (3, "shadow_position")))
    if not agree:
        warnings.warn(
            f"shadow labels in the file names under {folder} do not follow the CausalVAE "
            "geometry; using the names' integers as labels", stacklevel=3,
        )
        exact["shadow_length"], exact["shadow_position"] = parsed[:, 2], parsed[:, 3]
    for name in VARIABLES:
        table[name] = np.asarray(exact[name], dtype=np.float64)
    return table.sort_values(["i", "j"], kind="stable").reset_index(drop=True)


def read_pendulum(root: str | os.PathLike, split: str = "train") -> PendulumSplit:
    """Read one split of a Pendulum folder: this project's layout (``labels.csv``) or a
    CausalVAE folder of PNGs only (labels parsed from the names, rows sorted by (i, j))."""
    if split not in SPLITS:
        raise ValueError(f"unknown Pendulum split {split!r}; use 'train' or 'test'")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"no Pendulum dataset at {root}; create one with `python -m cdae data pendulum "
            f"--out {root}` or cdae.data.pendulum.load_or_generate()"
        )
    from_csv = (root / LABELS_CSV).is_file()
    table = _labels_from_csv(root, split) if from_csv else _labels_from_names(root, split)
    images = np.stack([_read_png(root / f) for f in table["file"]])
    kind = "labels.csv" if from_csv else "file names"
    return PendulumSplit(images, table, f"pendulum:{split} ({kind}) at {root}")


# ================================================================== cache
def _info_problems(root: Path, seed: int, limit: int | None) -> list[str]:
    info = json.loads((root / INFO_JSON).read_text())
    if (info.get("seed"), info.get("limit")) != (seed, limit):
        return [f"it was made with seed={info.get('seed')}, limit={info.get('limit')}, "
                f"not seed={seed}, limit={limit}"]
    return []


def load_or_generate(root: str | os.PathLike | None = None, seed: int = 0,
                     limit: int | None = None, progress: bool = True) -> Path:
    """Folder of a verified Pendulum dataset, rendering it first when absent.

    Default ``root``: ``data_dir()/"pendulum"``. A cache that fails its manifest (missing or
    changed files) or was made with another seed/limit is regenerated with a warning.
    """
    root = Path(root) if root is not None else data_dir() / "pendulum"
    with exclusive_lock(root.parent / f".{root.name}.lock"):  # one writer at a time
        if root.is_dir() and _looks_like_dataset(root):
            problems = verify_dataset(root)
            problems = problems or _info_problems(root, seed, limit)
            if not problems:
                return root
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            warnings.warn(f"the Pendulum dataset at {root} is unusable: {problems[0]}{more}; "
                          "regenerating it", stacklevel=3)
            return write_dataset(root, seed, limit, overwrite=True, progress=progress)
        return write_dataset(root, seed, limit, progress=progress)


# ================================================================== sampling and counterfactuals
def sample_angles(n: int, rng: np.random.Generator | int | None = None) -> tuple:
    """``(pendulum_angle, light_angle)``, each (n,) degrees, uniform over the grid's ranges."""
    rng = np.random.default_rng(rng)
    return rng.uniform(*PENDULUM_RANGE, size=n), rng.uniform(*LIGHT_RANGE, size=n)


def sample(n: int, rng: np.random.Generator | int | None = None) -> PendulumSplit:
    """n scenes with continuous angles (:func:`sample_angles`), rendered: a fresh dataset."""
    theta, phi = sample_angles(n, rng)
    table = pd.DataFrame(pendulum_labels(theta, phi))
    return PendulumSplit(render_batch(theta, phi), table, f"pendulum:sampled n={n}")


def _check_shadow_range(values: Mapping[str, np.ndarray]) -> None:
    ranges = label_ranges()
    for name, value in values.items():
        lo, hi = ranges[name]
        if np.any((value < lo - _TOLERANCE) | (value > hi + _TOLERANCE)):
            raise ValueError(
                f"do({name}={value.flat[0]:g}) is outside the dataset's range [{lo:.3g}, "
                f"{hi:.3g}]; pass check_range=False to extrapolate on purpose"
            )


def counterfactual(pendulum_angle: np.ndarray | float, light_angle: np.ndarray | float,
                   do: Mapping[str, np.ndarray | float], size: int = IMAGE_SIZE,
                   check_range: bool = True) -> PendulumCounterfactual:
    """The true counterfactual of factual scenes (angles in degrees, scalars or (N,)) under
    ``do``, e.g. ``{"light_angle": 100}`` or ``{"shadow_length": 8}``.

    The SCM has no noise, so abduction is exact: intervened variables take their new values,
    shadows not intervened on are recomputed from the (new) angles, and the scene is re-rendered.
    An intervention on a shadow (an effect) draws the given shadow instead of the physical one.
    """
    unknown = sorted(set(do) - set(VARIABLES))
    if unknown:
        raise ValueError(f"cannot intervene on {unknown}; the variables are {list(VARIABLES)}")
    pendulum_labels(pendulum_angle, light_angle, check_range)  # validates the factual scenes
    values = {name: np.asarray(do.get(name, factual), dtype=np.float64) for name, factual in
              (("pendulum_angle", pendulum_angle), ("light_angle", light_angle))}
    values |= {name: np.asarray(do[name], dtype=np.float64) for name in VARIABLES[2:] if name in do}
    shape = np.broadcast_shapes(np.shape(pendulum_angle), np.shape(light_angle),
                                *(v.shape for v in values.values()))
    values = {k: np.broadcast_to(v, shape).ravel() for k, v in values.items()}
    shadows = {k: v for k, v in values.items() if k in VARIABLES[2:]}
    if check_range:
        _check_shadow_range(shadows)
    table = pd.DataFrame(pendulum_labels(values["pendulum_angle"], values["light_angle"],
                                         check_range))
    for name, value in shadows.items():
        table[name] = value
    images = render_batch(table["pendulum_angle"].to_numpy(), table["light_angle"].to_numpy(),
                          size, table["shadow_length"].to_numpy(),
                          table["shadow_position"].to_numpy(), check_range)
    return PendulumCounterfactual(table, images)
