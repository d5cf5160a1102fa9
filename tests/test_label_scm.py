"""LabelSCM: counterfactual label targets from an additive-noise SCM fitted to the labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cdae.evaluate.label_scm import LabelSCM
from cdae.graph import CausalGraph

CHAIN = CausalGraph(edges=[("a", "b"), ("b", "c")], nodes=["a", "b", "c", "d"])


def chain_labels(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """a -> b -> c (b linear in a, c quadratic in b), d a separate root; labels and noise."""
    rng = np.random.default_rng(seed)
    a, d = rng.uniform(0, 4, n), rng.normal(size=n)
    u = pd.DataFrame({"b": rng.normal(0, 0.3, n), "c": rng.normal(0, 0.5, n)})
    b = 1 + 2 * a + u["b"].to_numpy()
    c = 0.5 * b**2 - b + u["c"].to_numpy()
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d}), u


def test_fitted_chain_gives_the_true_counterfactual_labels():
    train, _ = chain_labels(4000)
    scm = LabelSCM.fit(train, CHAIN)
    assert sorted(scm.mechanisms) == ["b", "c"]
    assert scm.noise_sd["b"] == pytest.approx(0.3, rel=0.05)
    assert scm.noise_sd["c"] == pytest.approx(0.5, rel=0.05)

    test, u = chain_labels(50, seed=1)
    cf = scm.counterfactual(test, {"a": 3.0})  # the root: both descendants move
    true_b = 1 + 2 * 3.0 + u["b"]
    np.testing.assert_allclose(cf["b"], true_b, atol=0.05)
    np.testing.assert_allclose(cf["c"], 0.5 * true_b**2 - true_b + u["c"], atol=0.3)
    np.testing.assert_array_equal(cf["d"], test["d"])  # not a descendant: kept

    middle = scm.counterfactual(test, {"b": np.linspace(2, 8, 50)})  # one value per unit
    np.testing.assert_array_equal(middle["a"], test["a"])  # upstream: untouched
    np.testing.assert_allclose(middle["c"], 0.5 * middle["b"]**2 - middle["b"] + u["c"],
                               atol=0.3)
    leaf = scm.counterfactual(test, {"c": 0.0})
    np.testing.assert_array_equal(leaf[["a", "b", "d"]], test[["a", "b", "d"]])
    assert (scm.counterfactual(test, {})[CHAIN.nodes].to_numpy() == test.to_numpy()).all()


def test_categorical_parents_are_one_hot_and_categorical_effects_unknown():
    rng = np.random.default_rng(0)
    kind = rng.integers(0, 3, 600)
    size = np.array([1.0, 4.0, 9.0])[kind] + rng.normal(0, 0.1, 600)
    labels = pd.DataFrame({"kind": kind, "size": size, "flag": (size > 5).astype(int)})
    graph = CausalGraph(edges=[("kind", "size"), ("size", "flag")],
                        categorical={"kind": 3, "flag": 2})
    scm = LabelSCM.fit(labels, graph, degree=1)
    assert list(scm.mechanisms) == ["size"] and scm.noise_sd["size"] < 0.12
    cf = scm.counterfactual(labels.iloc[:4], {"kind": 2})
    np.testing.assert_allclose(cf["size"], 9.0 + (size[:4] - np.array([1.0, 4, 9])[kind[:4]]),
                               atol=0.05)
    assert cf["flag"].isna().all()


def test_mistakes_are_named():
    train, _ = chain_labels(5)
    with pytest.raises(ValueError, match="cannot fit b's mechanism"):
        LabelSCM.fit(train.iloc[:2], CHAIN)
    with pytest.raises(ValueError, match="degree"):
        LabelSCM.fit(train, CHAIN, degree=0)
    scm = LabelSCM.fit(train, CHAIN, degree=1)
    with pytest.raises(ValueError, match=r"do\(\) of \['e'\]"):
        scm.counterfactual(train, {"e": 1.0})
    with pytest.raises(ValueError, match="no column for graph nodes"):
        scm.counterfactual(train.drop(columns="c"), {"a": 1.0})
    with pytest.raises(ValueError, match="no fitted mechanism"):
        scm.predict("a", train)
