"""Torch datasets of images with causal labels, label normalisation, and a registry of datasets.

Every dataset here is a :class:`CausalImageDataset`: images (C, H, W) float32 in [-1, 1] and the
labels of the graph's nodes, in ``graph.nodes`` order, continuous ones normalised by a
:class:`LabelNormalizer` (the label-aligned prior N(y_i 1, I) then sits on unit scale) and
categorical ones as class indices.

    >>> train = build_dataset("morphomnist", "train")
    >>> test = build_dataset("morphomnist", "test", normalizer=train.normalizer)

The test split must reuse the training split's normaliser (``normalizer=train.normalizer``, or
:func:`build_splits`), otherwise the same label value means different things in the two splits.
A new dataset is registered with :func:`register_dataset`, never by editing this file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from cdae.graph import CausalGraph
from cdae.paths import deepscm_dir

Array = TypeVar("Array", np.ndarray, torch.Tensor)

# ---------------------------------------------------------------------------- labels


def label_matrix(labels: pd.DataFrame, graph: CausalGraph) -> np.ndarray:
    """(N, n_vars) float64 natural labels of ``graph.nodes`` taken from ``labels``' columns.

    Raises ``ValueError`` naming the problem: missing columns, non-numeric, NaN/inf values,
    categorical values that are not integers in [0, n_classes).
    """
    if not isinstance(labels, pd.DataFrame):
        raise TypeError(f"labels must be a pandas DataFrame with a column per variable, got "
                        f"{type(labels).__name__}")
    missing = [name for name in graph.nodes if name not in labels.columns]
    if missing:
        raise ValueError(
            f"the labels have no column for graph nodes {missing}; available columns: "
            f"{list(labels.columns)}. Rename the columns or the graph's nodes so they match"
        )
    columns = []
    for name in graph.nodes:
        try:
            column = pd.to_numeric(labels[name]).to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"label column {name!r} is not numeric ({exc})") from exc
        bad = np.flatnonzero(~np.isfinite(column))
        if bad.size:
            raise ValueError(
                f"label {name!r} has {bad.size} NaN/infinite values (rows {bad[:5].tolist()}"
                f"{'...' if bad.size > 5 else ''}); drop or fill those rows first"
            )
        if name in graph.categorical:
            _check_classes(name, column, graph.categorical[name])
        columns.append(column)
    return np.stack(columns, axis=1) if columns else np.zeros((len(labels), 0))


def _check_classes(name: str, column: np.ndarray, n_classes: int) -> None:
    bad = np.flatnonzero((column != np.round(column)) | (column < 0) | (column >= n_classes))
    if bad.size:
        raise ValueError(
            f"categorical label {name!r} must hold integer class indices in [0, {n_classes}); "
            f"rows {bad[:5].tolist()} hold {column[bad[:5]].tolist()}. Map the classes to "
            f"0..{n_classes - 1} or fix the graph's categorical={{{name!r}: n_classes}}"
        )


@dataclass(eq=False)
class LabelNormalizer:
    """Per-variable affine map of labels: normalised = (natural - shift) / scale.

    Categorical variables have shift 0 and scale 1, so their class indices pass through.
    ``shift`` and ``scale`` are sequences aligned with ``variables`` or ``{name: value}``.
    """

    variables: list[str]
    shift: np.ndarray
    scale: np.ndarray
    categorical: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.variables = list(self.variables)
        self.categorical = {str(k): int(v) for k, v in dict(self.categorical or {}).items()}
        self.shift = self._aligned(self.shift, "shift")
        self.scale = self._aligned(self.scale, "scale")
        unknown = sorted(set(self.categorical) - set(self.variables))
        if unknown:
            raise ValueError(f"categorical {unknown} are not among variables {self.variables}")
        bad = [v for v, s in zip(self.variables, self.scale, strict=True) if not s > 0]
        if bad:
            raise ValueError(f"scale must be positive, got {self.scale.tolist()} for {bad}")
        for name in self.categorical:
            i = self.variables.index(name)
            if self.shift[i] != 0 or self.scale[i] != 1:
                raise ValueError(f"categorical {name!r} must have shift 0 and scale 1")

    def _aligned(self, values: Any, what: str) -> np.ndarray:
        if isinstance(values, Mapping):
            values = [values[name] for name in self.variables]
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if array.shape != (len(self.variables),) or not np.isfinite(array).all():
            raise ValueError(
                f"{what} must be {len(self.variables)} finite numbers (one per variable "
                f"{self.variables}), got {array.tolist()}"
            )
        return array

    @classmethod
    def fit(cls, labels: pd.DataFrame, graph: CausalGraph) -> LabelNormalizer:
        """shift = mean, scale = std (population, ddof=0) of each continuous label column."""
        values = label_matrix(labels, graph)
        if len(values) == 0:
            raise ValueError("cannot fit a LabelNormalizer on zero labels")
        continuous = np.array([not graph.is_categorical(name) for name in graph.nodes])
        shift = np.where(continuous, values.mean(axis=0), 0.0)
        scale = np.where(continuous, values.std(axis=0), 1.0)
        constant = [n for n, s, m in zip(graph.nodes, scale, shift, strict=True)
                    if s <= 1e-12 * (1.0 + abs(m))]
        if constant:
            raise ValueError(
                f"labels {constant} are constant (std 0) in the fitting data, so they cannot be "
                "normalised: fit on data where they vary, drop them from the graph, or give "
                "LabelNormalizer(variables, shift, scale) explicitly"
            )
        return cls(graph.nodes, shift, scale, dict(graph.categorical))

    def normalize(self, natural: Array) -> Array:
        """(..., n_vars) natural -> normalised, y' = (y - shift) / scale; numpy or torch."""
        values, shift, scale = self._broadcast(natural)
        return (values - shift) / scale

    def denormalize(self, normalized: Array) -> Array:
        """(..., n_vars) normalised -> natural, y = y' * scale + shift; numpy or torch."""
        values, shift, scale = self._broadcast(normalized)
        return values * scale + shift

    def normalize_value(self, name: str, value: float | np.ndarray) -> float | np.ndarray:
        """One variable's natural value(s) -> normalised, e.g. for ``do={"thickness": 3.5}``."""
        i = self._position(name)
        return (value - self.shift[i]) / self.scale[i]

    def denormalize_value(self, name: str, value: float | np.ndarray) -> float | np.ndarray:
        """One variable's normalised value(s) -> natural units."""
        i = self._position(name)
        return value * self.scale[i] + self.shift[i]

    def _position(self, name: str) -> int:
        if name not in self.variables:
            raise ValueError(f"unknown variable {name!r}; the normaliser has {self.variables}")
        return self.variables.index(name)

    def _broadcast(self, values: Any) -> tuple[Any, Any, Any]:
        """Values as a float array/tensor and shift, scale of the same kind, dtype, device."""
        n = len(self.variables)
        if isinstance(values, torch.Tensor):
            dtype = values.dtype if values.is_floating_point() else torch.float32
            values = values.to(dtype)
            shift = torch.as_tensor(self.shift, dtype=dtype, device=values.device)
            scale = torch.as_tensor(self.scale, dtype=dtype, device=values.device)
        else:
            values = np.asarray(values)
            values = values if values.dtype.kind == "f" else values.astype(np.float64)
            shift, scale = self.shift.astype(values.dtype), self.scale.astype(values.dtype)
        if values.ndim == 0 or values.shape[-1] != n:
            raise ValueError(
                f"expected labels of shape (..., {n}) for variables {self.variables}, got "
                f"{tuple(values.shape)}"
            )
        return values, shift, scale

    def check_graph(self, graph: CausalGraph) -> None:
        """Raise unless this normaliser was made for ``graph``'s variables and classes."""
        if self.variables != graph.nodes or self.categorical != dict(graph.categorical):
            raise ValueError(
                f"the normaliser is for variables {self.variables} (categorical "
                f"{self.categorical}) but the graph has {graph.nodes} (categorical "
                f"{graph.categorical}); use the normaliser of a dataset with the same graph"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-python form for checkpoints; inverse of :meth:`from_dict`."""
        return {
            "variables": list(self.variables),
            "shift": self.shift.tolist(),
            "scale": self.scale.tolist(),
            "categorical": dict(self.categorical),
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> LabelNormalizer:
        return cls(spec["variables"], spec["shift"], spec["scale"], spec.get("categorical", {}))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelNormalizer) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        pairs = ", ".join(
            f"{v}: shift={m:.4g} scale={s:.4g}" + (" (categorical)" if v in self.categorical
                                                   else "")
            for v, m, s in zip(self.variables, self.shift, self.scale, strict=True)
        )
        return f"LabelNormalizer({pairs})"


# ---------------------------------------------------------------------------- images


def images_to_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> uint8 tensor (N, C, H, W), C in 1..4."""
    tensor = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images
    if tensor.dtype != torch.uint8:
        raise ValueError(
            f"images must be uint8 in 0-255, got {tensor.dtype}; if they are floats in [0, 1] "
            "convert with (x * 255).round().astype(np.uint8)"
        )
    if tensor.ndim == 3:
        tensor = tensor[..., None]
    if tensor.ndim != 4 or tensor.shape[-1] not in (1, 2, 3, 4):
        hint = (" (this looks channels-first; pass (N, H, W, C))"
                if tensor.ndim == 4 and tensor.shape[1] in (1, 3, 4) else "")
        raise ValueError(
            f"images must have shape (N, H, W) or (N, H, W, C) with C <= 4, got "
            f"{tuple(tensor.shape)}{hint}"
        )
    return tensor.permute(0, 3, 1, 2).contiguous()


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, channels, H, W).

    RGBA -> RGB drops alpha (as PIL's ``convert("RGB")``); RGB/RGBA -> grey is the ITU-R 601
    luma L = 0.299 R + 0.587 G + 0.114 B; grey -> RGB repeats the channel.
    """
    have = images.shape[1]
    if channels is None or channels == have:
        return images
    if have == 4 and channels == 3:
        return images[:, :3].contiguous()
    if have in (3, 4) and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        luma = (images[:, :3].float() * weights).sum(dim=1, keepdim=True)  # L = w . (R, G, B)
        return luma.round().clamp(0, 255).to(torch.uint8)
    if have == 1 and channels == 3:
        return images.repeat(1, 3, 1, 1)
    raise ValueError(
        f"cannot convert {have}-channel images to channels={channels}; supported: RGBA->3 "
        "(drops alpha), RGB/RGBA->1 (luma), 1->3 (repeat), or channels=None to keep them"
    )


def resize_images(
    images: torch.Tensor, size: int | Sequence[int] | None, chunk: int = 512
) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, C, size, size) (or ``size=(h, w)``), bilinear, anti-aliased,
    in chunks of ``chunk`` images to bound memory."""
    if size is None:
        return images
    target = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
    if len(target) != 2 or min(target) < 1:
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    if tuple(images.shape[2:]) == target:
        return images
    out = torch.empty((images.shape[0], images.shape[1], *target), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk].float()
        block = F.interpolate(block, size=target, mode="bilinear", align_corners=False,
                              antialias=True)
        out[start : start + chunk] = block.round().clamp(0, 255).to(torch.uint8)
    return out


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [-1, 1]: x = p / 127.5 - 1."""
    return images.float() / 127.5 - 1.0


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
    from cdae.data import morphomnist

    folder = root if root is not None else morphomnist.load_or_generate(**(generate_kwargs or {}))
    data = morphomnist.read_morphomnist(folder, split)
    return _make(data.images, data.labels, graph or CausalGraph.preset("morphomnist"), limit,
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
    from cdae.data.morphomnist import read_morphomnist

    data = read_morphomnist(folder, split)
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
    images, labels, causal_graph = read_image_folder(root, split, graph, labels_file, limit)
    return _make(images, labels, causal_graph, None, **kwargs)


# ---------------------------------------------------------------------------- your own folder

GRAPH_FILES: tuple[str, ...] = ("graph.json", "graph.yaml", "graph.yml")


def read_image_folder(
    root: str | os.PathLike,
    split: str,
    graph: CausalGraph | Mapping[str, Any] | str | os.PathLike | None = None,
    labels_file: str = "labels.csv",
    limit: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame, CausalGraph]:
    """Images uint8 (N, H, W[, C]), labels and graph of a folder of your own.

    Layouts: ``root/<split>/labels.csv`` (one folder per split), or ``root/labels.csv`` with a
    ``split`` column, or ``root/labels.csv`` without one, read whole with ``split="all"``. The
    CSV has a ``file`` column (image paths relative to the CSV's folder; PNG, JPEG, ...) and a
    column per variable. ``graph``: a :class:`CausalGraph`, a dict (``CausalGraph.from_dict``), a
    path to a JSON/YAML file, or ``None`` to read ``graph.json``/``graph.yaml`` from the split
    folder or ``root``. All images must have one size and mode (grey, RGB or RGBA).
    """
    folder, table = _folder_split(Path(root), split, labels_file)
    if "file" not in table.columns:
        raise ValueError(f"{folder / labels_file} needs a 'file' column naming each image; "
                         f"found columns {list(table.columns)}")
    if limit is not None:
        table = table.iloc[:limit]
    causal_graph = load_graph_spec(graph, [folder, Path(root)])
    images = _read_images(folder, table["file"].astype(str).tolist())
    labels = table.drop(columns=[c for c in ("file", "split") if c in table.columns])
    return images, labels.reset_index(drop=True), causal_graph


def _folder_split(root: Path, split: str, labels_file: str) -> tuple[Path, pd.DataFrame]:
    if (root / split / labels_file).exists():
        return root / split, pd.read_csv(root / split / labels_file)
    if not (root / labels_file).exists():
        raise FileNotFoundError(f"no {labels_file} in {root / split} or {root}: put one CSV per "
                                "split folder, or one CSV (with a 'split' column) in the root")
    table = pd.read_csv(root / labels_file)
    if "split" in table.columns:
        chosen = table[table["split"].astype(str) == split]
        if chosen.empty:
            raise ValueError(f"{root / labels_file} has no rows with split == {split!r}; its "
                             f"splits are {sorted(table['split'].astype(str).unique())}")
        return root, chosen
    if split != "all":
        raise ValueError(f"{root / labels_file} has no 'split' column and there is no folder "
                         f"{root / split}; read the whole folder with split='all'")
    return root, table


def load_graph_spec(
    spec: CausalGraph | Mapping[str, Any] | str | os.PathLike | None, search: Sequence[Path]
) -> CausalGraph:
    """A :class:`CausalGraph` from a graph, a dict, a JSON/YAML file, or the first
    :data:`GRAPH_FILES` found in the ``search`` folders."""
    if isinstance(spec, CausalGraph):
        return spec
    if isinstance(spec, Mapping):
        return CausalGraph.from_dict(spec)
    if spec is None:
        found = [folder / name for folder in search for name in GRAPH_FILES
                 if (folder / name).exists()]
        if not found:
            raise FileNotFoundError(
                f"no graph given and none of {list(GRAPH_FILES)} in {[str(s) for s in search]}: "
                "pass graph=CausalGraph(...) or a dict, or write graph.json like "
                '{"nodes": ["a", "b"], "edges": [["a", "b"]], "categorical": {}}'
            )
        spec = found[0]
    path = Path(spec)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return CausalGraph.from_dict(yaml.safe_load(text))
    return CausalGraph.from_dict(json.loads(text))


def _read_images(folder: Path, files: list[str]) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) from image files that must share size and mode."""
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image files named in the labels are missing from {folder}: "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    arrays: list[np.ndarray] = []
    for name in files:
        try:
            with Image.open(folder / name) as image:
                array = np.asarray(_standard_mode(image))
        except OSError as exc:
            raise ValueError(f"{folder / name} is not a readable image ({exc})") from exc
        if arrays and array.shape != arrays[0].shape:
            raise ValueError(
                f"{name} is {array.shape} (height, width[, channels]) but {files[0]} is "
                f"{arrays[0].shape}; all images must share one size and mode: resize/convert "
                "them first"
            )
        arrays.append(array)
    if not arrays:
        raise ValueError(f"no images listed for {folder}")
    return np.stack(arrays)


def _standard_mode(image: Image.Image) -> Image.Image:
    """Grey ('L'), 'RGB' or 'RGBA': palette and grey-alpha images keep transparency as RGBA."""
    if image.mode in ("L", "RGB", "RGBA"):
        return image
    if image.mode == "1":
        return image.convert("L")
    has_alpha = image.mode in ("LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")
