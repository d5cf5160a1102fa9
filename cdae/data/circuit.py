"""Loader for the CausalCircuit dataset (Brehmer, de Haan, Lippe, Cohen, NeurIPS 2022).

A robot arm and a circuit of three lights; four causal variables ``arm, blue, green, red`` with
arm -> blue, arm -> green, arm -> red, blue -> red, green -> red (``CausalGraph.preset
("causal_circuit")``). The data cannot be generated here: the user downloads it from its
publisher and points :func:`circuit_dir` (``CDAE_CIRCUIT_DIR``) or ``root`` at the folder.

Accepted layout (the published one): per split either one ``<split>.npz`` or numbered shards
``<split>-0.npz, <split>-1.npz, ...`` (read in numeric order; the published training set is
``train-0.npz ... train-9.npz``, plus ``val.npz`` and ``test.npz``). Each file holds

* images under one of :data:`IMAGE_KEYS`: PNG/JPEG files, one per element of an array of shape
  (N,) or (N, 2) (pairs before/after an intervention; 512x512 RGB in the published set) of
  fixed-width bytes, or of pickled bytes objects (``allow_pickle=True``), or zero-padded uint8
  buffers (N, L) / (N, 2, L); or already-decoded uint8 arrays (N, H, W, 3) / (N, 2, H, W, 3);
* latents under one of :data:`LATENT_KEYS`: float (N, 4) or (N, 2, 4), columns arm, blue,
  green, red.

Pairs: ``pair="before"`` (default) keeps element 0 of each pair, ``"after"`` element 1, and
``"both"`` keeps both, interleaved (row 2i = before, 2i+1 = after of pair i) with extra label
columns ``pair_index`` and ``pair_element``.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cdae.paths import data_dir

#: Latent columns, in the order stored in the files and used by the graph preset.
CIRCUIT_VARIABLES: tuple[str, ...] = ("arm", "blue", "green", "red")
#: Keys searched, in order, for the images in each ``.npz``.
IMAGE_KEYS: tuple[str, ...] = ("imgs", "images", "image", "img", "x")
#: Keys searched, in order, for the latents in each ``.npz``.
LATENT_KEYS: tuple[str, ...] = ("original_latents", "latents", "labels", "z", "true_latents")
PAIR_CHOICES: tuple[str, ...] = ("before", "after", "both")

_AUTHORS_REPO = "https://github.com/Qualcomm-AI-research/weakly-supervised-causal-representation-learning"


class CircuitNotFoundError(FileNotFoundError):
    """The files of a CausalCircuit split are not where they were looked for."""


class CircuitFormatError(ValueError):
    """A CausalCircuit file does not have the expected keys, shapes or image encoding."""


@dataclass(frozen=True)
class CircuitSplit:
    """One split: ``images`` (N, size, size, 3) uint8 RGB, ``labels`` DataFrame with columns
    ``arm, blue, green, red`` (plus ``pair_index, pair_element`` for ``pair="both"``),
    ``files`` the ``.npz`` files read."""

    images: np.ndarray
    labels: pd.DataFrame
    files: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.images)


def circuit_dir() -> Path:
    """Folder holding the CausalCircuit ``.npz`` files: ``CDAE_CIRCUIT_DIR`` or
    ``<data dir>/causal_circuit``."""
    value = os.environ.get("CDAE_CIRCUIT_DIR")
    return Path(value).expanduser() if value else data_dir() / "causal_circuit"


def split_files(root: str | os.PathLike, split: str) -> list[Path]:
    """The ``.npz`` files of ``split`` in ``root``: ``<split>.npz`` or ``<split>-<k>.npz`` shards
    in numeric order. Raises :class:`CircuitNotFoundError` with download instructions."""
    root = Path(root)
    single = root / f"{split}.npz"
    pattern = re.compile(rf"^{re.escape(split)}-(\d+)\.npz$")
    shards = sorted(
        (p for p in root.glob(f"{split}-*.npz") if pattern.match(p.name)),
        key=lambda p: int(pattern.match(p.name).group(1)),
    )
    if single.exists() and shards:
        raise CircuitFormatError(
            f"{root} holds both {single.name} and shards {[p.name for p in shards]} for split "
            f"{split!r}; keep one of the two layouts so no sample is read twice"
        )
    if single.exists():
        return [single]
    if shards:
        return shards
    raise CircuitNotFoundError(_not_found_message(root, split))


def _not_found_message(root: Path, split: str) -> str:
    return (
        f"CausalCircuit split {split!r} not found: looked for {root / f'{split}.npz'} and "
        f"{root / f'{split}-<k>.npz'} (shards {split}-0.npz, {split}-1.npz, ...).\n"
        "Download the CausalCircuit dataset released with Brehmer et al. 2022, 'Weakly "
        "supervised causal representation learning' (see the paper's data availability "
        f"statement; the README of the authors' repository {_AUTHORS_REPO} links the download "
        f"page) and place train.npz/test.npz (or the train-<k>.npz shards) in {root}.\n"
        "To use another folder, set the environment variable CDAE_CIRCUIT_DIR or pass "
        "root=... (build_dataset('causal_circuit', split, root=...))."
    )


def load_causal_circuit(
    root: str | os.PathLike | None = None,
    split: str = "train",
    size: int | None = 64,
    limit: int | None = None,
    pair: str = "before",
    allow_pickle: bool = False,
) -> CircuitSplit:
    """Read a CausalCircuit split, decoding the images and resizing them to ``size`` x ``size``.

    Args:
        root: folder with the ``.npz`` files; ``None`` means :func:`circuit_dir`.
        split: ``"train"``, ``"val"`` or ``"test"`` (any name with files works).
        size: output side in pixels (bilinear, anti-aliased), ``None`` keeps the stored size.
        limit: read at most this many samples (pairs), for quick looks and tests.
        pair: ``"before"``, ``"after"`` or ``"both"`` when files store pairs (module docstring).
        allow_pickle: also read images stored as pickled object arrays (only for files you
            trust); the published files load without it.
    """
    if pair not in PAIR_CHOICES:
        raise ValueError(f"pair must be one of {PAIR_CHOICES}, got {pair!r}")
    if size is not None and int(size) < 1:
        raise ValueError(f"size must be a positive number of pixels or None, got {size}")
    files = split_files(circuit_dir() if root is None else root, split)
    images, latents = [], []
    remaining = None if limit is None else int(limit)
    for path in files:
        if remaining is not None and remaining <= 0:
            break
        file_images, file_latents = _read_file(path, size, remaining, pair, allow_pickle)
        if len(file_latents) == 0:
            continue
        images.append(file_images)
        latents.append(file_latents)
        remaining = None if remaining is None else remaining - len(file_latents)
    if not images:
        raise CircuitFormatError(f"the files {[str(p) for p in files]} hold no samples")
    if len({block.shape[1:] for block in images}) > 1:
        raise CircuitFormatError(
            f"the files of split {split!r} hold images of different sizes "
            f"{sorted({block.shape[2:4] for block in images})}; pass size=... to resize them"
        )
    return _assemble(np.concatenate(images), np.concatenate(latents), tuple(files), pair)


def _pick_key(keys: list[str], candidates: tuple[str, ...], what: str, path: Path) -> str:
    for key in candidates:
        if key in keys:
            return key
    raise CircuitFormatError(
        f"{path} has no {what} array: looked for keys {list(candidates)}, found {keys}. "
        "Rename the array in the file, or check that this is a CausalCircuit file"
    )


def _read_file(
    path: Path, size: int | None, limit: int | None, pair: str, allow_pickle: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, P, size, size, 3) uint8 and latents (n, P, 4) of one file, P = 1 or 2."""
    try:
        archive = np.load(path, allow_pickle=allow_pickle)
    except (OSError, ValueError) as exc:
        raise CircuitFormatError(f"{path} is not a readable .npz file ({exc})") from exc
    with archive:
        keys = list(archive.keys())
        image_key = _pick_key(keys, IMAGE_KEYS, "image", path)
        latent_key = _pick_key(keys, LATENT_KEYS, "latent", path)
        try:
            raw_images, latents = archive[image_key], np.asarray(archive[latent_key], float)
        except ValueError as exc:  # object arrays with allow_pickle=False
            raise CircuitFormatError(
                f"{path}: {exc}. The images are stored as pickled objects; load with "
                "allow_pickle=True if you trust the file"
            ) from exc
    latents = _latents_as_pairs(latents, path)
    if limit is not None:
        raw_images, latents = raw_images[:limit], latents[:limit]
    decoded = _decode_images(raw_images, len(latents), size, pair, path)
    return decoded, latents[:, _pair_slice(pair, latents.shape[1])]


