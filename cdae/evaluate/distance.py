"""How far a requested counterfactual lies from the training joint, and errors binned by it.

A do() on an effect, or on a cause whose effect is kept, asks for a combination of values that
the training data shows rarely or never (a thin Morpho-MNIST digit made bright). The dataset's
oracle says how rare (:meth:`cdae.evaluate.oracles.Oracle.off_joint`): k = how many noise sds
the target state lies from the dataset's own mechanisms. Every error is then reported in bins
of k, so a model that only works near the joint looks like one.
"""

from __future__ import annotations

import numpy as np

#: Upper edges of the bins of k (noise sds); a last bin holds k above the last edge, and
#: ``inf`` (no support at all) has its own bin.
EDGES = (1.0, 2.0, 3.0, 5.0)
NO_SUPPORT = "no support"


def bin_labels(edges: tuple[float, ...] = EDGES) -> list[str]:
    """The bins' names in order: "k < 1", "1 ≤ k < 2", ..., "k ≥ 5", "no support"."""
    inner = [f"{lo:g} ≤ k < {hi:g}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return [f"k < {edges[0]:g}", *inner, f"k ≥ {edges[-1]:g}", NO_SUPPORT]


def distance_bins(k: np.ndarray, edges: tuple[float, ...] = EDGES) -> np.ndarray:
    """(N,) k -> (N,) bin names of :func:`bin_labels` (NaN k counts as no support)."""
    k = np.asarray(k, dtype=np.float64)
    labels = np.asarray(bin_labels(edges), dtype=object)
    index = np.searchsorted(np.asarray(edges), k, side="right")
    index = np.where(np.isfinite(k), index, len(labels) - 1)
    return labels[index]
