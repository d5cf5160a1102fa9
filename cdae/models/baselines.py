"""The paper's baselines, with the same UNet and the same ``eps`` / ``loss`` signatures as
CausalDiffAE so that the trainer and the samplers treat every model alike.

- :class:`DiffAE`: the same encoder, no causal layer (z = u). ``config.prior`` picks the prior on
  z: ``standard`` N(0, I) (Diff-AE) or ``label_aligned`` (Diff-AE with label alignment).
- :class:`LabelConditionalDDIM`: no encoder; the UNet is conditioned on the labels themselves,
  z = [continuous labels, one-hot of each categorical label] (the UNet's Linear(z) embeds it).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cdae.graph import CausalGraph
from cdae.models.causal_diffae import CausalDiffAE
from cdae.models.config import ModelConfig
from cdae.models.losses import check_diffusion, check_labels, conditioned_rows, objective
from cdae.models.unet import ConditionalEpsModel, NullToken, UNet


class DiffAE(CausalDiffAE):
    """Diff-AE: CausalDiffAE with an edgeless latent graph, so z = u and do() moves one block."""

    kind = "diffae"

    def __init__(self, graph: CausalGraph, config: ModelConfig) -> None:
        super().__init__(graph, config, causal=False)


class LabelConditionalDDIM(ConditionalEpsModel):
    """eps_theta(x_t, t, z(y)) with z(y) = :meth:`label_features` of the labels: one column per
    continuous variable, K per categorical one (``cond_dim``); the null token enables guidance."""

    kind = "label_ddim"

    def __init__(self, graph: CausalGraph, config: ModelConfig) -> None:
        super().__init__()
        self.graph, self.config = graph, config
        width = sum(graph.categorical.get(name, 1) for name in graph.nodes)
        self.unet = UNet(config, cond_dim=width)
        self.null = NullToken(width, config.null_token)

    def label_features(self, y: torch.Tensor) -> torch.Tensor:
        """z(y): labels (B, n) in node order -> (B, cond_dim), categorical ones one-hot."""
        y = check_labels(y, self.graph, y.shape[0])
        columns = []
        for i, name in enumerate(self.graph.nodes):
            if self.graph.is_categorical(name):
                k = self.graph.categorical[name]
                columns.append(F.one_hot(y[:, i].long(), k).to(y.dtype))
            else:
                columns.append(y[:, i : i + 1])
        return torch.cat(columns, dim=-1)

    def loss(self, x: torch.Tensor, y: torch.Tensor, diffusion: Any, step: int,
             labelled: torch.Tensor | None = None, generator: torch.Generator | None = None,
             ) -> dict[str, torch.Tensor]:
        """E||eps − eps_theta(x_t, t, z(y))||²; unlabelled or dropped rows use the null token.
        ``kl_u`` and ``kl_z`` are 0 (there is no encoder); ``step`` is unused."""
        self.config.check_images(x)
        check_labels(y, self.graph, x.shape[0])
        check_diffusion(diffusion, self.config)
        use = conditioned_rows(x.shape[0], labelled, self.config.cfg_drop_prob, x.device,
                               generator)
        y = torch.where(use[:, None], y.float(), torch.zeros_like(y, dtype=torch.float32))
        cond = self.null.where(use, self.label_features(y))
        mse = diffusion.training_loss(lambda x_t, t: self.unet(x_t, t, cond), x,
                                      generator=generator)
        zero = mse.new_zeros(())
        return objective(mse, zero, zero, 0.0)
