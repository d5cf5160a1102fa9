"""Label matrix checks and the label normaliser (cdae.data.labels)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cdae.data.labels import LabelNormalizer, label_matrix
from cdae.graph import CausalGraph

MORPHO = CausalGraph.preset("morphomnist")


def morpho_labels(n: int, seed: int = 0) -> pd.DataFrame:
    """Morpho-MNIST-like labels: thickness, intensity, digit."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"thickness": rng.gamma(10, 0.2, n) + 0.5,
                         "intensity": rng.uniform(64, 255, n), "digit": rng.integers(0, 10, n)})


def test_fit_uses_mean_and_population_std_and_leaves_classes_alone():
    labels = morpho_labels(200)
    norm = LabelNormalizer.fit(labels, MORPHO)
    assert norm.variables == ["thickness", "intensity", "digit"]
    np.testing.assert_allclose(norm.shift[:2], labels[["thickness", "intensity"]].mean())
    np.testing.assert_allclose(norm.scale[:2], labels[["thickness", "intensity"]].std(ddof=0))
    assert (norm.shift[2], norm.scale[2]) == (0.0, 1.0)
    normed = norm.normalize(labels[MORPHO.nodes].to_numpy())
    np.testing.assert_allclose(normed[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(normed[:, :2].std(axis=0), 1.0)
    np.testing.assert_array_equal(normed[:, 2], labels["digit"])


def test_round_trip_numpy_and_torch_keep_type_dtype_and_shape():
    norm = LabelNormalizer(["a", "b"], [2.0, -1.0], [0.5, 4.0])
    natural = np.array([[[2.5, 3.0], [1.0, -1.0]]])  # (1, 2, 2): any leading shape
    normed = norm.normalize(natural)
    np.testing.assert_allclose(normed, [[[1.0, 1.0], [-2.0, 0.0]]])
    np.testing.assert_allclose(norm.denormalize(normed), natural)
    tensor = torch.tensor(natural, dtype=torch.float32)
    back = norm.denormalize(norm.normalize(tensor))
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    torch.testing.assert_close(back, tensor)
    assert norm.normalize(torch.tensor([[3, 1]])).dtype == torch.float32  # ints become floats
    assert norm.normalize_value("a", 3.0) == pytest.approx(2.0)
    assert norm.denormalize_value("b", 0.5) == pytest.approx(1.0)


def test_normaliser_dict_round_trip_through_json():
    labels = morpho_labels(50)
    norm = LabelNormalizer.fit(labels, MORPHO)
    again = LabelNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert again == norm
    assert again != LabelNormalizer(norm.variables, norm.shift, norm.scale * [2, 1, 1],
                                    norm.categorical)
    np.testing.assert_allclose(again.normalize(labels[MORPHO.nodes].to_numpy()),
                               norm.normalize(labels[MORPHO.nodes].to_numpy()))


def test_constant_label_and_bad_parameters_raise():
    labels = morpho_labels(20)
    labels["thickness"] = 2.5
    with pytest.raises(ValueError, match=r"\['thickness'\] are constant"):
        LabelNormalizer.fit(labels, MORPHO)
    with pytest.raises(ValueError, match="scale must be positive"):
        LabelNormalizer(["a", "b"], [0, 0], [1.0, 0.0])
    with pytest.raises(ValueError, match="2 finite numbers"):
        LabelNormalizer(["a", "b"], [0], [1, 1])
    with pytest.raises(ValueError, match="shift 0 and scale 1"):
        LabelNormalizer(["a", "d"], [0, 1], [1, 1], {"d": 10})
    norm = LabelNormalizer(["a", "b"], {"b": 1.0, "a": 0.0}, {"a": 1.0, "b": 2.0})
    np.testing.assert_array_equal(norm.shift, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        norm.normalize(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="unknown variable 'c'"):
        norm.normalize_value("c", 1.0)


def test_label_matrix_is_in_graph_order_and_keeps_natural_units():
    labels = morpho_labels(5)[["digit", "intensity", "thickness"]].assign(extra=1.0)
    matrix = label_matrix(labels, MORPHO)
    assert matrix.shape == (5, 3) and matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, labels[MORPHO.nodes].to_numpy(float))
    with pytest.raises(ValueError, match=r"class indices in \[0, 10\)"):
        label_matrix(labels.assign(digit=-1), MORPHO)
