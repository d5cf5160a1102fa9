"""Causal labels as numbers: the checked (N, n_vars) label matrix and the label normaliser.

:func:`label_matrix` takes the graph's variables from a DataFrame, in ``graph.nodes`` order, and
checks them (numeric, finite, categorical ones class indices). :class:`LabelNormalizer` maps
continuous labels to unit scale, y' = (y - shift) / scale, so the label-aligned prior
N(y_i 1, I) sits on unit scale; categorical labels pass through as class indices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from cdae.graph import CausalGraph

Array = TypeVar("Array", np.ndarray, torch.Tensor)


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
    ``shift`` and ``scale`` are sequences aligned with ``variables`` or ``{name: value}``;
    ``low`` and ``high``, when known, are the smallest and largest natural value of each
    variable in the fitting (training) data: the range a do() value is checked against.
    """

    variables: list[str]
    shift: np.ndarray
    scale: np.ndarray
    categorical: dict[str, int] = field(default_factory=dict)
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.variables = list(self.variables)
        self.categorical = {str(k): int(v) for k, v in dict(self.categorical or {}).items()}
        self.shift = self._aligned(self.shift, "shift")
        self.scale = self._aligned(self.scale, "scale")
        if (self.low is None) != (self.high is None):
            raise ValueError("give both low and high (the training range), or neither")
        if self.low is not None:
            self.low, self.high = self._aligned(self.low, "low"), self._aligned(self.high, "high")
            if np.any(self.low > self.high):
                raise ValueError(f"low {self.low.tolist()} exceeds high {self.high.tolist()}")
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
        low, high = values.min(axis=0), values.max(axis=0)
        constant = [n for n, s, m in zip(graph.nodes, scale, shift, strict=True)
                    if s <= 1e-12 * (1.0 + abs(m))]
        if constant:
            raise ValueError(
                f"labels {constant} are constant (std 0) in the fitting data, so they cannot be "
                "normalised: fit on data where they vary, drop them from the graph, or give "
                "LabelNormalizer(variables, shift, scale) explicitly"
            )
        return cls(graph.nodes, shift, scale, dict(graph.categorical), low, high)

    def with_range(self, labels: pd.DataFrame, graph: CausalGraph) -> LabelNormalizer:
        """The same map with ``low``/``high`` set from ``labels`` (e.g. for a checkpoint saved
        before normalisers recorded their training range)."""
        values = label_matrix(labels, graph)
        return LabelNormalizer(self.variables, self.shift, self.scale, self.categorical,
                               values.min(axis=0), values.max(axis=0))

    def value_range(self, name: str) -> tuple[float, float] | None:
        """(smallest, largest) natural value of ``name`` in the training data, or None."""
        if self.low is None or self.high is None:
            return None
        i = self._position(name)
        return float(self.low[i]), float(self.high[i])

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
        spec = {
            "variables": list(self.variables),
            "shift": self.shift.tolist(),
            "scale": self.scale.tolist(),
            "categorical": dict(self.categorical),
        }
        if self.low is not None and self.high is not None:
            spec.update(low=self.low.tolist(), high=self.high.tolist())
        return spec

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> LabelNormalizer:
        return cls(spec["variables"], spec["shift"], spec["scale"], spec.get("categorical", {}),
                   spec.get("low"), spec.get("high"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelNormalizer) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        pairs = ", ".join(
            f"{v}: shift={m:.4g} scale={s:.4g}" + (" (categorical)" if v in self.categorical
                                                   else "")
            for v, m, s in zip(self.variables, self.shift, self.scale, strict=True)
        )
        return f"LabelNormalizer({pairs})"

