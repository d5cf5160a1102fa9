"""Torch datasets of images with causal labels, and a registry of datasets.

Every dataset here is a :class:`CausalImageDataset`: images (C, H, W) float32 in [-1, 1] and the
labels of the graph's nodes, in ``graph.nodes`` order, continuous ones normalised by a
:class:`~cdae.data.labels.LabelNormalizer` (the label-aligned prior N(y_i 1, I) then sits on unit
scale) and categorical ones as class indices.

    >>> train = build_dataset("morphomnist", "train")
    >>> test = build_dataset("morphomnist", "test", normalizer=train.normalizer)

The test split must reuse the training split's normaliser (``normalizer=train.normalizer``, or
:func:`build_splits`), otherwise the same label value means different things in the two splits.
A new dataset is registered with :func:`register_dataset`, never by editing this file.
Labels live in :mod:`cdae.data.labels`, image conversions in :mod:`cdae.data.images`, your own
folder of images in :mod:`cdae.data.folder`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from cdae.data.folder import read_image_folder
from cdae.data.images import convert_channels, images_to_nchw, resize_images, to_unit_range
from cdae.data.labels import LabelNormalizer, label_matrix
from cdae.data.verify import check_dataset_root
from cdae.graph import CausalGraph
from cdae.paths import deepscm_dir

# ---------------------------------------------------------------------------- dataset


def make_labelled_mask(
    n: int, mask: Sequence[bool] | np.ndarray | None, fraction: float | None, seed: int = 0
) -> np.ndarray:
    """(n,) bool: ``mask`` as given, or ``round(fraction * n)`` samples drawn with ``seed``,
    or all True when neither is given."""
    if mask is not None and fraction is not None:
        raise ValueError("give labelled_mask or labelled_fraction, not both")
    if mask is not None:
        array = np.asarray(mask)
        if array.shape != (n,) or array.dtype != np.bool_:
            raise ValueError(f"labelled_mask must be {n} booleans, got {array.dtype} "
                             f"{array.shape}")
        return array.copy()
    if fraction is None:
        return np.ones(n, dtype=bool)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"labelled_fraction must be in [0, 1], got {fraction}")
    chosen = np.random.default_rng(seed).permutation(n)[: int(round(fraction * n))]
    out = np.zeros(n, dtype=bool)
    out[chosen] = True
    return out


class CausalImageDataset(Dataset):
    """Images with the labels of a causal graph's variables.

    Item ``i``: ``(image float32 (C, H, W) in [-1, 1], labels float32 (n_vars,))`` in
    ``graph.nodes`` order, continuous labels normalised, categorical ones class indices; plus a
    bool ``labelled`` tensor when ``return_labelled`` (weak supervision: the labels of unlabelled
    samples are still returned, for evaluation; training must ignore them where it is False).

    Args:
        images: uint8 (N, H, W) or (N, H, W, C), numpy or torch.
        labels: DataFrame with a column per graph node (extra columns are kept in
            :attr:`labels_natural`).
        graph: the :class:`CausalGraph`.
        normalizer: reuse one (the training split's!); default: fit on the labelled samples.
        channels: convert to this many channels once (e.g. 3 drops RGBA's alpha).
        size: resize once to ``size`` x ``size`` (or ``(h, w)``), bilinear, anti-aliased.
        labelled_mask / labelled_fraction / seed: which samples count as labelled.
        return_labelled: add the labelled flag as a third item.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: pd.DataFrame,
        graph: CausalGraph,
        normalizer: LabelNormalizer | None = None,
        *,
        channels: int | None = None,
        size: int | Sequence[int] | None = None,
        labelled_mask: Sequence[bool] | np.ndarray | None = None,
        labelled_fraction: float | None = None,
        seed: int = 0,
        return_labelled: bool = False,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} label rows; they must "
                             "match one to one")
        natural = label_matrix(labels, graph)
        self.graph = graph
        self.variables = graph.nodes
        self.labelled_mask = make_labelled_mask(len(labels), labelled_mask, labelled_fraction,
                                                seed)
        self.return_labelled = return_labelled
        if normalizer is None:  # fit on the labels a weakly supervised learner may see
            if not self.labelled_mask.any():
                raise ValueError("no labelled samples to fit the label normaliser on; pass "
                                 "normalizer=... (e.g. the training split's)")
            normalizer = LabelNormalizer.fit(labels[self.labelled_mask], graph)
        normalizer.check_graph(graph)
        self.normalizer = normalizer
        self.labels_natural = labels.reset_index(drop=True).copy()
        self._labels = torch.as_tensor(normalizer.normalize(natural), dtype=torch.float32)
        self._images = resize_images(convert_channels(images_to_nchw(images), channels), size)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every item's image."""
        return tuple(self._images.shape[1:])

    @property
    def images_uint8(self) -> torch.Tensor:
        """All images as stored: uint8 (N, C, H, W)."""
        return self._images

    @property
    def labels_normalized(self) -> torch.Tensor:
        """All labels as returned by items: float32 (N, n_vars), graph order, normalised."""
        return self._labels

    def __len__(self) -> int:
        return self._images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        item = (to_unit_range(self._images[index]), self._labels[index])
        if self.return_labelled:
            return (*item, torch.tensor(bool(self.labelled_mask[index])))
        return item

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The whole set in memory: images float32 (N, C, H, W) in [-1, 1], labels (N, n_vars)
        [, labelled (N,) bool]: for fast training on small data."""
        out = (to_unit_range(self._images), self._labels.clone())
        if self.return_labelled:
            return (*out, torch.as_tensor(self.labelled_mask))
        return out

    def __repr__(self) -> str:
        return (f"CausalImageDataset(n={len(self)}, image_shape={self.image_shape}, "
                f"variables={self.variables}, labelled={int(self.labelled_mask.sum())})")


# ---------------------------------------------------------------------------- registry

DatasetBuilder = Callable[..., CausalImageDataset]
_BUILDERS: dict[str, DatasetBuilder] = {}


def register_dataset(
    name: str, builder: DatasetBuilder | None = None, overwrite: bool = False
) -> Any:
    """Register ``builder(split, root=None, **kwargs) -> CausalImageDataset`` under ``name``.

    Use as a decorator, ``@register_dataset("mine")``, or call ``register_dataset("mine", fn)``.
    Re-registering a name needs ``overwrite=True``, except for a function of the same module and
    name (a notebook cell run twice).
    """

    def add(function: DatasetBuilder) -> DatasetBuilder:
        old = _BUILDERS.get(name)
        same = old is not None and (old.__module__, old.__qualname__) == (
            function.__module__, function.__qualname__)
        if old is not None and not (overwrite or same):
            raise ValueError(f"a dataset named {name!r} is already registered ({old.__module__}."
                             f"{old.__qualname__}); pass overwrite=True or pick another name")
        _BUILDERS[name] = function
        return function

    return add if builder is None else add(builder)


def available_datasets() -> list[str]:
    """Names accepted by :func:`build_dataset`."""
    return sorted(_BUILDERS)


def build_dataset(
    name: str, split: str, root: str | os.PathLike | None = None, **kwargs: Any
) -> CausalImageDataset:
    """Build a registered dataset's ``split``.

    Common keyword arguments: ``graph`` (default: the dataset's preset), ``normalizer`` (pass
    the training split's for every other split), ``limit`` (first N samples), and those of
    :class:`CausalImageDataset` (``channels``, ``size``, ``labelled_fraction``, ...).
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; registered: {available_datasets()}. Add "
                         "yours with cdae.data.datasets.register_dataset")
    return _BUILDERS[name](split, root=root, **kwargs)