def _latents_as_pairs(latents: np.ndarray, path: Path) -> np.ndarray:
    """(N, 4) -> (N, 1, 4); (N, 2, 4) unchanged; anything else is an error."""
    if latents.ndim == 2:
        latents = latents[:, None, :]
    if latents.ndim != 3 or latents.shape[1] not in (1, 2) or latents.shape[2] != 4:
        raise CircuitFormatError(
            f"{path}: latents have shape {latents.shape}; expected (N, 4) or (N, 2, 4) with "
            f"columns {list(CIRCUIT_VARIABLES)}"
        )
    if not np.isfinite(latents).all():
        raise CircuitFormatError(f"{path}: latents contain NaN or infinite values")
    return latents


def _pair_slice(pair: str, stored: int) -> slice:
    if stored == 1:
        if pair == "after":
            raise CircuitFormatError("pair='after' needs files that store (before, after) pairs")
        return slice(0, 1)
    return {"before": slice(0, 1), "after": slice(1, 2), "both": slice(0, 2)}[pair]


def _decode_images(
    raw: np.ndarray, n: int, size: int | None, pair: str, path: Path
) -> np.ndarray:
    """(n, P', size, size, 3) uint8 from encoded files (module docstring) or decoded arrays."""
    encoded, item_ndim = _image_layout(raw)
    if raw.ndim == item_ndim + 1:
        raw = raw[:, None]
    if len(raw) != n or raw.ndim != item_ndim + 2 or (not encoded and raw.dtype != np.uint8):
        raise CircuitFormatError(
            f"{path}: images have shape {raw.shape} and dtype {raw.dtype} for {n} latent rows; "
            "expected encoded PNG bytes (N,) / (N, 2) (object or bytes dtype, or zero-padded "
            "uint8 buffers (N, L) / (N, 2, L)), or uint8 (N, H, W, 3) / (N, 2, H, W, 3)"
        )
    raw = raw[:, _pair_slice(pair, raw.shape[1])]
    out = None
    for i in range(raw.shape[0]):
        for k in range(raw.shape[1]):
            image = _decode_one(raw, i, k, size, path) if encoded else _resize(raw[i, k], size)
            if out is None:
                out = np.empty((raw.shape[0], raw.shape[1], *image.shape), np.uint8)
            if image.shape != out.shape[2:]:
                raise CircuitFormatError(
                    f"{path}: image {i} (pair element {k}) is {image.shape}, earlier ones "
                    f"{out.shape[2:]}; pass size=... to resize them all to one size"
                )
            out[i, k] = image
    return out if out is not None else np.zeros((0, raw.shape[1], 1, 1, 3), np.uint8)


