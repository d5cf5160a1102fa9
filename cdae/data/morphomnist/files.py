"""Causal Morpho-MNIST on disk: generating a dataset folder in the Deep SCM layout, reading one
(ours or the original Deep SCM set), and the verified cache the notebooks share.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cdae import __version__
from cdae.data import cache
from cdae.data.cache import MANIFEST, write_manifest
from cdae.data.idx import read_idx, write_idx
from cdae.data.mnist import Digits, has_local_split
from cdae.data.morphomnist.scm import (
    SPLIT_PREFIX,
    MorphoSCM,
    _check_workers,
    base_digits,
    load_base_source,
    render_images,
    sample_split_labels,
)
from cdae.data.samples import SAMPLE_SOURCE
from cdae.files import atomic_write_bytes
from cdae.paths import data_dir, smoke_mode

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
ARGS = "args.json"
#: Generation arguments that the cache must match, with their defaults.
CACHE_ARGS = {"seed": 0, "limit": None, "draws_per_digit": 1, "format_version": FORMAT_VERSION}

__all__ = ["ARGS", "FORMAT_VERSION", "MANIFEST", "MorphoMNISTSplit", "default_folder_name",
           "generate_dataset", "load_or_generate", "read_morphomnist", "tutorial_root",
           "verify_manifest", "write_manifest"]


# ============================================================================ writing
def generate_dataset(
    out: str | os.PathLike,
    mnist_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    seed: int = 0,
    draws_per_digit: int = 1,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = True,
) -> Path:
    """Generate Causal Morpho-MNIST (train and t10k) into ``out``; returns ``out``.

    Args:
        out: target folder; replaced as a whole at the end (a crash leaves no partial dataset).
        mnist_dir: folder with MNIST IDX files (default: ``CDAE_MNIST_DIR``, ``data/mnist``).
        limit: at most this many base digits per split (a seeded random subset).
        seed: same seed, byte-identical files. draws_per_digit: images per base digit.
        workers: processes for rendering (None: all cores); does not change the output.
        overwrite: replace a Morpho-MNIST dataset already in ``out`` (else ``FileExistsError``;
            the command line's default, so that ``--overwrite`` is needed, as for Pendulum).
    """
    _check_generation_args(mnist_dir, limit, seed, draws_per_digit, workers)
    out = Path(out)
    cache.check_replaceable(out, "Morpho-MNIST", _dataset_file_names().__contains__,
                            markers=(MANIFEST, ARGS), overwrite=overwrite)
    digits = {split: base_digits(split, mnist_dir) for split in SPLIT_PREFIX}
    with cache.building(out) as tmp:
        counts = {
            split: _generate_split(tmp, split, source, seed, limit, draws_per_digit, workers,
                                   progress)
            for split, source in digits.items()
        }
        cache.write_info(tmp, ARGS, {
            "format_version": FORMAT_VERSION, "cdae_version": __version__, "seed": int(seed),
            "limit": None if limit is None else int(limit), "draws_per_digit": int(draws_per_digit),
            "counts": counts, "sources": {split: d.source for split, d in digits.items()},
            "scm": asdict(MorphoSCM()),
        })
    logger.info("wrote Causal Morpho-MNIST (%s) to %s", counts, out)
    return out


def _generate_split(
    folder: Path, split: str, source: Digits, seed: int, limit: int | None,
    draws_per_digit: int, workers: int | None, progress: bool,
) -> int:
    """Sample, render and write one split into ``folder``; returns its number of images."""
    labels = sample_split_labels(source, split, seed, limit, draws_per_digit)
    images = render_images(
        source.images[labels["base_index"].to_numpy()], labels["thickness"],
        labels["intensity"], workers, progress, desc=f"Morpho-MNIST {split}",
    )
    _write_split(folder, split, images, labels)
    return len(labels)


def _check_generation_args(
    mnist_dir: Any, limit: Any, seed: Any, draws_per_digit: Any, workers: Any
) -> None:
    if mnist_dir is not None and not Path(mnist_dir).is_dir():
        raise ValueError(f"mnist_dir {mnist_dir} is not a folder; pass a folder with MNIST IDX "
                         "files, or leave it out to use CDAE_MNIST_DIR / data/mnist")
    if limit is not None and (not isinstance(limit, int | np.integer) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None (all digits), got {limit!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(draws_per_digit, int | np.integer) or draws_per_digit < 1:
        raise ValueError(f"draws_per_digit must be a positive integer, got {draws_per_digit!r}")
    _check_workers(workers)


def _dataset_file_names() -> set[str]:
    names = {MANIFEST, ARGS}
    for prefix in SPLIT_PREFIX.values():
        names |= {f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz",
                  f"{prefix}-morpho.csv"}
    return names


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    """IDX, gzip with mtime 0 and no file name in the header, so equal data give equal bytes."""
    plain = path.with_suffix("")
    write_idx(plain, array)
    payload = plain.read_bytes()
    plain.unlink()
    atomic_write_bytes(path, gzip.compress(payload, compresslevel=6, mtime=0))


def _write_split(folder: Path, split: str, images: np.ndarray, labels: pd.DataFrame) -> None:
    prefix = SPLIT_PREFIX[split]
    _write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", images.astype(np.uint8))
    _write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", labels["digit"].to_numpy(np.uint8))
    atomic_write_bytes(folder / f"{prefix}-morpho.csv", labels.to_csv(index=False).encode())


def verify_manifest(folder: str | os.PathLike) -> list[str]:
    """Problems with a generated dataset folder (empty list: complete and intact): see
    :func:`cdae.data.cache.verify_manifest`; every file of the layout must be listed."""
    return cache.verify_manifest(folder, required=_dataset_file_names() - {MANIFEST})


# ============================================================================ reading
@dataclass
class MorphoMNISTSplit:
    """One split: ``images`` (N, 28, 28) uint8 and ``labels`` (N rows: thickness, intensity,
    digit, then any extra columns such as base_index, base_source, intensity_noise)."""

    images: np.ndarray
    labels: pd.DataFrame
    root: Path
    split: str

    def __len__(self) -> int:
        return len(self.images)

    def base_images(
        self, mnist_dir: str | os.PathLike | None = None, indices: Any = None
    ) -> np.ndarray:
        """The real digits (M, 28, 28) uint8 that images ``indices`` (all) were made from."""
        missing = {"base_index", "base_source"} - set(self.labels.columns)
        if missing:
            raise ValueError(
                f"{self.root} ({self.split}) has no {sorted(missing)} columns, so its base digits "
                "are unknown; only datasets written by generate_dataset record them"
            )
        rows = self.labels if indices is None else self.labels.iloc[np.asarray(indices)]
        sources = rows["base_source"].to_numpy()
        base_index = rows["base_index"].to_numpy()
        out = np.zeros((len(rows), 28, 28), np.uint8)
        for name in np.unique(sources):
            mask = sources == name
            out[mask] = load_base_source(str(name), mnist_dir).images[base_index[mask]]
        return out


def _split_prefix(split: str) -> str:
    aliases = {"train": "train", "test": "t10k", "t10k": "t10k"}
    if split not in aliases:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    return aliases[split]


def _find_split_files(root: Path, prefix: str) -> dict[str, Path]:
    """Paths of the split's images, labels and CSV; FileNotFoundError naming what is missing."""
    wanted = {"images": f"{prefix}-images-idx3-ubyte", "labels": f"{prefix}-labels-idx1-ubyte",
              "csv": f"{prefix}-morpho.csv"}
    found, missing = {}, []
    for kind, stem in wanted.items():
        options = [stem] if kind == "csv" else [stem + ".gz", stem]
        path = next((root / name for name in options if (root / name).is_file()), None)
        if path is None:
            missing.append(options[0])
        else:
            found[kind] = path
    if missing:
        present = sorted(p.name for p in root.iterdir()) if root.is_dir() else "(folder missing)"
        raise FileNotFoundError(
            f"Morpho-MNIST split {prefix!r} is incomplete in {root}: missing {missing}; the folder "
            f"holds {present}. Generate a dataset with `python -m cdae data morphomnist --out "
            f"{root}`, or point to a folder in the Deep SCM layout."
        )
    return found


def read_morphomnist(root: str | os.PathLike, split: str = "train") -> MorphoMNISTSplit:
    """Read one split from a folder in the Deep SCM layout (ours or the original Deep SCM set)."""
    root = Path(root)
    files = _find_split_files(root, _split_prefix(split))
    images = read_idx(files["images"])
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{files['images']} holds {images.dtype} images of shape "
                         f"{images.shape}; Morpho-MNIST images are uint8 of shape (N, 28, 28)")
    digits = read_idx(files["labels"])
    if digits.shape != (len(images),):
        raise ValueError(f"{files['labels']} holds labels of shape {digits.shape} for "
                         f"{len(images)} images; expected ({len(images)},)")
    labels = _read_labels_csv(files["csv"], digits.astype(np.int64))
    return MorphoMNISTSplit(images, labels, root, "test" if split == "t10k" else split)