def build_splits(
    name: str, splits: Sequence[str] = ("train", "test"), root: str | os.PathLike | None = None,
    **kwargs: Any,
) -> dict[str, CausalImageDataset]:
    """Build several splits; the first one fits the normaliser, the others reuse it."""
    out: dict[str, CausalImageDataset] = {}
    for split in splits:
        if out:
            kwargs["normalizer"] = out[splits[0]].normalizer
        out[split] = build_dataset(name, split, root=root, **kwargs)
    return out


def _make(
    images: np.ndarray, labels: pd.DataFrame, graph: CausalGraph, limit: int | None,
    **kwargs: Any,
) -> CausalImageDataset:
    """The first ``limit`` samples as a :class:`CausalImageDataset`."""
    if limit is not None:
        images, labels = images[:limit], labels.iloc[:limit]
    return CausalImageDataset(images, labels, graph, **kwargs)


@register_dataset("morphomnist")
def _build_morphomnist(
    split: str, root: str | os.PathLike | None = None, graph: CausalGraph | None = None,
    limit: int | None = None, generate_kwargs: Mapping[str, Any] | None = None, **kwargs: Any,
) -> CausalImageDataset:
    """Causal Morpho-MNIST: ``root`` holds the files, or (``root=None``) the cached generated set
    (``load_or_generate(**generate_kwargs)``, generated on first use)."""
    from cdae.data.morphomnist import load_or_generate

    folder = root if root is not None else load_or_generate(**(generate_kwargs or {}))
    return _read_morpho(folder, split, graph, limit, "morphomnist" if root is not None else None,
                        **kwargs)


