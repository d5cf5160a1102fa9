"""The Pendulum scene: its geometry, the SCM (two angles -> two shadow variables, noiseless in
CausalVAE's scenes, optionally with additive exogenous noise),
the renderer that draws a scene from its angles, and true counterfactuals (re-rendering).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

# ------------------------------------------------------------------ geometry (scene units)
PIVOT = (10.0, 10.5)
ROD_LENGTH = 8.0
BOB_RADIUS = 1.5
SHADOW_REACH = ROD_LENGTH + BOB_RADIUS  # the rod point whose shadow ends the shadow: 9.5
SUN_RADIUS = 3.0
SUN_HEIGHT = 20.5
GROUND = -0.5
MIN_SHADOW = 3.0
#: With exogenous shadow noise, a shadow is never drawn shorter than this (scene units).
MIN_DRAWN_SHADOW = 0.5
NOISE_COLUMNS = {"shadow_length": "shadow_length_noise",
                 "shadow_position": "shadow_position_noise"}
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
_TOLERANCE = 1e-9


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


def _check_shadow_range(values: Mapping[str, np.ndarray],
                        ranges: Mapping[str, tuple[float, float]] | None = None) -> None:
    ranges = label_ranges() if ranges is None else ranges
    for name, value in values.items():
        lo, hi = ranges[name]
        outside = (value < lo - _TOLERANCE) | (value > hi + _TOLERANCE)
        if np.any(outside):
            raise ValueError(
                f"do({name}={value[outside].flat[0]:g}) is outside the dataset's range "
                f"[{lo:.3g}, {hi:.3g}]; pass check_range=False to extrapolate on purpose"
            )


def shadow_ranges(shadow_noise_sd: float = 0.0, spread: float = 4.0,
                  ) -> dict[str, tuple[float, float]]:
    """The shadows a dataset can hold: the CausalVAE grid's range (:func:`label_ranges`),
    widened by ``spread`` sds of exogenous shadow noise (a length never below
    :data:`MIN_DRAWN_SHADOW`)."""
    ranges = label_ranges()
    out = {}
    for name in VARIABLES[2:]:
        lo, hi = ranges[name]
        lo, hi = lo - spread * shadow_noise_sd, hi + spread * shadow_noise_sd
        out[name] = (max(lo, MIN_DRAWN_SHADOW) if name == "shadow_length" else lo, hi)
    return out


def add_shadow_noise(geometry: Mapping[str, np.ndarray],
                     noise: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Shadows with exogenous noise: ``geometry`` (the noiseless shadows of the angles) plus
    ``noise`` per shadow variable, a length never below :data:`MIN_DRAWN_SHADOW`."""
    out = {}
    for name in VARIABLES[2:]:
        value = np.asarray(geometry[name], dtype=np.float64) + np.asarray(noise.get(name, 0.0))
        out[name] = np.maximum(MIN_DRAWN_SHADOW, value) if name == "shadow_length" else value
    return out


def counterfactual(pendulum_angle: np.ndarray | float, light_angle: np.ndarray | float,
                   do: Mapping[str, np.ndarray | float], size: int = IMAGE_SIZE,
                   check_range: bool = True,
                   shadow_noise: Mapping[str, np.ndarray] | None = None,
                   shadow_range: Mapping[str, tuple[float, float]] | None = None,
                   ) -> PendulumCounterfactual:
    """The true counterfactual of factual scenes (angles in degrees, scalars or (N,)) under
    ``do``, e.g. ``{"light_angle": 100}`` or ``{"shadow_length": 8}``.

    Abduction is exact: intervened variables take their new values, shadows not intervened on
    are recomputed from the (new) angles plus each scene's own exogenous ``shadow_noise``
    (``{"shadow_length": (N,), "shadow_position": (N,)}``; none in the CausalVAE scenes), and
    the scene is re-rendered. An intervention on a shadow (an effect) draws the given shadow
    instead of the physical one; with ``check_range`` its value must lie in ``shadow_range``
    (default: the CausalVAE grid's; :func:`shadow_ranges` widens it for noisy shadows).
    """
    unknown = sorted(set(do) - set(VARIABLES))
    if unknown:
        raise ValueError(f"cannot intervene on {unknown}; the variables are {list(VARIABLES)}")
    pendulum_labels(pendulum_angle, light_angle, check_range)  # validates the factual scenes
    values = {name: np.asarray(do.get(name, factual), dtype=np.float64) for name, factual in
              (("pendulum_angle", pendulum_angle), ("light_angle", light_angle))}
    values |= {name: np.asarray(do[name], dtype=np.float64) for name in VARIABLES[2:] if name in do}
    noise = {k: np.asarray(v, dtype=np.float64) for k, v in (shadow_noise or {}).items()}
    shape = np.broadcast_shapes(np.shape(pendulum_angle), np.shape(light_angle),
                                *(v.shape for v in values.values()), *(v.shape for v in
                                                                       noise.values()))
    values = {k: np.broadcast_to(v, shape).ravel() for k, v in values.items()}
    noise = {k: np.broadcast_to(v, shape).ravel() for k, v in noise.items()}
    shadows = {k: v for k, v in values.items() if k in VARIABLES[2:]}
    if check_range:
        _check_shadow_range(shadows, shadow_range)
    table = pd.DataFrame(pendulum_labels(values["pendulum_angle"], values["light_angle"],
                                         check_range))
    if noise:
        for name, value in add_shadow_noise(table, noise).items():
            table[name] = value
    for name, value in shadows.items():
        table[name] = value
    images = render_batch(table["pendulum_angle"].to_numpy(), table["light_angle"].to_numpy(),
                          size, table["shadow_length"].to_numpy(),
                          table["shadow_position"].to_numpy(), check_range)
    return PendulumCounterfactual(table, images)
