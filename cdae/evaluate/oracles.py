"""Dataset oracles: the ground truth only a synthetic dataset has, behind one interface.

An :class:`Oracle` describes a dataset's *test split* and offers

* ``measure(images)``: the variables read off images by a fixed, non-learned procedure
  (Morpho-MNIST: morphometry; Pendulum: the pixel measurements of the renderer's scene);
* ``counterfactuals(indices, do)``: the true counterfactual labels of test images ``indices``
  under ``do`` (the targets of effectiveness) and, where the generator can make them, the true
  counterfactual images (Morpho-MNIST: same base digit re-rendered with the image's own noise;
  Pendulum: the scene re-rendered).

Images go in and come out in the storage layout of :mod:`cdae.data.images` (uint8, (N, H, W)
or (N, H, W, C)). Oracles are registered by dataset name, so a new synthetic dataset is a call
to :func:`register_oracle`, not an edit of the evaluation code::

    register_oracle("mine", lambda root, options: MyOracle(...))
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TrueCounterfactuals:
    """``labels``: one row per image, every variable in natural units (the values the true
    counterfactual has); ``images``: uint8 storage layout, or None where the generator cannot
    make them (e.g. do(digit): MNIST has no other digit by the same writer)."""

    labels: pd.DataFrame
    images: np.ndarray | None


class Oracle(ABC):
    """Ground truth of one dataset's test split; see the module docstring."""

    #: Variables :meth:`measure` reads, natural units.
    measured: ClassVar[tuple[str, ...]] = ()
    #: Default values of the "fixed" protocol, per variable (others: test quantiles).
    fixed: ClassVar[dict[str, tuple[float, ...]]] = {}

    @abstractmethod
    def measure(self, images: np.ndarray) -> pd.DataFrame:
        """uint8 images (N, H, W[, C]) -> DataFrame with :attr:`measured` columns (NaN where
        an image cannot be measured, e.g. a blank one)."""

    @abstractmethod
    def counterfactuals(self, indices: Any, do: Mapping[str, Any]) -> TrueCounterfactuals:
        """True counterfactuals of test images ``indices`` (M,) under ``do`` (scalars or (M,)
        arrays per variable, natural units)."""

    def off_joint(self, labels: pd.DataFrame) -> np.ndarray | None:
        """(N,) how far each state (one row of natural-unit labels) lies from the training
        joint, in noise sds of the dataset's own mechanisms (the largest over its effects):
        0 on the mechanism, ``inf`` where the training data has no support at all (a
        deterministic effect set to another value). None: the dataset does not say."""
        return None


