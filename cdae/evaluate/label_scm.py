"""Counterfactual labels from the labels alone, for data without an oracle.

Your own images have no generator that could say what a counterfactual *should* show. What the
labels CSV does have is the observational joint, and with the causal graph and one assumption,
additive noise, that is enough for the targets of a counterfactual's labels:

    v = f_v(pa(v)) + u_v        for every continuous variable v with parents,

each ``f_v`` a least-squares polynomial (``degree``) in the continuous parents plus one-hot
categorical parents, fitted on the training labels. A counterfactual of one unit is then
abduction u_v = y_v − f_v(pa(v)), action do(X = x), prediction: every descendant recomputed
from its new parents and its own u_v, in topological order.

    >>> scm = LabelSCM.fit(train.labels_natural, graph)
    >>> targets = scm.counterfactual(test_labels, {"size": 5.0})   # descendants move, others stay

The targets are only as good as the fitted mechanisms and the additive-noise assumption; the
residual sds (:attr:`LabelSCM.noise_sd`) say how much of each variable the parents leave
unexplained. A categorical variable with parents has no additive noise: its targets under
do() of an ancestor are NaN (unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cdae.data.labels import label_matrix
from cdae.graph import CausalGraph


@dataclass(frozen=True)
class Mechanism:
    """f_v: ``coefficients`` of the features of :meth:`LabelSCM.features` of ``parents``."""

    parents: tuple[str, ...]
    coefficients: np.ndarray


class LabelSCM:
    """An additive-noise SCM over a graph's labels, fitted by :meth:`fit`; see the module
    docstring. ``mechanisms``: continuous non-roots -> :class:`Mechanism`; ``noise_sd``: the
    residual sd of each of them on the fitting labels."""

    def __init__(self, graph: CausalGraph, mechanisms: Mapping[str, Mechanism],
                 noise_sd: Mapping[str, float], degree: int) -> None:
        self.graph, self.degree = graph, degree
        self.mechanisms, self.noise_sd = dict(mechanisms), dict(noise_sd)

    @classmethod
    def fit(cls, labels: pd.DataFrame, graph: CausalGraph, degree: int = 2) -> LabelSCM:
        """Least-squares f_v for every continuous variable with parents, on ``labels``
        (natural units, a column per node of ``graph``)."""
        if int(degree) != degree or degree < 1:
            raise ValueError(f"degree must be a whole number >= 1, got {degree!r}")
        frame = _checked(labels, graph)
        scm = cls(graph, {}, {}, int(degree))
        for name in graph.nodes:
            parents = tuple(graph.parents(name))
            if not parents or graph.is_categorical(name):
                continue
            features = scm.features(frame, parents)
            target = frame[name].to_numpy()
            if len(target) <= features.shape[1]:
                raise ValueError(f"{len(target)} label rows cannot fit {name}'s mechanism "
                                 f"({features.shape[1]} coefficients); give more rows or a "
                                 "lower degree")
            coefficients = np.linalg.lstsq(features, target, rcond=None)[0]
            scm.mechanisms[name] = Mechanism(parents, coefficients)
            scm.noise_sd[name] = float(np.std(target - features @ coefficients))
        return scm

    def features(self, labels: pd.DataFrame, parents: tuple[str, ...]) -> np.ndarray:
        """(N, k) design matrix: 1, the powers 1..degree of each continuous parent, and the
        one-hot classes 1..K-1 of each categorical parent."""
        columns = [np.ones(len(labels))]
        for parent in parents:
            values = labels[parent].to_numpy(dtype=np.float64)
            if self.graph.is_categorical(parent):
                columns += [(values == k).astype(np.float64)
                            for k in range(1, self.graph.categorical[parent])]
            else:
                columns += [values ** power for power in range(1, self.degree + 1)]
        return np.stack(columns, axis=1)

    def predict(self, name: str, labels: pd.DataFrame) -> np.ndarray:
        """f_name(parents) for each row of ``labels`` (natural units)."""
        if name not in self.mechanisms:
            raise ValueError(f"{name!r} has no fitted mechanism (roots and categorical "
                             f"variables have none); fitted: {sorted(self.mechanisms)}")
        mechanism = self.mechanisms[name]
        return self.features(labels, mechanism.parents) @ mechanism.coefficients

    def abduct(self, labels: pd.DataFrame) -> pd.DataFrame:
        """The noise u_v = y_v − f_v(pa(v)) of every fitted variable, one row per unit."""
        frame = _checked(labels, self.graph)
        return pd.DataFrame({name: frame[name].to_numpy() - self.predict(name, frame)
                             for name in self.mechanisms}, index=frame.index)

    def counterfactual(self, labels: pd.DataFrame, do: Mapping[str, Any]) -> pd.DataFrame:
        """The labels each unit (row of ``labels``) would have under ``do`` (a scalar or one
        value per row for each intervened variable): descendants recomputed with their own
        noise, everything else kept. NaN where a descendant is categorical (no additive noise).
        """
        unknown = [name for name in do if name not in self.graph.nodes]
        if unknown:
            raise ValueError(f"do() of {unknown}: not variables of the graph {self.graph.nodes}")
        frame = _checked(labels, self.graph)
        noise = self.abduct(frame)
        out = frame.copy()
        for name, value in do.items():
            out[name] = np.broadcast_to(np.asarray(value, dtype=np.float64), (len(out),))
        changed = set(do)
        for name in self.graph.topological_order():
            if name in do or not changed & set(self.graph.parents(name)):
                continue
            changed.add(name)
            if name in self.mechanisms:
                out[name] = self.predict(name, out) + noise[name].to_numpy()
            else:
                out[name] = np.nan  # a categorical effect: no additive noise to keep
        return out


def _checked(labels: pd.DataFrame, graph: CausalGraph) -> pd.DataFrame:
    """The graph's columns of ``labels`` as float64, checked (:func:`label_matrix`)."""
    values = label_matrix(labels, graph)
    return pd.DataFrame(values, columns=graph.nodes, index=labels.index)
