"""The Deep SCM Morpho-MNIST files (Pawlowski, Castro & Glocker, NeurIPS 2020; MIT licence):
an md5-checked, atomic download into ``CDAE_DEEPSCM_DIR`` (``python -m cdae data deepscm``).

The files live in the Deep SCM repository (``assets/data/morphomnist/``); the counterfactual
benchmark of Melistas et al. (NeurIPS 2024) holds an identical copy, used as the second mirror.
Every file is checked by md5, except the training images, which the public repositories hold
only as a git object: that file is checked by its git object id (sha1 of the blob), the
checksum the repository itself guarantees.
"""

from __future__ import annotations

import os
from pathlib import Path

from cdae.files import checksum, download_verified
from cdae.paths import deepscm_dir

MIRRORS: tuple[str, ...] = (
    "https://raw.githubusercontent.com/biomedia-mira/deepscm/master/assets/data/morphomnist/",
    "https://raw.githubusercontent.com/gulnazaki/counterfactual-benchmark/main/"
    "counterfactual_benchmark/datasets/morphomnist/data/",
)

#: file name -> (checksum algorithm, expected hex digest)
CHECKSUMS: dict[str, tuple[str, str]] = {
    "args.txt": ("md5", "45557dfecbcb7da3580998bdb315945d"),
    "t10k-images-idx3-ubyte.gz": ("md5", "4ca8b1537d32e83abbd0f455c1579d57"),
    "t10k-labels-idx1-ubyte.gz": ("md5", "311f6fee2bd0b2a7b177af75d62329f7"),
    "t10k-morpho.csv": ("md5", "84e1aed36c8b366cb5779f50f3289671"),
    "train-images-idx3-ubyte.gz": ("git-blob", "102a2c87712318fc5274da839ec1e153fc2e63d0"),
    "train-labels-idx1-ubyte.gz": ("md5", "7f52a022cdc24efeb4461005f0f3af8b"),
    "train-morpho.csv": ("md5", "da1db3e1cf3bc1ae10bb494a5a4021df"),
}
SPLIT_FILES = {
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "t10k-morpho.csv"),
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "train-morpho.csv"),
}


def download_deepscm(root: str | os.PathLike | None = None,
                     splits: tuple[str, ...] = ("train", "test"),
                     mirrors: tuple[str, ...] = MIRRORS) -> list[Path]:
    """Download the Deep SCM files of ``splits`` (plus ``args.txt``) into ``root``
    (default :func:`cdae.paths.deepscm_dir`); returns their paths.

    Files already present with the right checksum are kept; each other file is tried on every
    mirror in turn and written atomically, so an interrupted or wrong download leaves nothing.
    """
    unknown = sorted(set(splits) - set(SPLIT_FILES))
    if unknown:
        raise ValueError(f"unknown splits {unknown}; the Deep SCM set has {sorted(SPLIT_FILES)}")
    root = Path(root) if root is not None else deepscm_dir()
    names = ["args.txt"] + [name for split in splits for name in SPLIT_FILES[split]]
    paths = []
    for name in names:
        algorithm, expected = CHECKSUMS[name]
        target = root / name
        if not (target.exists() and checksum(target, algorithm) == expected):
            download_verified([mirror + name for mirror in mirrors], target, algorithm, expected)
        paths.append(target)
    return paths


def missing_files(root: str | os.PathLike | None = None, split: str = "test") -> list[str]:
    """Names of the files of ``split`` that are not in ``root`` (no checksum is computed)."""
    root = Path(root) if root is not None else deepscm_dir()
    return [name for name in SPLIT_FILES[split] if not (root / name).exists()]
