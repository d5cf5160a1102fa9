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
``shadow_position`` are noiseless functions of both (the formulas above). ``shadow_noise_sd`` > 0
(``write_dataset``, ``load_or_generate``, ``python -m cdae data pendulum --shadow-noise-sd``)
adds exogenous noise N(0, sd²) to both, so that do(shadow) asks for scenes the data supports.

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

Where things are: the geometry, the SCM, the renderer and true counterfactuals in :mod:`.scene`;
the pixel oracle in :mod:`.measure`; file names, writing, reading and the cache in :mod:`.files`.
Every public name is importable from ``cdae.data.pendulum``.
"""

from cdae.data.pendulum.files import (
    FILE_NAME,
    INFO_JSON,
    LABELS_CSV,
    MANIFEST,
    SPLITS,
    PendulumDataError,
    dataset_table,
    default_folder,
    file_name,
    load_or_generate,
    parse_file_name,
    read_pendulum,
    verify_dataset,
    write_dataset,
)
from cdae.data.pendulum.measure import (
    SUN_CLIP_TOLERANCE,
    SUN_ROWS_BELOW,
    SUN_ROWS_MARGIN,
    measure,
)
from cdae.data.pendulum.scene import (
    ANGLE_STEP,
    BACKGROUND,
    BOB_COLOUR,
    BOB_RADIUS,
    GROUND,
    I_VALUES,
    IMAGE_SIZE,
    J_VALUES,
    LIGHT_RANGE,
    LINE_WIDTH,
    MIN_DRAWN_SHADOW,
    MIN_SHADOW,
    N_IMAGES,
    N_TEST,
    NOISE_COLUMNS,
    PENDULUM_RANGE,
    PIVOT,
    ROD_COLOUR,
    ROD_LENGTH,
    SHADOW_COLOUR,
    SHADOW_REACH,
    SUN_COLOUR,
    SUN_HEIGHT,
    SUN_RADIUS,
    SUPERSAMPLE,
    VARIABLES,
    VIEWPORT,
    XLIM,
    YLIM,
    PendulumCounterfactual,
    PendulumSplit,
    add_shadow_noise,
    counterfactual,
    grid,
    ground_projection,
    image_extent,
    label_ranges,
    labels,
    pendulum_labels,
    render,
    render_batch,
    rod_point,
    sample,
    sample_angles,
    shadow_ranges,
    sun_position,
)

__all__ = [
    "ANGLE_STEP", "BACKGROUND", "BOB_COLOUR", "BOB_RADIUS", "FILE_NAME", "GROUND", "IMAGE_SIZE",
    "INFO_JSON", "I_VALUES", "J_VALUES", "LABELS_CSV", "LIGHT_RANGE", "LINE_WIDTH", "MANIFEST",
    "MIN_DRAWN_SHADOW", "MIN_SHADOW", "NOISE_COLUMNS", "N_IMAGES", "N_TEST", "PENDULUM_RANGE",
    "PIVOT", "PendulumCounterfactual", "PendulumDataError", "PendulumSplit", "ROD_COLOUR",
    "ROD_LENGTH", "SHADOW_COLOUR", "SHADOW_REACH", "SPLITS", "SUN_CLIP_TOLERANCE", "SUN_COLOUR",
    "SUN_HEIGHT", "SUN_RADIUS", "SUN_ROWS_BELOW", "SUN_ROWS_MARGIN", "SUPERSAMPLE", "VARIABLES",
    "VIEWPORT", "XLIM", "YLIM", "add_shadow_noise", "counterfactual", "dataset_table",
    "default_folder", "file_name", "grid", "ground_projection", "image_extent", "label_ranges",
    "labels", "load_or_generate", "measure", "parse_file_name", "pendulum_labels", "read_pendulum",
    "render", "render_batch", "rod_point", "sample", "sample_angles", "shadow_ranges",
    "sun_position",
    "verify_dataset", "write_dataset",
]
