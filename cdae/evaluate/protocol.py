"""Intervention-value protocols: which value each test image's counterfactual is asked for.

Each protocol returns one value per evaluated image (an array aligned with ``indices``, the
images' positions in the test set), in natural units; ``population`` is the test set's values
of the intervened variable (all N of them).

* ``"fixed"`` (:func:`fixed_values`): user-given values, cycled over the images, e.g.
  thickness in {1.5, 2.5, 3.5, 4.5} px, intensity in {80, 160, 240}, digit in 0..9.
* ``"benchmark"`` (:func:`benchmark_values`): the protocol of Melistas et al., *Benchmarking
  Counterfactual Image Generation* (NeurIPS 2024), as their released code does it, so that every
  counterfactual asks for a real change. A continuous variable's range [min, max] over the test
  set is cut into ``n_bins`` equal-width bins (9 in their code); the mean of the test values in
  each bin is a cut point, and the cut points split the line into intervals. The value is drawn
  uniformly from the distinct test values lying in a different interval than the image's own
  value. A categorical variable: any other class, uniformly over the distinct classes of the test
  set (not weighted by their frequency).
* ``"random"`` (:func:`random_values`): the value of a random *other* test image (it may
  equal the image's own value, e.g. the same digit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PROTOCOLS = ("benchmark", "random", "fixed")
#: Equal-width bins of the "benchmark" protocol (9, as in the benchmark's code).
DEFAULT_BINS = 9


def _check(population: Any, indices: Any) -> tuple[np.ndarray, np.ndarray]:
    population = np.asarray(population, dtype=np.float64).reshape(-1)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(population) < 2 or not np.isfinite(population).all():
        raise ValueError(f"population must hold at least 2 finite test-set values, got "
                         f"{len(population)} (non-finite: {int((~np.isfinite(population)).sum())})")
    if len(indices) and (indices.min() < 0 or indices.max() >= len(population)):
        raise ValueError(f"indices must be positions in the test set [0, {len(population)}), "
                         f"got {indices.min()}..{indices.max()}")
    return population, indices


def fixed_values(values: Sequence[float], n: int) -> np.ndarray:
    """(n,) values: ``values`` repeated in order (image i gets values[i % len(values)])."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"fixed protocol needs at least one finite value, got {values!r}")
    return np.resize(array, int(n))


def benchmark_cuts(population: Any, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """(k,) increasing cut points, k <= n_bins: the mean of the population's values in each of
    ``n_bins`` equal-width bins of [min, max] (the last bin closed; empty bins give no cut)."""
    if int(n_bins) != n_bins or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    population = np.asarray(population, dtype=np.float64).reshape(-1)
    edges = np.linspace(population.min(), population.max(), int(n_bins) + 1)
    which = np.clip(np.searchsorted(edges, population, side="right") - 1, 0, int(n_bins) - 1)
    return np.array([population[which == b].mean() for b in range(int(n_bins))
                     if (which == b).any()])


def benchmark_values(population: Any, indices: Any, n_bins: int = DEFAULT_BINS,
                     categorical: bool = False, seed: int = 0) -> np.ndarray:
    """(len(indices),) values drawn uniformly from the distinct test values outside each
    image's interval (module docstring).

    interval(v) = number of cut points (:func:`benchmark_cuts`) <= v; for a categorical
    variable interval(v) = v. Image i gets a uniform draw from the distinct values
    {population[j] : interval(population[j]) != interval(population[indices[i]])}, seeded by
    ``seed``.
    """
    population, indices = _check(population, indices)
    if categorical:
        intervals = population.astype(np.int64)
    else:
        intervals = np.searchsorted(benchmark_cuts(population, n_bins), population, side="right")
    if np.unique(intervals).size < 2:
        raise ValueError("every test value falls in one bin, so no different-bin value exists; "
                         "the variable is (nearly) constant in the test set")
    rng = np.random.default_rng(seed)
    out = np.empty(len(indices))
    own = intervals[indices]
    for b in np.unique(own):
        mask = own == b
        out[mask] = rng.choice(np.unique(population[intervals != b]), size=int(mask.sum()))
    return out


def random_values(population: Any, indices: Any, seed: int = 0) -> np.ndarray:
    """(len(indices),) values of a uniformly drawn other test image: j != indices[i]."""
    population, indices = _check(population, indices)
    j = np.random.default_rng(seed).integers(len(population) - 1, size=len(indices))
    j = j + (j >= indices)  # skip the image itself: uniform over the N - 1 others
    return population[j]


def protocol_values(protocol: str | Mapping[str, Sequence[float]], name: str, population: Any,
                    indices: Any, categorical: bool = False, n_bins: int = DEFAULT_BINS,
                    seed: int = 0, fixed: Sequence[float] | None = None) -> np.ndarray:
    """Values for intervening on ``name`` under ``protocol``.

    ``protocol``: "benchmark", "random", "fixed" (values from ``fixed``, else the 10/30/50/70/90 %
    test quantiles, or every class for a categorical variable), or a mapping ``{name: values}``
    (fixed values per variable; variables it lacks fall back as for "fixed").
    """
    if isinstance(protocol, Mapping):
        fixed = protocol.get(name, fixed)
        protocol = "fixed"
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS} or a mapping "
                         "{variable: [values]} of fixed values")
    n = len(np.asarray(indices).reshape(-1))
    if protocol == "benchmark":
        return benchmark_values(population, indices, n_bins, categorical, seed)
    if protocol == "random":
        return random_values(population, indices, seed)
    if fixed is None:
        population = np.asarray(population, dtype=np.float64)
        fixed = (np.unique(population) if categorical
                 else np.quantile(population, [0.1, 0.3, 0.5, 0.7, 0.9]))
    return fixed_values(fixed, n)
