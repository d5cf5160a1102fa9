"""Small real-data samples shipped in the repository, so that the tutorials run offline.

``data/samples/mnist-t10k-sample/`` holds the first :data:`SAMPLE_SIZE` digits of the MNIST
test set (IDX files, ~170 KB). When the full test set is neither on disk nor downloadable,
Causal Morpho-MNIST builds its test split from them: base digit ``i`` of the sample is MNIST test
digit ``i``, and each image's noise is drawn from ``(seed, split, base, draw)`` alone, so those
test images, labels and true counterfactuals are exactly the first rows of the full test split.

Every file is listed with its sha256 in ``data/samples/MANIFEST.json`` and verified on each
load; a damaged file is an error that says how to restore it, never silently regenerated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from cdae.data.digits import Digits
from cdae.data.idx import read_idx, write_idx
from cdae.files import ChecksumError, atomic_write_bytes, check_shipped_file, file_digest
from cdae.paths import repo_root

SAMPLE_SIZE = 1000
MNIST_SAMPLE = "mnist-t10k-sample"
#: ``base_source`` name of Morpho-MNIST rows built on the sample.
SAMPLE_SOURCE = "mnist:t10k-sample"
MANIFEST = "MANIFEST.json"
_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def samples_dir() -> Path:
    """``<repo>/data/samples``: shipped with the code, so not moved by ``CDAE_DATA_DIR``."""
    return repo_root() / "data" / "samples"


def load_mnist_test_sample(folder: str | os.PathLike | None = None) -> Digits:
    """The shipped first :data:`SAMPLE_SIZE` MNIST test digits, sha256-verified.

    Raises :class:`~cdae.files.ChecksumError` naming the damaged or missing file and the
    ``git checkout`` command that restores it.
    """
    folder = Path(folder) if folder is not None else samples_dir()
    verify_sample(folder)
    images, labels = (read_idx(folder / MNIST_SAMPLE / name) for name in _FILES)
    images.setflags(write=False)
    return Digits(images, labels.astype(np.int64), SAMPLE_SOURCE)


def verify_sample(folder: str | os.PathLike | None = None) -> None:
    """Check every file of the MNIST sample against ``MANIFEST.json``; raise on any mismatch."""
    folder = Path(folder) if folder is not None else samples_dir()
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ChecksumError(f"{manifest_path} is missing or unreadable ({exc}); restore it with "
                            f"`git checkout -- {manifest_path}`") from None
    for name in _FILES:
        relative = f"{MNIST_SAMPLE}/{name}"
        check_shipped_file(folder / relative, manifest.get(relative, {}).get("sha256"),
                           "sample file")


def write_mnist_test_sample(source: Digits, folder: str | os.PathLike | None = None,
                            size: int = SAMPLE_SIZE) -> Path:
    """Write the first ``size`` digits of the MNIST test set ``source`` and the manifest
    (how the shipped sample was made: ``python -m cdae data sample``)."""
    if source.source != "mnist:t10k":
        raise ValueError(f"the sample is cut from the MNIST test set, got digits from "
                         f"{source.source!r}")
    folder = Path(folder) if folder is not None else samples_dir()
    target = folder / MNIST_SAMPLE
    write_idx(target / _FILES[0], np.ascontiguousarray(source.images[:size]))
    write_idx(target / _FILES[1], np.ascontiguousarray(source.labels[:size].astype(np.uint8)))
    manifest = {f"{MNIST_SAMPLE}/{name}": {"sha256": file_digest(target / name),
                                           "bytes": (target / name).stat().st_size}
                for name in _FILES}
    atomic_write_bytes(folder / MANIFEST,
                       (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return target
