"""CausalGraph: structure queries, presets, validation errors, serialisation, drawing."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from cdae import CausalGraph
from cdae.graph import PRESETS


def chain() -> CausalGraph:
    return CausalGraph(edges=[("a", "b"), ("b", "c")], nodes=["a", "b", "c", "lonely"])


def test_adjacency_convention_row_causes_column():
    graph = CausalGraph(edges=[("thickness", "intensity")])
    assert graph.nodes == ["thickness", "intensity"]
    np.testing.assert_array_equal(graph.adjacency, [[0, 1], [0, 0]])


def test_parents_children_descendants_ancestors():
    graph = chain()
    assert graph.parents("c") == ["b"]
    assert graph.children("a") == ["b"]
    assert graph.descendants("a") == ["b", "c"]
    assert graph.ancestors("c") == ["a", "b"]
    assert graph.descendants("lonely") == []
    assert graph.roots() == ["a", "lonely"]


def test_topological_order_puts_causes_first_even_when_nodes_are_listed_backwards():
    graph = CausalGraph(edges=[("a", "b"), ("b", "c")], nodes=["c", "b", "a"])
    order = graph.topological_order()
    assert order == ["a", "b", "c"]
    for cause, effect in graph.edges:
        assert order.index(cause) < order.index(effect)


def test_presets_match_design():
    morpho = CausalGraph.preset("morphomnist")
    assert morpho.parents("intensity") == ["thickness"]
    assert morpho.parents("digit") == [] and morpho.children("digit") == []
    assert morpho.categorical == {"digit": 10}

    pendulum = CausalGraph.preset("pendulum")
    for effect in ("shadow_length", "shadow_position"):
        assert pendulum.parents(effect) == ["pendulum_angle", "light_angle"]

    circuit = CausalGraph.preset("causal_circuit")
    assert circuit.children("arm") == ["blue", "green", "red"]
    assert circuit.parents("red") == ["arm", "blue", "green"]
    assert circuit.topological_order()[-1] == "red"


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"edges": [("a", "b"), ("b", "c"), ("c", "a")]}, ["a", "b", "c"]),
        ({"edges": [("x", "y"), ("y", "x"), ("w", "x")]}, ["x", "y"]),
    ],
)
def test_cycle_is_rejected_naming_the_nodes_on_it(kwargs, names):
    with pytest.raises(ValueError, match="cycle") as info:
        CausalGraph(**kwargs)
    for name in names:
        assert repr(name) in str(info.value)
    assert "'w'" not in str(info.value)


def test_self_loop_and_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="self-loop.*'a'"):
        CausalGraph(edges=[("a", "a")])
    with pytest.raises(ValueError, match="'typo'"):
        CausalGraph(edges=[("a", "typo")], nodes=["a", "b"])
    with pytest.raises(ValueError, match="unknown variable 'nope'"):
        chain().parents("nope")
    with pytest.raises(ValueError, match="categorical"):
        CausalGraph(edges=[("a", "b")], categorical={"c": 3})
    with pytest.raises(ValueError, match="duplicate"):
        CausalGraph(nodes=["a", "a"])
    with pytest.raises(ValueError, match="unknown graph preset"):
        CausalGraph.preset("mnist")


def test_dict_round_trip_and_equality():
    for name in PRESETS:
        graph = CausalGraph.preset(name)
        assert CausalGraph.from_dict(graph.to_dict()) == graph
    assert CausalGraph.from_dict({"preset": "pendulum"}) == CausalGraph.preset("pendulum")
    assert chain() != CausalGraph.preset("pendulum")


def test_draw_places_every_node_left_to_right_by_depth():
    graph = chain()
    ax = graph.draw()
    texts = {t.get_text().split("\n")[0]: t.get_position() for t in ax.texts}
    assert set(texts) == set(graph.nodes)
    assert texts["a"][0] < texts["b"][0] < texts["c"][0]


def test_mutilated_graph_cuts_only_the_edges_into_intervened_nodes():
    graph = CausalGraph.preset("pendulum")
    cut = graph.mutilated(["shadow_length"])
    assert cut.parents("shadow_length") == []
    assert cut.parents("shadow_position") == ["pendulum_angle", "light_angle"]
    assert cut.nodes == graph.nodes
    assert graph.mutilated([]) == graph
    with pytest.raises(ValueError, match="unknown variable 'shadow'"):
        graph.mutilated(["shadow"])


def test_draw_marks_intervened_nodes_and_cut_edges():
    from matplotlib.patches import FancyArrowPatch

    graph = CausalGraph.preset("morphomnist")
    ax = graph.draw(intervened=["intensity"], captions={"thickness": "2.50"})
    texts = [t.get_text() for t in ax.texts]
    assert "do: intensity" in texts and "thickness\n2.50" in texts
    (arrow,) = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert arrow.get_linestyle() == "--"  # thickness -> intensity is cut
    assert len(ax.lines) == 1  # the cross on the cut edge
    plain = graph.draw(intervened=["thickness"])  # a root: nothing to cut
    assert [p.get_linestyle() for p in plain.patches if isinstance(p, FancyArrowPatch)] == ["-"]
    assert not plain.lines
