"""What a counterfactual image shows, read off it: the dataset's oracle where one exists,
otherwise the anti-causal predictors.

A :class:`Reader` turns model-layout images (B, C, H, W) in [-1, 1] into a DataFrame of natural
unit values, one column per variable it can read (an oracle may read only some variables: the
Morpho-MNIST morphometry reads thickness and intensity, not the digit).

    >>> reader = default_reader("morphomnist", root)     # morphometry
    >>> reader(images)                                   # DataFrame: thickness, intensity
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from torch import Tensor


@dataclass(frozen=True)
class Reader:
    """``read(images (B, C, H, W) in [-1, 1]) -> DataFrame`` (B rows, natural units), named
    for display (e.g. ``"oracle (morphometry)"``)."""

    name: str
    read: Callable[[Tensor], pd.DataFrame]

    def __call__(self, images: Tensor) -> pd.DataFrame:
        return self.read(images)


def oracle_reader(oracle: object, name: str = "oracle") -> Reader:
    """A :class:`Reader` from a :class:`cdae.evaluate.Oracle` (which reads uint8 storage images)."""
    from cdae.evaluate.tables import to_storage

    return Reader(name, lambda images: oracle.measure(to_storage(images.detach().cpu())))


def predictor_reader(predictor: object, name: str = "predictor") -> Reader:
    """A :class:`Reader` from an :class:`cdae.evaluate.AntiCausalPredictor`."""
    return Reader(name, lambda images: predictor.predict(images.detach().cpu()))


def default_reader(dataset_name: str, data_root: str | os.PathLike | None = None,
                   progress: bool = False) -> Reader:
    """The oracle of ``dataset_name`` (see :func:`cdae.evaluate.oracle_for`) or, for a dataset
    without one, its anti-causal predictor (trained on the training split once, then cached)."""
    from cdae.evaluate import load_or_train_evaluators, oracle_for

    oracle = oracle_for(dataset_name, data_root)
    if oracle is not None:
        return oracle_reader(oracle)
    predictor, _ = load_or_train_evaluators(dataset_name, data_root, progress=progress)
    return predictor_reader(predictor)