def _per_row(do: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    return {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()
            for k, v in do.items()}


@dataclass
class MorphoOracle(Oracle):
    """Causal Morpho-MNIST: morphometry (:func:`cdae.data.morphometry.measure`) and the generator's
    SCM and renderer (:mod:`cdae.data.morphomnist`). ``split`` is the test split; true images
    need its ``base_index``/``base_source`` columns (our generated sets, not the Deep SCM one)."""

    split: Any  # cdae.data.morphomnist.MorphoMNISTSplit
    mnist_dir: str | os.PathLike | None = None
    measured: ClassVar[tuple[str, ...]] = ("thickness", "intensity")
    fixed: ClassVar[dict[str, tuple[float, ...]]] = {
        "thickness": (1.5, 2.5, 3.5, 4.5), "intensity": (80.0, 160.0, 240.0),
        "digit": tuple(float(d) for d in range(10)),
    }

    @property
    def has_true_images(self) -> bool:
        return {"base_index", "base_source"} <= set(self.split.labels.columns)

    def measure(self, images: np.ndarray) -> pd.DataFrame:
        from cdae.data.morphometry import measure

        grey = np.asarray(images)
        grey = grey[..., 0] if grey.ndim == 4 else grey  # (N, H, W, 1) -> (N, H, W)
        return measure(grey)[list(self.measured)]

    def off_joint(self, labels: pd.DataFrame) -> np.ndarray:
        """|u_i| / sd(u_i): the noise the intensity mechanism would need to produce
        (thickness, intensity), |logit((i − 64) / 191) − 2 (t − 2.5)| / 0.5 (inf outside
        64–255)."""
        from cdae.data.morphomnist import MorphoSCM

        scm = MorphoSCM()
        t = labels["thickness"].to_numpy(dtype=np.float64)
        i = labels["intensity"].to_numpy(dtype=np.float64)
        fraction = (i - scm.intensity_floor) / scm.intensity_span
        inside = (fraction > 0) & (fraction < 1)
        noise = np.full(len(t), np.inf)
        noise[inside] = scm.abduct(t[inside], i[inside])[1]
        return np.abs(noise) / scm.intensity_noise_sd

    def counterfactuals(self, indices: Any, do: Mapping[str, Any]) -> TrueCounterfactuals:
        """do(thickness): intensity recomputed with the image's own noise u_i; do(intensity):
        thickness kept; do(digit): labels only (thickness and intensity do not depend on it)."""
        from cdae.data.morphomnist import MorphoSCM, render_images

        indices = np.asarray(indices, dtype=np.int64)
        rows = self.split.labels.iloc[indices]
        values = _per_row(do, len(rows))
        labels = rows[["thickness", "intensity", "digit"]].reset_index(drop=True)
        if "digit" in values:
            labels["digit"] = values.pop("digit").astype(np.int64)
        scm = MorphoSCM()
        noise = (rows["intensity_noise"].to_numpy() if "intensity_noise" in rows
                 else scm.abduct(rows["thickness"], rows["intensity"])[1])
        new = scm.counterfactual(rows["thickness"].to_numpy(), noise, values)
        labels["thickness"], labels["intensity"] = new["thickness"], new["intensity"]
        if "digit" in do or not self.has_true_images:
            return TrueCounterfactuals(labels, None)
        bases = self.split.base_images(self.mnist_dir, indices=indices)
        images = render_images(bases, new["thickness"], new["intensity"], workers=1,
                               progress=False)
        return TrueCounterfactuals(labels, images)


@dataclass
class PendulumOracle(Oracle):
    """Pendulum: the pixel measurements of :func:`cdae.data.pendulum.measure` and
    re-rendering (:func:`cdae.data.pendulum.counterfactual`, with each scene's own shadow noise
    when the dataset has some: abduction is exact either way). ``labels``: the test split's
    labels (angles in degrees); ``shadow_noise_sd``: the dataset's exogenous shadow noise (0 in
    CausalVAE's scenes)."""

    labels: pd.DataFrame
    shadow_noise_sd: float = 0.0
    measured: ClassVar[tuple[str, ...]] = ("pendulum_angle", "light_angle", "shadow_length",
                                           "shadow_position")

    def measure(self, images: np.ndarray) -> pd.DataFrame:
        from cdae.data.pendulum import measure

        return measure(np.asarray(images))[list(self.measured)]

    #: A shadow this far (scene units) from the geometry of its angles has no support.
    SHADOW_TOLERANCE: ClassVar[float] = 1e-6

    def off_joint(self, labels: pd.DataFrame) -> np.ndarray:
        """How far the shadows lie from the geometry of the two angles, in sds of the shadow
        noise. Without noise (CausalVAE's scenes) the shadows are exact functions of the angles:
        0 where they match, inf (no support) elsewhere."""
        from cdae.data.pendulum import pendulum_labels

        geometry = pendulum_labels(labels["pendulum_angle"].to_numpy(dtype=np.float64),
                                   labels["light_angle"].to_numpy(dtype=np.float64),
                                   check_range=False)
        residual = np.max([np.abs(labels[k].to_numpy(dtype=np.float64) - geometry[k])
                           for k in ("shadow_length", "shadow_position")], axis=0)
        if self.shadow_noise_sd > 0:
            return residual / self.shadow_noise_sd
        return np.where(residual <= self.SHADOW_TOLERANCE, 0.0, np.inf)

    def counterfactuals(self, indices: Any, do: Mapping[str, Any]) -> TrueCounterfactuals:
        from cdae.data.pendulum import counterfactual
        from cdae.data.pendulum.scene import NOISE_COLUMNS, shadow_ranges

        rows = self.labels.iloc[np.asarray(indices, dtype=np.int64)]
        noise = {name: rows[column].to_numpy() for name, column in NOISE_COLUMNS.items()
                 if column in rows}
        out = counterfactual(rows["pendulum_angle"].to_numpy(), rows["light_angle"].to_numpy(),
                             _per_row(do, len(rows)), shadow_noise=noise,
                             shadow_range=shadow_ranges(self.shadow_noise_sd))
        return TrueCounterfactuals(out.labels[list(self.measured)].reset_index(drop=True),
                                   out.images)


# ---------------------------------------------------------------------------- registry
#: ``factory(root, options) -> Oracle``: ``root`` the data folder (None: the dataset's default)
#: and ``options`` the dataset options of the model's config (``build_dataset`` keywords).
OracleFactory = Callable[[Path | None, Mapping[str, Any]], Oracle]
ORACLES: dict[str, OracleFactory] = {}


def register_oracle(name: str, factory: OracleFactory) -> OracleFactory:
    """Register the oracle of dataset ``name`` (replacing any earlier one); returns it."""
    ORACLES[name] = factory
    return factory


def oracle_for(name: str, root: str | os.PathLike | None = None,
               options: Mapping[str, Any] | None = None) -> Oracle | None:
    """The oracle of dataset ``name``'s test split, or None if the dataset has none."""
    factory = ORACLES.get(name)
    if factory is None:
        return None
    return factory(None if root is None else Path(root), dict(options or {}))


def _morphomnist(root: Path | None, options: Mapping[str, Any]) -> Oracle:
    from cdae.data.morphomnist import load_or_generate, read_morphomnist

    folder = root if root is not None else load_or_generate(**options.get("generate_kwargs", {}))
    return MorphoOracle(split=read_morphomnist(folder, "test"))


def _deepscm(root: Path | None, options: Mapping[str, Any]) -> Oracle:
    from cdae.data.morphomnist import read_morphomnist
    from cdae.paths import deepscm_dir

    return MorphoOracle(split=read_morphomnist(root or deepscm_dir(), "test"))


def _pendulum(root: Path | None, options: Mapping[str, Any]) -> Oracle:
    from cdae.data import pendulum

    folder = root if root is not None else pendulum.load_or_generate(
        **options.get("generate_kwargs", {}))
    try:
        info = json.loads((Path(folder) / pendulum.INFO_JSON).read_text())
    except (OSError, ValueError):
        info = {}  # a CausalVAE folder: noiseless
    return PendulumOracle(labels=pendulum.read_pendulum(folder, "test").labels,
                          shadow_noise_sd=float(info.get("shadow_noise_sd") or 0.0))


register_oracle("morphomnist", _morphomnist)
register_oracle("deepscm_morphomnist", _deepscm)
register_oracle("pendulum", _pendulum)
