"""Counterfactual metrics: ground-truth error, effectiveness, composition, reversibility.

Every function here accepts images in either convention of :mod:`cdae.data.images`: ``uint8``
on 0-255 in the storage layout (N, H, W) / (N, H, W, C), or float in [-1, 1] in the model layout
(N, C, H, W). Pixel errors are reported on the 0-255 scale (:func:`~cdae.data.images.to_pixels`:
a float image becomes (x + 1) * 127.5, clipped to [0, 255], as it would be when saved).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cdae.data.images import to_pixels

ImageFn = Callable[[Any], Any]


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes {a.shape} and {b.shape} differ (after converting to "
                         "(N, C, H, W)); pass the same images in the same layout")


def counterfactual_error(cf: Any, true_cf: Any) -> dict[str, float]:
    """Error of counterfactuals against the true ones, on the 0-255 scale, mean over all pixels:
    l1 = mean |cf - true_cf|, mse = mean (cf - true_cf)²."""
    a, b = to_pixels(cf), to_pixels(true_cf)
    _same_shape(a, b, "counterfactual_error")
    diff = a - b
    return {"l1": float(np.abs(diff).mean()), "mse": float((diff**2).mean())}


def effectiveness_table(
    measured: pd.DataFrame,
    targets: pd.DataFrame,
    intervened: str | Sequence[str],
    categorical: Iterable[str] = (),
) -> pd.DataFrame:
    """How well counterfactuals show their target values, per intervened and measured variable.

    Args:
        measured: values read from the counterfactual images (anti-causal predictor outputs or
            oracle measurements such as morphometry), natural units, one row per image.
        targets: the values each counterfactual should show, natural units, same rows: the
            do-value for the intervened variable, the values its descendants take under the
            true SCM, the factual values for the others.
        intervened: the intervened variable, for all rows or one per row.
        categorical: names of categorical variables (e.g. ``graph.categorical``).

    Returns:
        Long DataFrame ``intervened, variable, metric, value, n`` for every variable in both
        frames: metric "mae" = mean |measured - target| (continuous) or "accuracy" =
        mean(measured == target) (categorical), over the n rows with that intervention.
    """
    if len(measured) != len(targets):
        raise ValueError(f"measured has {len(measured)} rows but targets has {len(targets)}; "
                         "they must describe the same counterfactuals in the same order")
    variables = [name for name in targets.columns if name in measured.columns]
    if not variables:
        raise ValueError(f"measured {list(measured.columns)} and targets "
                         f"{list(targets.columns)} share no column")
    which = np.array([intervened] * len(targets) if isinstance(intervened, str) else intervened)
    if which.shape != (len(targets),):
        raise ValueError(f"intervened must be one name or one name per row ({len(targets)}), "
                         f"got {which.shape[0]} names")
    categorical = set(categorical)
    rows = []
    for name in pd.unique(which):
        mask = which == name
        for var in variables:
            m = measured[var].to_numpy()[mask]
            t = targets[var].to_numpy()[mask]
            if var in categorical:
                rows.append((name, var, "accuracy", float(np.mean(m == t)), int(mask.sum())))
            else:
                mae = float(np.mean(np.abs(m.astype(float) - t.astype(float))))
                rows.append((name, var, "mae", mae, int(mask.sum())))
    return pd.DataFrame(rows, columns=["intervened", "variable", "metric", "value", "n"])


def composition(apply_null: ImageFn, images: Any, cycles: Sequence[int] = (1, 10)) -> pd.DataFrame:
    """Null-intervention drift: x_k = apply_null(x_{k-1}), x_0 = images.

    Returns a long DataFrame ``cycles, metric, value`` with metric "l1" = mean |x_k - x_0| on
    0-255 for every k in ``cycles`` (0 for a perfect model).
    """
    if not cycles or min(cycles) < 1:
        raise ValueError(f"cycles must be positive counts of null interventions, got {cycles}")
    reference, current, rows = to_pixels(images), images, []
    for k in range(1, max(cycles) + 1):
        current = apply_null(current)
        if k in cycles:
            pixels = to_pixels(current)
            _same_shape(pixels, reference, f"composition after {k} cycles")
            rows.append((k, "l1", float(np.abs(pixels - reference).mean())))
    return pd.DataFrame(rows, columns=["cycles", "metric", "value"])


def reversibility(apply_do: ImageFn, apply_undo: ImageFn, images: Any) -> float:
    """mean |apply_undo(apply_do(x)) - x| on 0-255: intervene, then set the variable back to its
    factual value (``apply_undo`` closes over those values). 0 for a perfect model."""
    restored, reference = to_pixels(apply_undo(apply_do(images))), to_pixels(images)
    _same_shape(restored, reference, "reversibility")
    return float(np.abs(restored - reference).mean())


def format_table(
    df: pd.DataFrame,
    rows: str | Sequence[str] = "intervened",
    columns: str | Sequence[str] = ("variable", "metric"),
    values: str = "value",
    decimals: int = 3,
) -> pd.DataFrame:
    """Pivot a long metrics table into a rounded wide one for display, e.g. the effectiveness
    table as intervened x (variable, metric)."""
    wide = df.pivot_table(index=rows, columns=list(np.atleast_1d(columns)), values=values,
                          sort=False)
    return wide.round(decimals)