@register_dataset("deepscm_morphomnist")
def _build_deepscm(
    split: str, root: str | os.PathLike | None = None, graph: CausalGraph | None = None,
    limit: int | None = None, **kwargs: Any,
) -> CausalImageDataset:
    """The Deep SCM Morpho-MNIST files at ``root`` or :func:`cdae.paths.deepscm_dir`."""
    folder = Path(root) if root is not None else deepscm_dir()
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"the Deep SCM Morpho-MNIST set has splits 'train' and 'test', not "
                         f"{split!r}")
    if not (folder / f"{prefix}-morpho.csv").exists():
        raise FileNotFoundError(
            f"{folder / f'{prefix}-morpho.csv'} not found. The Deep SCM copy offered with this "
            "project holds only the test split (t10k-*): use split='test' here and the generated "
            "'morphomnist' dataset for training, or point CDAE_DEEPSCM_DIR (or root=...) at a "
            "folder with the full Deep SCM files"
        )
    return _read_morpho(folder, split, graph, limit, "deepscm", **kwargs)


def _read_morpho(
    folder: str | os.PathLike, split: str, graph: CausalGraph | None, limit: int | None,
    verify: str | None, **kwargs: Any,
) -> CausalImageDataset:
    """A Morpho-MNIST split in the Deep SCM layout (generated or original) read from ``folder``,
    verified first (:func:`~cdae.data.verify.check_dataset_root`) unless ``verify`` is None;
    ``"deepscm"`` also compares the published files' md5s."""
    from cdae.data.morphomnist import read_morphomnist

    data = read_morphomnist(folder, split)
    if verify:
        prefix = "train" if data.split == "train" else "t10k"
        stems = ("images-idx3-ubyte.gz", "images-idx3-ubyte", "labels-idx1-ubyte.gz",
                 "labels-idx1-ubyte", "morpho.csv")
        names = [f"{prefix}-{stem}" for stem in stems if (Path(folder) / f"{prefix}-{stem}")
                 .is_file()]
        check_dataset_root("morphomnist", folder, names, deepscm=verify == "deepscm")
    return _make(data.images, data.labels, graph or CausalGraph.preset("morphomnist"), limit,
                 **kwargs)


@register_dataset("pendulum")
def _build_pendulum(
    split: str, root: str | os.PathLike | None = None, graph: CausalGraph | None = None,
    limit: int | None = None, channels: int | None = 3,
    generate_kwargs: Mapping[str, Any] | None = None, **kwargs: Any,
) -> CausalImageDataset:
    """Pendulum (96x96 RGBA on disk; RGB by default, ``channels=None`` keeps alpha): ``root``
    holds the files, or (``root=None``) the cached generated set
    (``load_or_generate(**generate_kwargs)``, rendered on first use)."""
    from cdae.data import pendulum

    folder = root if root is not None else pendulum.load_or_generate(**(generate_kwargs or {}))
    if root is not None:
        check_dataset_root("pendulum", folder, [])
    data = pendulum.read_pendulum(folder, split)
    return _make(data.images, data.labels, graph or CausalGraph.preset("pendulum"), limit,
                 channels=channels, **kwargs)


@register_dataset("causal_circuit")
def _build_circuit(
    split: str, root: str | os.PathLike | None = None, graph: CausalGraph | None = None,
    limit: int | None = None, size: int | None = 64, pair: str = "before",
    allow_pickle: bool = False, **kwargs: Any,
) -> CausalImageDataset:
    """CausalCircuit from the downloaded ``.npz`` files (see :mod:`cdae.data.circuit`),
    decoded and resized to ``size`` while reading."""
    from cdae.data.circuit import load_causal_circuit

    data = load_causal_circuit(root, split, size=size, limit=limit, pair=pair,
                               allow_pickle=allow_pickle)
    return _make(data.images, data.labels, graph or CausalGraph.preset("causal_circuit"), None,
                 **kwargs)


@register_dataset("folder")
def _build_folder(
    split: str, root: str | os.PathLike | None = None,
    graph: CausalGraph | Mapping[str, Any] | str | os.PathLike | None = None,
    limit: int | None = None, labels_file: str = "labels.csv", **kwargs: Any,
) -> CausalImageDataset:
    """Your own images + labels CSV + graph: see :func:`read_image_folder`."""
    if root is None:
        raise ValueError("the 'folder' dataset needs root=<folder with your images and "
                         f"{labels_file}>")
    check_dataset_root("folder", root, [])
    images, labels, causal_graph = read_image_folder(root, split, graph, labels_file, limit)
    return _make(images, labels, causal_graph, None, **kwargs)
