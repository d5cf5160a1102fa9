"""Latent-space tools on a tiny (untrained, perturbed) model: codes, edits, traversals,
mechanism curves, PCA."""

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import make_tiny_cf, tiny_normalizer

from cdae import CausalGraph
from cdae.data.datasets import CausalImageDataset
from cdae.data.images import to_unit_range
from cdae.latents import (
    block_signal_to_noise,
    collect_latents,
    dimension_names,
    mechanism_response,
    pca,
    set_block,
    traverse,
)

GRAPH = CausalGraph.preset("morphomnist")
NORMALIZER = tiny_normalizer(GRAPH)


def make(kind="causal_diffae", seed=0):
    return make_tiny_cf(kind, "morphomnist", seed)


@pytest.fixture(scope="module")
def cf():
    return make()


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(0)
    n = 10
    labels = pd.DataFrame({"thickness": rng.uniform(1, 4, n), "intensity": rng.uniform(70, 250, n),
                           "digit": rng.integers(0, 10, n), "extra": np.arange(n)})
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    return CausalImageDataset(images, labels, GRAPH, normalizer=NORMALIZER)


@pytest.fixture(scope="module")
def x(dataset):
    return to_unit_range(dataset.images_uint8[:2])


def test_collect_latents_matches_encode_in_batches(cf, dataset):
    codes = collect_latents(cf, dataset, n=7, batch_size=3)
    u, z = cf.encode(to_unit_range(dataset.images_uint8[:7]))
    assert codes.u.shape == codes.z.shape == (7, 12)
    torch.testing.assert_close(codes.u, u, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(codes.z, z, rtol=1e-5, atol=1e-5)
    assert list(codes.labels.columns) == GRAPH.nodes  # extra columns dropped, graph order
    pd.testing.assert_frame_equal(codes.labels, dataset.labels_natural[GRAPH.nodes].iloc[:7])
    assert len(collect_latents(cf, dataset).z) == len(dataset)  # n=None: everything


@pytest.mark.parametrize("kwargs, message", [(dict(n=0), "n=0"), (dict(n=11), "n=11"),
                                             (dict(batch_size=0), "batch_size")])
def test_collect_latents_rejects_bad_sizes(cf, dataset, kwargs, message):
    with pytest.raises(ValueError, match=message):
        collect_latents(cf, dataset, **kwargs)


def test_collect_latents_rejects_other_graph_and_models_without_encoder(cf, dataset):
    other = CausalImageDataset(dataset.images_uint8[:, 0].numpy(),
                               dataset.labels_natural.rename(columns={"digit": "label"}),
                               CausalGraph([("thickness", "intensity")], nodes=[
                                   "thickness", "intensity", "label"],
                                   categorical={"label": 10}))
    with pytest.raises(ValueError, match="variables"):
        collect_latents(cf, other)
    with pytest.raises(ValueError, match="no encoder"):
        collect_latents(make("label_ddim"), dataset)


def test_dimension_names_follow_the_blocks():
    assert dimension_names(GRAPH, 2) == ["thickness[0]", "thickness[1]", "intensity[0]",
                                         "intensity[1]", "digit[0]", "digit[1]"]


def test_set_block_changes_one_block_where_do_also_moves_the_child(cf, x):
    u, z = cf.encode(x)
    edited = set_block(cf, z, "thickness", 4.0)
    done = cf.intervene(u, z, {"thickness": 4.0})
    blocks = {name: cf.model.causal.block_slice(name) for name in GRAPH.nodes}
    torch.testing.assert_close(edited[:, blocks["thickness"]], done[:, blocks["thickness"]])
    assert torch.equal(edited[:, blocks["intensity"]], z[:, blocks["intensity"]])  # not recomputed
    assert not torch.allclose(done[:, blocks["intensity"]], z[:, blocks["intensity"]])
    assert torch.equal(edited[:, blocks["digit"]], z[:, blocks["digit"]])
    np.testing.assert_allclose(cf.to_frame(cf.read_labels(edited))["thickness"], 4.0, atol=1e-4)
    with pytest.raises(ValueError, match="unknown variable"):
        set_block(cf, z, "colour", 1.0)


def test_traverse_propagates_or_edits_and_reuses_the_inversion(cf, x):
    values = [1.5, 3.0, 4.5]
    walk = traverse(cf, x, "thickness", values, steps=2)
    assert walk.images.shape == (2, 3, 1, 28, 28)
    assert walk.images.abs().max() <= 1
    assert walk.labels[["sample", "value"]].values.tolist() == [
        [s, v] for s in (0, 1) for v in values]
    np.testing.assert_allclose(walk.labels["thickness"], walk.labels["value"], atol=1e-4)
    factual = cf.to_frame(cf.read_labels(cf.encode(x)[1]))
    edit = traverse(cf, x, "thickness", values, steps=2, propagate=False)
    for b in (0, 1):  # edit: the child keeps its factual value; do(): it follows its mechanism
        rows = edit.labels["sample"] == b
        np.testing.assert_allclose(edit.labels.loc[rows, "intensity"],
                                   factual.loc[b, "intensity"], rtol=1e-5)
        assert walk.labels.loc[walk.labels["sample"] == b, "intensity"].nunique() == 3
    assert not torch.equal(walk.images, edit.images)
    # the same inversion passed in gives the same images; decoding is deterministic
    x_T = cf.abduct_noise(x, cf.encode(x)[1], steps=2)
    again = traverse(cf, x, "thickness", values, steps=2, x_T=x_T)
    torch.testing.assert_close(again.images, walk.images)


def test_traverse_a_categorical_variable_and_bad_input(cf, x):
    walk = traverse(cf, x[:1], "digit", [0, 7], steps=2)
    assert walk.labels["digit"].tolist() == [0, 7]
    with pytest.raises(ValueError, match="empty"):
        traverse(cf, x, "digit", [], steps=2)
    with pytest.raises(ValueError, match="class index"):
        traverse(cf, x, "digit", [2.5], steps=2)
    with pytest.raises(ValueError, match="x_T"):
        traverse(cf, x, "digit", [1], steps=2, x_T=torch.zeros(1, 1, 28, 28))


def test_mechanism_response_averages_do_over_rows_and_is_flat_for_non_descendants(cf, dataset):
    codes = collect_latents(cf, dataset)
    grid = [1.0, 2.5, 4.0]
    curve = mechanism_response(cf, codes.u, codes.z, "thickness", "intensity", grid)
    assert list(curve.columns) == ["value", "mean", "sd", "q05", "q95"]
    expected = cf.to_frame(cf.read_labels(cf.intervene(codes.u, codes.z, {"thickness": 4.0})))
    np.testing.assert_allclose(curve["mean"].iloc[2], expected["intensity"].mean(), rtol=1e-6)
    assert curve["mean"].nunique() == 3 and (curve["q05"] <= curve["q95"]).all()
    reverse = mechanism_response(cf, codes.u, codes.z, "intensity", "thickness", [80, 240])
    factual = cf.to_frame(cf.read_labels(codes.z))["thickness"]
    np.testing.assert_allclose(reverse["mean"], factual.mean(), rtol=1e-6)  # cause ignores do
    with pytest.raises(ValueError, match="unknown variable"):
        mechanism_response(cf, codes.u, codes.z, "thickness", "colour", grid)


def test_pca_finds_the_dominant_direction():
    rng = np.random.default_rng(0)
    direction = np.array([3.0, 4.0, 0.0]) / 5.0
    codes = 10 * rng.normal(size=(500, 1)) * direction + 0.1 * rng.normal(size=(500, 3)) + 7.0
    scores, ratio = pca(torch.as_tensor(codes), k=2)
    assert scores.shape == (500, 2)
    assert ratio[0] > 0.99 and ratio[0] >= ratio[1] and ratio.sum() <= 1 + 1e-12
    centred = codes - codes.mean(axis=0)
    assert abs(np.corrcoef(scores[:, 0], centred @ direction)[0, 1]) > 0.999
    np.testing.assert_allclose(scores.mean(axis=0), 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="k=4"):
        pca(codes, k=4)


def test_block_signal_to_noise_is_spread_of_the_mean_over_the_posterior_sd(cf, dataset):
    table = block_signal_to_noise(cf, dataset, n=len(dataset), batch_size=7)
    assert list(table["variable"]) == cf.graph.nodes
    x = to_unit_range(dataset.images_uint8[: len(dataset)])
    mu, logvar = cf.model.encode(x)
    d = cf.model.config.latent_dim
    for i, row in table.iterrows():
        block = slice(i * d, (i + 1) * d)
        sd = (0.5 * logvar[:, block]).exp().mean().item()
        spread = mu[:, block].std(dim=0).mean().item()
        assert row["posterior_sd"] == pytest.approx(sd, rel=1e-5)
        assert row["spread_u"] == pytest.approx(spread, rel=1e-5)
        assert row["snr"] == pytest.approx(spread / sd, rel=1e-5)
        scale = cf.model.config.decoder_variance_scale
        assert row["decoder_snr"] == pytest.approx(spread / (scale**0.5 * sd), rel=1e-5)
    z = cf.model.causal(mu)
    child = cf.graph.nodes.index("intensity")
    assert table.loc[child, "spread_z"] == pytest.approx(
        z[:, child * d:(child + 1) * d].std(dim=0).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="n=0"):
        block_signal_to_noise(cf, dataset, n=0)
