"""The causal layer: SCM order, interventions (descendants follow, everything else is bitwise
unchanged), the released-code variant, the linear closed form, and bad input."""

import pytest
import torch

from cdae.graph import CausalGraph
from cdae.models.causal_layer import CausalLayer

MECHANISMS = ("nonlinear", "released", "linear")
D = 3


def chain() -> CausalGraph:
    return CausalGraph(edges=[("a", "b"), ("b", "c")])


GRAPHS = {
    "pendulum": lambda: CausalGraph.preset("pendulum"),
    "morphomnist": lambda: CausalGraph.preset("morphomnist"),
    "chain": chain,
}


def layer_and_latents(graph: CausalGraph, mechanism: str, batch: int = 5, seed: int = 0):
    torch.manual_seed(seed)
    layer = CausalLayer(graph, D, mechanism, hidden=16)
    u = torch.randn(batch, len(graph) * D)
    with torch.no_grad():
        return layer, u, layer(u)


def changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) True where the rows differ."""
    return (a != b).any(dim=-1)


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
def test_intervening_on_each_root_moves_descendants_only(graph_name, mechanism):
    graph = GRAPHS[graph_name]()
    layer, u, z = layer_and_latents(graph, mechanism)
    for root in graph.roots():
        value = torch.full((D,), 2.5)
        with torch.no_grad():
            z_cf = layer.intervene(u, z, {root: value})
        before, after = layer.blocks(z), layer.blocks(z_cf)
        assert torch.equal(after[root], value.expand(u.shape[0], D))
        children = set(graph.children(root))
        for name in graph.nodes:
            if name == root:
                continue
            if name in children:  # every mechanism reaches the children (the sec-6 trap)
                assert changed(before[name], after[name]).all(), (root, name)
            elif name in graph.descendants(root):  # grandchildren: all but "released"
                moved = changed(before[name], after[name]).all()
                assert moved == (mechanism != "released"), (root, name, mechanism)
            else:
                assert torch.equal(before[name], after[name]), (root, name)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_chain_grandchild_follows_the_paper_but_not_the_released_code(mechanism):
    layer, u, z = layer_and_latents(chain(), mechanism)
    u2 = u.clone()
    u2[:, layer.block_slice("a")] += 1.0  # change the root's noise only
    with torch.no_grad():
        z2 = layer(u2)
    b, b2 = layer.blocks(z), layer.blocks(z2)
    assert changed(b["b"], b2["b"]).all()
    if mechanism == "released":  # z_c = f_c(u_b) + u_c does not see a
        assert torch.equal(b["c"], b2["c"])
    else:  # z_c = f_c(z_b) + u_c does
        assert changed(b["c"], b2["c"]).all()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_roots_are_their_noise_and_children_add_their_noise(mechanism):
    graph = CausalGraph.preset("pendulum")
    layer, u, z = layer_and_latents(graph, mechanism)
    zb, ub = layer.blocks(z), layer.blocks(u)
    for root in graph.roots():
        assert torch.equal(zb[root], ub[root])
    # additive noise: shifting u_j shifts z_j by the same amount and leaves its parents alone
    u2 = u.clone()
    u2[:, layer.block_slice("shadow_length")] += 0.5
    with torch.no_grad():
        z2 = layer(u2)
    delta = layer.blocks(z2)["shadow_length"] - zb["shadow_length"]
    torch.testing.assert_close(delta, torch.full_like(delta, 0.5))
    for name in ("pendulum_angle", "light_angle", "shadow_position"):
        assert torch.equal(layer.blocks(z2)[name], zb[name])


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_empty_and_factual_interventions_reproduce_z(mechanism):
    graph = CausalGraph.preset("causal_circuit")
    layer, u, z = layer_and_latents(graph, mechanism)
    with torch.no_grad():
        assert torch.equal(layer.intervene(u, z, {}), z)
        factual = layer.intervene(u, z, {"arm": layer.blocks(z)["arm"]})
    torch.testing.assert_close(factual, z)


def test_intervention_on_a_child_leaves_its_causes_and_other_roots():
    graph = CausalGraph.preset("morphomnist")
    layer, u, z = layer_and_latents(graph, "nonlinear")
    with torch.no_grad():
        z_cf = layer.intervene(u, z, {"intensity": torch.zeros(u.shape[0], D)})
    thickness = layer.block_slice("thickness")
    assert torch.equal(z_cf[:, thickness], z[:, thickness])
    assert torch.equal(z_cf[:, layer.block_slice("digit")], z[:, layer.block_slice("digit")])
    assert torch.equal(z_cf[:, layer.block_slice("intensity")], torch.zeros(u.shape[0], D))


def test_linear_mechanism_matches_the_closed_form():
    graph = CausalGraph.preset("causal_circuit")  # depth 2: arm -> blue -> red
    layer, u, z = layer_and_latents(graph, "linear")
    n = len(graph)
    w = (layer.weight * layer.mask).detach()
    # z = (I - W^T)^-1 u, applied to each of the d latent dims
    u_nd = u.reshape(-1, n, D)
    expected = torch.linalg.solve(torch.eye(n) - w.T, u_nd)  # (B, n, d)
    torch.testing.assert_close(z, expected.reshape(-1, n * D))


def test_blocks_and_slices_follow_node_order():
    graph = CausalGraph.preset("pendulum")
    layer = CausalLayer(graph, D)
    z = torch.arange(2 * 4 * D, dtype=torch.float32).reshape(2, 4 * D)
    blocks = layer.blocks(z)
    assert list(blocks) == graph.nodes
    for i, name in enumerate(graph.nodes):
        assert layer.block_slice(name) == slice(i * D, (i + 1) * D)
        assert torch.equal(blocks[name], z[:, i * D : (i + 1) * D])


def test_gradients_reach_every_mechanism():
    graph = CausalGraph.preset("causal_circuit")
    layer = CausalLayer(graph, D, "nonlinear")
    layer(torch.randn(4, len(graph) * D)).pow(2).sum().backward()
    assert set(layer.f) == {"1", "2", "3"}  # blue, green, red have parents; arm is a root
    for mlp in layer.f.values():
        assert mlp[0].weight.grad.abs().sum() > 0


def test_bad_input_is_named():
    layer, u, z = layer_and_latents(CausalGraph.preset("morphomnist"), "nonlinear")
    with pytest.raises(ValueError, match="unknown variable 'slant'"):
        layer.intervene(u, z, {"slant": torch.zeros(D)})
    with pytest.raises(ValueError, match=r"do\['thickness'\] must be a latent block"):
        layer.intervene(u, z, {"thickness": torch.zeros(D + 1)})
    with pytest.raises(ValueError, match=r"u must have shape \(B, n\*d\) = \(B, 9\)"):
        layer(torch.zeros(2, 8))
    with pytest.raises(ValueError, match="z must have shape"):
        layer.intervene(u, z[:, :-1], {})
    with pytest.raises(ValueError, match="unknown mechanism"):
        CausalLayer(CausalGraph.preset("morphomnist"), D, "quadratic")
