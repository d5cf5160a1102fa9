"""The causal graph (DAG) over the labelled variables of a dataset.

``A[i, j] = 1`` means node ``i`` is a direct cause of node ``j``. Node order is the order given by
``nodes`` (or first appearance in ``edges``); every model block and label column follows it.

    >>> g = CausalGraph(edges=[("thickness", "intensity")], nodes=["digit", "thickness",
    ...                                                          "intensity"])
    >>> g.parents("intensity")
    ['thickness']
    >>> g.topological_order()
    ['digit', 'thickness', 'intensity']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


class CausalGraph:
    """A directed acyclic graph over named variables, some of them categorical.

    Args:
        edges: ``(cause, effect)`` pairs.
        nodes: all variables in the order used for labels and latent blocks; optional, needed
            for variables without edges. Names in ``edges`` must appear here when it is given.
        categorical: ``{name: number of classes}`` for discrete variables (e.g. the digit).
    """

    def __init__(
        self,
        edges: Iterable[Sequence[str]] = (),
        nodes: Iterable[str] | None = None,
        categorical: Mapping[str, int] | None = None,
    ) -> None:
        edge_list = [tuple(edge) for edge in edges]
        for edge in edge_list:
            if len(edge) != 2:
                raise ValueError(f"each edge must be a (cause, effect) pair, got {edge!r}")
        if nodes is None:
            order: list[str] = []
            for cause, effect in edge_list:
                order += [name for name in (cause, effect) if name not in order]
        else:
            order = list(nodes)
            duplicates = sorted({name for name in order if order.count(name) > 1})
            if duplicates:
                raise ValueError(f"duplicate node names: {duplicates}")
            unknown = sorted({name for edge in edge_list for name in edge} - set(order))
            if unknown:
                raise ValueError(
                    f"edges mention nodes {unknown} that are not in nodes={order}; "
                    "add them to `nodes` or fix the spelling"
                )
        self_loops = sorted({cause for cause, effect in edge_list if cause == effect})
        if self_loops:
            raise ValueError(f"self-loops are not allowed in a causal DAG: {self_loops}")

        self._nodes = order
        self._index = {name: i for i, name in enumerate(order)}
        adjacency = np.zeros((len(order), len(order)), dtype=np.int64)
        for cause, effect in edge_list:
            adjacency[self._index[cause], self._index[effect]] = 1
        self._adjacency = adjacency

        self.categorical = dict(categorical or {})
        unknown = sorted(set(self.categorical) - set(order))
        if unknown:
            raise ValueError(f"categorical variables {unknown} are not nodes of the graph {order}")
        bad = {name: k for name, k in self.categorical.items() if int(k) < 2}
        if bad:
            raise ValueError(f"a categorical variable needs at least 2 classes, got {bad}")

        self._topological = self._sort_or_raise()

    # ------------------------------------------------------------------ structure
    @property
    def nodes(self) -> list[str]:
        """Variable names in label / latent-block order."""
        return list(self._nodes)

    @property
    def adjacency(self) -> np.ndarray:
        """(n, n) int array, ``A[i, j] = 1`` iff ``nodes[i] -> nodes[j]``."""
        return self._adjacency.copy()

    @property
    def edges(self) -> list[tuple[str, str]]:
        """All ``(cause, effect)`` pairs, in node order."""
        rows, cols = np.nonzero(self._adjacency)
        return [(self._nodes[i], self._nodes[j]) for i, j in zip(rows, cols, strict=True)]

    def __len__(self) -> int:
        return len(self._nodes)

    def index(self, name: str) -> int:
        """Position of ``name`` in :attr:`nodes`."""
        self._check(name)
        return self._index[name]

    def parents(self, name: str) -> list[str]:
        """Direct causes of ``name``, in node order."""
        j = self.index(name)
        return [self._nodes[i] for i in np.flatnonzero(self._adjacency[:, j])]

    def children(self, name: str) -> list[str]:
        """Direct effects of ``name``, in node order."""
        i = self.index(name)
        return [self._nodes[j] for j in np.flatnonzero(self._adjacency[i])]

    def descendants(self, name: str) -> list[str]:
        """Every node reachable from ``name`` (excluding itself), in node order."""
        seen: set[str] = set()
        frontier = self.children(name)
        while frontier:
            node = frontier.pop()
            if node not in seen:
                seen.add(node)
                frontier.extend(self.children(node))
        return [node for node in self._nodes if node in seen]

    def ancestors(self, name: str) -> list[str]:
        """Every node from which ``name`` is reachable (excluding itself), in node order."""
        return [node for node in self._nodes if name in self.descendants(node)]

    def roots(self) -> list[str]:
        """Nodes without parents."""
        return [node for node in self._nodes if not self.parents(node)]

    def topological_order(self) -> list[str]:
        """Nodes so that every cause comes before its effects (ties broken by node order)."""
        return list(self._topological)

    def is_categorical(self, name: str) -> bool:
        self._check(name)
        return name in self.categorical

    def mutilated(self, intervened: Iterable[str]) -> CausalGraph:
        """The graph of do(``intervened``): every edge *into* an intervened node removed, all
        nodes and every other edge kept (Pearl's G with the arrows into X cut)."""
        cut = set(intervened)
        for name in cut:
            self._check(name)
        return CausalGraph([(a, b) for a, b in self.edges if b not in cut], self._nodes,
                           self.categorical)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-python form for configs and checkpoints; inverse of :meth:`from_dict`."""
        return {
            "nodes": self.nodes,
            "edges": [list(edge) for edge in self.edges],
            "categorical": dict(self.categorical),
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> CausalGraph:
        """Build from ``{"nodes": [...], "edges": [[a, b], ...], "categorical": {...}}``
        or from ``{"preset": "morphomnist"}``."""
        if "preset" in spec:
            return cls.preset(spec["preset"])
        return cls(
            edges=spec.get("edges", ()),
            nodes=spec.get("nodes"),
            categorical=spec.get("categorical"),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CausalGraph) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((tuple(self._nodes), tuple(self.edges)))

    def __repr__(self) -> str:
        edges = ", ".join(f"{a}->{b}" for a, b in self.edges)
        return f"CausalGraph(nodes={self._nodes}, edges=[{edges}])"

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str) -> CausalGraph:
        """One of the graphs in :data:`PRESETS` by name."""
        if name not in PRESETS:
            raise ValueError(f"unknown graph preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict(PRESETS[name])

    # ------------------------------------------------------------------ drawing
    def draw(self, ax: Any = None, node_color: str = "#cfe2f3", title: str | None = None,
             intervened: Iterable[str] = (), captions: Mapping[str, str] | None = None) -> Any:
        """Draw the DAG with matplotlib: causes on the left, effects to the right.

        ``intervened`` nodes are drawn highlighted and the edges into them cut (faint, dashed,
        crossed out): the mutilated graph of their do(). ``captions`` adds a line of text under
        a node's name (e.g. its value). Returns the matplotlib ``Axes``.
        """
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyArrowPatch

        if ax is None:
            _, ax = plt.subplots(figsize=(1.6 + 1.8 * self._depth_count(), 1.2 + 0.9 * len(self)))
        done = set(intervened)
        for name in done:
            self._check(name)
        positions = self._layout()
        for cause, effect in self.edges:
            cut = effect in done
            arrow = FancyArrowPatch(
                positions[cause], positions[effect], arrowstyle="-|>", mutation_scale=16,
                shrinkA=28, shrinkB=28, color="#bbbbbb" if cut else "#444444", linewidth=1.4,
                linestyle="--" if cut else "-",
            )
            ax.add_patch(arrow)
            if cut:
                middle = np.mean([positions[cause], positions[effect]], axis=0)
                ax.plot(*middle, marker="x", color="#cc0000", markersize=11, mew=2.5)
        for node, (x, y) in positions.items():
            label = node + (f"\n(categorical, {self.categorical[node]})" if node in self.categorical
                            else "")
            if captions and node in captions:
                label += f"\n{captions[node]}"
            ax.text(x, y, ("do: " if node in done else "") + label, ha="center", va="center",
                    fontsize=10,
                    bbox={"boxstyle": "round,pad=0.5",
                          "facecolor": "#f9cb9c" if node in done else node_color,
                          "edgecolor": "#cc4125" if node in done else "#333333",
                          "linewidth": 2.0 if node in done else 1.0})
        xs = [p[0] for p in positions.values()]
        ys = [p[1] for p in positions.values()]
        ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
        ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
        ax.set_axis_off()
        if title:
            ax.set_title(title)
        return ax

    # ------------------------------------------------------------------ internals
    def _check(self, name: str) -> None:
        if name not in self._index:
            raise ValueError(f"unknown variable {name!r}; the graph's nodes are {self._nodes}")

    def _sort_or_raise(self) -> list[str]:
        """Kahn's algorithm; on a cycle, raise naming the nodes that lie on cycles."""
        in_degree = self._adjacency.sum(axis=0).astype(int)
        ready = [i for i in range(len(self._nodes)) if in_degree[i] == 0]
        order: list[int] = []
        while ready:
            i = ready.pop(0)
            order.append(i)
            for j in np.flatnonzero(self._adjacency[i]):
                in_degree[j] -= 1
                if in_degree[j] == 0:
                    ready.append(int(j))
            ready.sort()
        if len(order) < len(self._nodes):
            stuck = [self._nodes[i] for i in range(len(self._nodes)) if i not in order]
            raise ValueError(f"the graph has a cycle through {stuck}; a causal graph must be a DAG")
        return [self._nodes[i] for i in order]

    def _depths(self) -> dict[str, int]:
        depth: dict[str, int] = {}
        for node in self._topological:
            depth[node] = max((depth[p] + 1 for p in self.parents(node)), default=0)
        return depth

    def _depth_count(self) -> int:
        return max(self._depths().values(), default=0) + 1

    def _layout(self) -> dict[str, tuple[float, float]]:
        depth = self._depths()
        columns: dict[int, list[str]] = {}
        for node in self._nodes:
            columns.setdefault(depth[node], []).append(node)
        positions = {}
        for d, members in columns.items():
            for k, node in enumerate(members):
                positions[node] = (2.2 * d, (len(members) - 1) / 2 - k)
        return positions


#: Graphs of the datasets that ship with the project. A new graph is a dict like these
#: (in a YAML config or in code), never an edit of library code.
PRESETS: dict[str, dict[str, Any]] = {
    "morphomnist": {
        "nodes": ["thickness", "intensity", "digit"],
        "edges": [["thickness", "intensity"]],
        "categorical": {"digit": 10},
    },
    "pendulum": {
        "nodes": ["pendulum_angle", "light_angle", "shadow_length", "shadow_position"],
        "edges": [
            ["pendulum_angle", "shadow_length"],
            ["pendulum_angle", "shadow_position"],
            ["light_angle", "shadow_length"],
            ["light_angle", "shadow_position"],
        ],
    },
    "causal_circuit": {
        "nodes": ["arm", "blue", "green", "red"],
        "edges": [["arm", "blue"], ["arm", "green"], ["arm", "red"], ["blue", "red"],
                  ["green", "red"]],
    },
}
