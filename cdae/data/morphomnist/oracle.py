"""What Morpho-MNIST knows that no benchmark does: the true counterfactual of every generated
image (same base digit, the intervened values, the image's own intensity noise), and how well
images show their labels when measured by morphometry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cdae.data.morphometry import measure_dataset_fidelity
from cdae.data.morphomnist.files import MorphoMNISTSplit
from cdae.data.morphomnist.scm import MorphoSCM, render, render_images


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
    :func:`cdae.data.morphometry.measure_dataset_fidelity`.
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