def _image_layout(raw: np.ndarray) -> tuple[bool, int]:
    """(whether items are encoded files, number of dimensions of one item)."""
    if raw.dtype == object or raw.dtype.kind == "S":
        return True, 0  # one bytes object per image
    if raw.dtype == np.uint8 and raw.ndim <= 3:
        return True, 1  # one zero-padded byte buffer (L,) per image
    return False, 3  # decoded (H, W, 3)


def _decode_one(raw: np.ndarray, i: int, k: int, size: int | None, path: Path) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(bytes(raw[i, k]))) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError, SyntaxError, TypeError) as exc:
        raise CircuitFormatError(
            f"{path}: image {i} (pair element {k}) is not a decodable PNG/JPEG file ({exc}); "
            "the file is probably corrupted: download it again"
        ) from exc
    return _resize(np.asarray(rgb), size)


def _resize(image: np.ndarray, size: int | None) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8, bilinear with anti-aliasing (PIL)."""
    if size is None or image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def _assemble(
    images: np.ndarray, latents: np.ndarray, files: tuple[Path, ...], pair: str
) -> CircuitSplit:
    """Flatten (n, P, ...) to (n*P, ...) rows, pairs interleaved; build the labels table."""
    n, per = latents.shape[:2]
    labels = pd.DataFrame(latents.reshape(n * per, 4), columns=list(CIRCUIT_VARIABLES))
    if pair == "both":
        labels["pair_index"] = np.repeat(np.arange(n), per)
        labels["pair_element"] = np.tile(np.arange(per), n)
    return CircuitSplit(images.reshape(n * per, *images.shape[2:]), labels, files)