def _read_labels_csv(path: Path, digits: np.ndarray) -> pd.DataFrame:
    table = pd.read_csv(path)
    missing = sorted({"index", "thickness", "intensity"} - set(table.columns))
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; a Morpho-MNIST CSV starts with "
                         "index,thickness,intensity")
    if len(table) != len(digits):
        raise ValueError(f"{path} has {len(table)} rows but the IDX files hold {len(digits)} "
                         "images: the files come from different datasets or one is truncated")
    if not np.array_equal(table["index"].to_numpy(), np.arange(len(table))):
        raise ValueError(f"{path}: the index column is not 0..{len(table) - 1} in order")
    if "digit" in table and not np.array_equal(table["digit"].to_numpy(), digits):
        raise ValueError(f"{path}: the digit column disagrees with the labels IDX file")
    table["digit"] = digits
    first = ["thickness", "intensity", "digit"]
    return table[first + [c for c in table.columns if c not in first + ["index"]]]


# ============================================================================ cache
def load_or_generate(root: str | os.PathLike | None = None, **gen_kwargs: Any) -> Path:
    """Folder of a verified Causal Morpho-MNIST, generating it first if needed.

    ``root`` defaults to ``data_dir()/"morphomnist"``, with the generation arguments that differ
    from their defaults in the name (``morphomnist-draws_per_digit4``), so that differently
    generated sets live side by side. A folder whose manifest does not verify (missing or
    corrupted files), or that was generated with other ``seed`` / ``limit`` /
    ``draws_per_digit``, is regenerated, with a warning that says why. ``gen_kwargs`` go to
    :func:`generate_dataset`.
    """
    root = Path(root) if root is not None else data_dir() / default_folder_name(gen_kwargs)

    def problems(folder: Path) -> list[str]:
        return verify_manifest(folder) or _args_mismatch(folder, gen_kwargs)

    return cache.load_or_build(root, "Morpho-MNIST", problems,
                               lambda folder: generate_dataset(folder, **gen_kwargs))


