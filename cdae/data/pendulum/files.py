"""Pendulum on disk: CausalVAE's file names, writing a dataset folder, reading ours or a
CausalVAE one, and the verified cache (the protocol of :mod:`cdae.data.cache`).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cdae.data import cache
from cdae.data.cache import MANIFEST
from cdae.data.pendulum.scene import (
    ANGLE_STEP,
    IMAGE_SIZE,
    N_IMAGES,
    N_TEST,
    NOISE_COLUMNS,
    VARIABLES,
    PendulumSplit,
    add_shadow_noise,
    grid,
    pendulum_labels,
    render,
)
from cdae.paths import data_dir

SPLITS = ("train", "test")
LABELS_CSV = "labels.csv"
INFO_JSON = "dataset.json"
FILE_NAME = re.compile(r"^a_(-?\d+)_(-?\d+)_(-?\d+)_(-?\d+)\.png$")
#: What a Pendulum dataset folder holds (anything else is someone else's).
FOLDER_ENTRIES = (*SPLITS, LABELS_CSV, INFO_JSON, MANIFEST)


class PendulumDataError(ValueError):
    """A Pendulum folder is malformed: unreadable names, wrong image sizes, mismatched labels."""



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


def dataset_table(seed: int = 0, limit: int | None = None,
                  shadow_noise_sd: float = 0.0) -> pd.DataFrame:
    """The rows :func:`write_dataset` writes: the grid (or a seeded subset of ``limit`` points),
    with ``split`` (test fraction 1,826 / 7,308, seeded) and ``file`` (``<split>/<name>``).

    ``shadow_noise_sd`` > 0 adds exogenous noise N(0, sd²) (scene units, seeded) to both shadows,
    so that they are no longer functions of the angles and do(shadow) has support; the noise
    each scene got is kept in ``shadow_length_noise`` / ``shadow_position_noise``. 0 (default)
    is CausalVAE's noiseless scene.
    """
    if not (np.isfinite(shadow_noise_sd) and shadow_noise_sd >= 0):
        raise ValueError(f"shadow_noise_sd must be a finite number >= 0 (scene units), got "
                         f"{shadow_noise_sd!r}")
    table = grid()
    if shadow_noise_sd > 0:
        draws = np.random.default_rng([seed, 1]).normal(0.0, shadow_noise_sd, (len(table), 2))
        noisy = add_shadow_noise(table, {"shadow_length": draws[:, 0],
                                         "shadow_position": draws[:, 1]})
        for name, column in NOISE_COLUMNS.items():
            table[column] = noisy[name] - table[name]  # the noise actually drawn
            table[name] = noisy[name]
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


def write_dataset(out: str | os.PathLike, seed: int = 0, limit: int | None = None,
                  overwrite: bool = False, progress: bool = True,
                  shadow_noise_sd: float = 0.0) -> Path:
    """Render the grid into ``out`` and return it: ``train/`` and ``test/`` PNGs with CausalVAE
    names, ``labels.csv`` (exact labels, split, file), ``dataset.json`` and ``MANIFEST.sha256``.
    ``shadow_noise_sd``: exogenous shadow noise (see :func:`dataset_table`).

    Everything is written to a temporary sibling folder that is renamed onto ``out`` at the end,
    so an interrupted run leaves no half-written dataset. ``limit`` renders a seeded subset.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    cache.check_replaceable(out, "Pendulum", FOLDER_ENTRIES.__contains__,
                            markers=(MANIFEST, LABELS_CSV, INFO_JSON), overwrite=overwrite)
    table = dataset_table(seed, limit, shadow_noise_sd)
    with cache.building(out) as tmp:
        for split in SPLITS:
            (tmp / split).mkdir()
        rows = table[["file", *VARIABLES]].itertuples(index=False)
        for file, theta, phi, length, position in tqdm(rows, total=len(table), desc="pendulum",
                                                       disable=not progress):
            image = render(theta, phi, shadow_length=length, shadow_position=position)
            (tmp / file).write_bytes(_png_bytes(image))
        table.to_csv(tmp / LABELS_CSV, index=False)
        cache.write_info(tmp, INFO_JSON, {
            "dataset": "pendulum", "format": 1, "seed": seed, "limit": limit,
            **({"shadow_noise_sd": float(shadow_noise_sd)} if shadow_noise_sd else {}),
            "n_train": int((table.split == "train").sum()),
            "n_test": int((table.split == "test").sum()),
            "units": {"angles": "degrees", "shadow": "scene units (x axis 0-20)"}})
    return out


def verify_dataset(root: str | os.PathLike) -> list[str]:
    """Problems found by checking ``root`` against its ``MANIFEST.sha256`` (empty list: intact).

    Reports a missing or malformed manifest, missing files, files whose sha256 differs, and PNGs
    under ``train/`` or ``test/`` that the manifest does not list.
    """
    return cache.verify_manifest(root, watched=[f"{split}/*.png" for split in SPLITS])


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
def default_folder(shadow_noise_sd: float = 0.0) -> Path:
    """``data_dir()/"pendulum"``, or ``pendulum-shadow_noise<sd>`` for noisy shadows."""
    name = "pendulum" if not shadow_noise_sd else f"pendulum-shadow_noise{shadow_noise_sd:g}"
    return data_dir() / name


def load_or_generate(root: str | os.PathLike | None = None, seed: int = 0,
                     limit: int | None = None, progress: bool = True,
                     shadow_noise_sd: float = 0.0) -> Path:
    """Folder of a verified Pendulum dataset, rendering it first when absent.

    Default ``root``: :func:`default_folder`. A cache that fails its manifest (missing or
    changed files) or was made with another seed/limit/noise is regenerated with a warning.
    """
    root = Path(root) if root is not None else default_folder(shadow_noise_sd)
    # noiseless folders record no noise (their files predate the option)
    expected = {"seed": seed, "limit": limit,
                "shadow_noise_sd": float(shadow_noise_sd) if shadow_noise_sd else None}

    def problems(folder: Path) -> list[str]:
        return verify_dataset(folder) or cache.info_mismatch(folder, INFO_JSON, expected)

    return cache.load_or_build(
        root, "Pendulum", problems,
        lambda folder: write_dataset(folder, seed, limit, overwrite=True, progress=progress,
                                     shadow_noise_sd=shadow_noise_sd))
