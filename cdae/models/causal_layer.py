"""The causal layer: a latent structural causal model that turns exogenous noise u into causal
latents z, one block of d dims per variable of the graph, in the graph's node order.

In topological order (roots: z_i = u_i), with the mechanism chosen in the config:

- ``nonlinear`` (the paper, default):  z_j = f_j(concat z_pa(j)) + u_j, f_j a small MLP;
- ``released`` (the authors' code):    z_j = f_j(sum of u_pa(j)) + u_j. The parents' *noise*
  feeds the child, so a change reaches children but not grandchildren (exact for depth-one graphs);
- ``linear`` (CausalVAE):              z_j = sum_i W_ij z_i + u_j, i.e. z = (I - (A o W)^T)^-1 u
  per latent dim, with a learnable weight matrix W masked by the adjacency A.

An intervention do(z_i = c) sets block i, recomputes every descendant j from its (possibly new)
parents with its own u_j kept, and leaves every other block exactly as it was.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from cdae.graph import CausalGraph


class CausalLayer(nn.Module):
    """z = SCM(u) over the blocks of a :class:`CausalGraph`; u, z are (B, n*d)."""

    def __init__(self, graph: CausalGraph, latent_dim: int, mechanism: str = "nonlinear",
                 hidden: int = 32) -> None:
        super().__init__()
        self.graph, self.d, self.mechanism = graph, latent_dim, mechanism
        self.order = [graph.index(name) for name in graph.topological_order()]
        self.parents = [[graph.index(p) for p in graph.parents(name)] for name in graph.nodes]
        self.descendants = [{graph.index(c) for c in graph.descendants(name)}
                            for name in graph.nodes]
        if mechanism == "linear":
            if graph.edges:  # no weights without edges: every parameter gets a gradient
                self.weight = nn.Parameter(0.5 * torch.randn(len(graph), len(graph)))
                self.register_buffer("mask", torch.as_tensor(graph.adjacency, dtype=torch.float32))
        elif mechanism in ("nonlinear", "released"):
            def in_width(pa: list[int]) -> int:  # concat of parent blocks, or their sum
                return latent_dim * len(pa) if mechanism == "nonlinear" else latent_dim

            self.f = nn.ModuleDict({
                str(j): nn.Sequential(nn.Linear(in_width(pa), hidden), nn.SiLU(),
                                      nn.Linear(hidden, latent_dim))
                for j, pa in enumerate(self.parents) if pa
            })
        else:
            raise ValueError(f"unknown mechanism {mechanism!r}; use nonlinear, released or linear")

    # ------------------------------------------------------------------ blocks
    @property
    def width(self) -> int:
        """n * d."""
        return len(self.graph) * self.d

    def block_slice(self, name: str) -> slice:
        """Columns of variable ``name`` in u or z."""
        i = self.graph.index(name)
        return slice(i * self.d, (i + 1) * self.d)

    def blocks(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, n*d) -> {name: (B, d)} in node order."""
        self._check_width(z, "z")
        return dict(zip(self.graph.nodes, z.split(self.d, dim=-1), strict=True))

    # ------------------------------------------------------------------ the SCM
    def mechanism_of(self, j: int, u: list[torch.Tensor], z: list[torch.Tensor]) -> torch.Tensor:
        """f_j applied to the parents of variable j -> (B, d); ``u``, ``z``: lists of (B, d)."""
        pa = self.parents[j]
        if self.mechanism == "nonlinear":
            return self.f[str(j)](torch.cat([z[i] for i in pa], dim=-1))  # f_j(z_pa(j))
        if self.mechanism == "released":
            return self.f[str(j)](torch.stack([u[i] for i in pa]).sum(0))  # f_j(sum_i u_i)
        w = self.weight * self.mask
        return sum(w[i, j] * z[i] for i in pa)  # sum_i W_ij z_i

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """z_j = f_j(parents) + u_j in topological order (roots z_j = u_j): (B, n*d) -> (B, n*d)."""
        self._check_width(u, "u")
        u_blocks = list(u.split(self.d, dim=-1))
        z_blocks = list(u_blocks)
        for j in self.order:
            if self.parents[j]:
                z_blocks[j] = self.mechanism_of(j, u_blocks, z_blocks) + u_blocks[j]
        return torch.cat(z_blocks, dim=-1)

    def intervene(self, u: torch.Tensor, z: torch.Tensor,
                  do: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """do(z_i = block_i): set the blocks, recompute descendants, keep the rest bit for bit.

        Args:
            u: (B, n*d) exogenous noise (abducted, e.g. the encoder mean).
            z: (B, n*d) factual latents, ``self(u)``.
            do: {name: block} with blocks of shape (B, d) or (d,). To turn label values into
                blocks use the model's ``encode_value`` (or ``CausalDiffAE.intervene``).
        Returns:
            (B, n*d) counterfactual latents.
        """
        self._check_width(u, "u")
        self._check_width(z, "z")
        targets = {self.graph.index(name): self._as_block(name, value, z)
                   for name, value in do.items()}
        affected = set().union(*(self.descendants[i] for i in targets))
        u_blocks = list(u.split(self.d, dim=-1))
        z_blocks = list(z.split(self.d, dim=-1))
        source = list(u_blocks)  # "released": an intervened parent feeds its new value
        for j, block in targets.items():
            z_blocks[j] = source[j] = block
        for j in self.order:
            if j in affected and j not in targets:
                z_blocks[j] = self.mechanism_of(j, source, z_blocks) + u_blocks[j]
        return torch.cat(z_blocks, dim=-1)

    # ------------------------------------------------------------------ checks
    def _check_width(self, x: torch.Tensor, name: str) -> None:
        if x.dim() != 2 or x.shape[1] != self.width:
            raise ValueError(f"{name} must have shape (B, n*d) = (B, {self.width}) for "
                             f"{len(self.graph)} variables x {self.d} dims, got {tuple(x.shape)}")

    def _as_block(self, name: str, value: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        value = torch.as_tensor(value, dtype=z.dtype, device=z.device)
        if value.shape not in {(self.d,), (1, self.d), (z.shape[0], self.d)}:
            raise ValueError(
                f"do[{name!r}] must be a latent block of shape ({z.shape[0]}, {self.d}) or "
                f"({self.d},), got {tuple(value.shape)}; convert label values with "
                "model.encode_value(name, values) or use model.intervene"
            )
        return value.expand(z.shape[0], self.d)
