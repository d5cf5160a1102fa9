"""Where the tests find real data that a clone does not hold, and the skip markers of the tests
that need it. A user's clone has neither set: those tests skip with a message saying how to get
the files; CI (``.ci/run``) points both variables at its offline copies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cdae.paths import deepscm_dir

MNIST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEEPSCM_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "t10k-morpho.csv")


def full_mnist_dir() -> Path | None:
    """``CDAE_MNIST_DIR`` when it holds the full MNIST test split (gzipped or not), else None."""
    value = os.environ.get("CDAE_MNIST_DIR")
    if not value:
        return None
    folder = Path(value)
    found = all((folder / stem).is_file() or (folder / f"{stem}.gz").is_file()
                for stem in MNIST_FILES)
    return folder if found else None


def deepscm_folder() -> Path | None:
    """The Deep SCM Morpho-MNIST test files (``CDAE_DEEPSCM_DIR``), or None if absent."""
    folder = deepscm_dir()
    return folder if all((folder / name).is_file() for name in DEEPSCM_FILES) else None


MNIST_REASON = ("needs the full MNIST test set: set CDAE_MNIST_DIR to a folder holding "
                "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (`python -m cdae data "
                "mnist` downloads them; CI uses ../shared/data/mnist)")
DEEPSCM_REASON = ("needs the Deep SCM Morpho-MNIST test set: set CDAE_DEEPSCM_DIR to a folder "
                  "holding t10k-morpho.csv and its IDX files (`python -m cdae data deepscm` "
                  "downloads them; CI uses ../shared/data/deepscm-morphomnist)")

needs_full_mnist = pytest.mark.skipif(full_mnist_dir() is None, reason=MNIST_REASON)
needs_deepscm = pytest.mark.skipif(deepscm_folder() is None, reason=DEEPSCM_REASON)
