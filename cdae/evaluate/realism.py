"""Realism: FID and KID in the feature space of a network this project trains itself.

The usual FID/KID use Inception-v3 features. Its weights cannot be downloaded on the offline
machines this project is built on, and Inception features of 28x28 grey digits are a poor fit
anyway, so the features here come from :class:`FeatureNet`: the :class:`ConvTrunk` of an
anti-causal predictor trained on real images (for Morpho-MNIST: digit + thickness + intensity,
multi-task), read at its penultimate layer (128 dims by default). Numbers are therefore
comparable between models scored with the same feature net, not with published Inception FIDs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import linalg

from cdae.evaluate.predictors import AntiCausalPredictor, train_predictor
from cdae.graph import CausalGraph


class FeatureNet:
    """Image -> feature map for FID/KID: ``features(images) -> (N, feature_dim)`` float64.

    Wraps the trained :class:`AntiCausalPredictor` (``.predictor``), whose heads show how well
    the features capture the labels (``predictor.predict``).
    """

    def __init__(self, predictor: AntiCausalPredictor) -> None:
        self.predictor = predictor

    def features(self, images: Any) -> np.ndarray:
        return self.predictor.features(images)

    def save(self, path: str | os.PathLike) -> None:
        self.predictor.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureNet:
        return cls(AntiCausalPredictor.load(path))


def train_feature_net(
    images: Any,
    targets: pd.DataFrame | np.ndarray,
    categorical: Mapping[str, int] | None = None,
    steps: int = 300,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> FeatureNet:
    """Train a multi-task :class:`FeatureNet` on real ``images``.

    ``targets``: a 1-D integer array of class labels (named "label"), or a DataFrame with one
    column per label; ``categorical`` maps its categorical columns to their class counts
    (default: integer-typed columns, with max + 1 classes).
    """
    if isinstance(targets, np.ndarray):
        if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError("an array of targets must be 1-D integer class labels; pass a "
                             "DataFrame for continuous or several labels")
        targets = pd.DataFrame({"label": targets})
    if categorical is None:
        categorical = {c: int(targets[c].max()) + 1 for c in targets.columns
                       if pd.api.types.is_integer_dtype(targets[c])}
    graph = CausalGraph(nodes=list(targets.columns), categorical=categorical)
    return FeatureNet(train_predictor(images, targets, graph, steps=steps, batch_size=batch_size,
                                      seed=seed, progress=progress))


def _check_features(a: np.ndarray, b: np.ndarray, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, d) arrays with the same d, got {a.shape} and "
                         f"{b.shape}; compute both with the same FeatureNet")
    if min(len(a), len(b)) < minimum:
        raise ValueError(f"need at least {minimum} samples per set, got {len(a)} and {len(b)}")
    return a, b


def fid(feats_a: np.ndarray, feats_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a, d), (N_b, d):

        FID = ||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})

    The square root is scipy.linalg.sqrtm; if it is not finite or has a non-negligible
    imaginary part (near-singular covariances, e.g. N < d), eps * I is added to both covariances
    and it is recomputed. The real part is used. Biased upwards for small N: compare FIDs computed
    with the same sample sizes.
    """
    a, b = _check_features(feats_a, feats_b, minimum=2)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all() or np.abs(np.imag(root)).max() > 1e-3 * (1 + np.abs(root).max()):
        warnings.warn("FID: (S_a S_b)^1/2 is ill-conditioned; adding eps*I to the covariances",
                      RuntimeWarning, stacklevel=2)
        offset = eps * np.eye(len(cov_a))
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    trace_root = float(np.real(np.trace(root)))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


class KID(NamedTuple):
    """Kernel inception distance: mean and std of the per-subset unbiased MMD² estimates."""

    mean: float
    std: float


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 for every pair: (n, d), (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid(
    feats_a: np.ndarray,
    feats_b: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> KID:
    """Kernel distance with k(x, y) = (x . y / d + 1)^3, averaged over random subsets of
    m = min(subset_size, N_a, N_b) samples from each set (drawn without replacement):

        MMD²_u = sum_{i != j} k(a_i, a_j) / (m (m-1)) + sum_{i != j} k(b_i, b_j) / (m (m-1))
                 - 2 sum_{i, j} k(a_i, b_j) / m²

    Unbiased, so it is ≈ 0 (and can be slightly negative) for two samples of one distribution.
    """
    a, b = _check_features(feats_a, feats_b, minimum=2)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), \
            _polynomial_kernel(x, y)
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        estimates.append(within - 2.0 * k_xy.mean())
    return KID(float(np.mean(estimates)), float(np.std(estimates)))


def realism_table(
    feature_net: FeatureNet, real: Any, generated: Mapping[str, Any], **kid_kwargs: Any
) -> pd.DataFrame:
    """FID and KID of each generated set against ``real`` images, in ``feature_net``'s space.

    Returns a long DataFrame ``model, metric, value`` with metrics "fid", "kid", "kid_std".
    """
    real_features = feature_net.features(real)
    rows = []
    for name, images in generated.items():
        features = feature_net.features(images)
        kernel = kid(real_features, features, **kid_kwargs)
        rows += [(name, "fid", fid(real_features, features)), (name, "kid", kernel.mean),
                 (name, "kid_std", kernel.std)]
    return pd.DataFrame(rows, columns=["model", "metric", "value"])