def default_folder_name(gen_kwargs: Mapping[str, Any]) -> str:
    """``morphomnist``, or ``morphomnist-draws_per_digit<k>`` for k > 1 draws per digit (a
    training set of another size that should not replace the tutorial set)."""
    draws = gen_kwargs.get("draws_per_digit", 1)
    return "morphomnist" if draws == 1 else f"morphomnist-draws_per_digit{draws}"


def _args_mismatch(root: Path, gen_kwargs: Mapping[str, Any]) -> list[str]:
    """How the folder's generation arguments differ from those asked for; also whether its test
    split was built on the shipped MNIST sample although the full test set is now on disk."""
    wanted = {**CACHE_ARGS, **{k: v for k, v in gen_kwargs.items() if k in CACHE_ARGS}}
    problems = cache.info_mismatch(root, ARGS, wanted)
    try:
        stored = json.loads((root / ARGS).read_text())
    except (OSError, ValueError):
        return problems
    if (stored.get("sources", {}).get("test") == SAMPLE_SOURCE
            and has_local_split("test", gen_kwargs.get("mnist_dir"))):
        problems.append("its test split was built on the shipped MNIST sample and the full "
                        "MNIST test set is now on disk")
    return problems


def tutorial_root(smoke: bool | None = None) -> Path:
    """The Causal Morpho-MNIST folder every notebook shares, generated on first use.

    Full mode: ``data_dir()/"morphomnist"`` (all base digits). Smoke mode (``smoke_mode()`` by
    default): ``data_dir()/"morphomnist-smoke"`` with 200 base digits per split.
    """
    if smoke_mode() if smoke is None else smoke:
        return load_or_generate(data_dir() / "morphomnist-smoke", limit=200)
    return load_or_generate()
