"""CausalDiffAE (Komanduri et al., ECAI 2024): encoder q(u|x) -> causal layer z = SCM(u) ->
conditional UNet eps_theta(x_t, t, z), trained with a label-aligned prior on z.

    >>> from cdae.graph import CausalGraph
    >>> model = CausalDiffAE(CausalGraph.preset("morphomnist"), ModelConfig.small())
    >>> u, z = model.latents(torch.zeros(2, 1, 28, 28))
    >>> z_cf = model.intervene(u, z, {"thickness": 1.5})      # descendants follow, others stay
    >>> eps = model.eps(torch.zeros(2, 1, 28, 28), torch.tensor([10, 500]), z_cf)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cdae.graph import CausalGraph
from cdae.models.causal_layer import CausalLayer
from cdae.models.config import ModelConfig
from cdae.models.encoder import Encoder, reparameterise
from cdae.models.losses import (
    LabelPrior,
    annealed_gamma,
    check_diffusion,
    check_labels,
    conditioned_rows,
    latent_kl,
    masked_mean,
    mechanism_error,
    objective,
)
from cdae.models.unet import ConditionalEpsModel, NullToken, UNet


class CausalDiffAE(ConditionalEpsModel):
    """The causal diffusion autoencoder over the variables of ``graph``; z = SCM(u) is (B, n*d),
    so ``cond_dim = n * d``.

    ``causal=False`` drops the edges from the latent SCM (z = u): the Diff-AE baseline.
    """

    kind = "causal_diffae"

    def __init__(self, graph: CausalGraph, config: ModelConfig, causal: bool = True) -> None:
        super().__init__()
        self.graph, self.config = graph, config
        n, d = len(graph), config.latent_dim
        latent_graph = graph if causal else CausalGraph(nodes=graph.nodes,
                                                        categorical=graph.categorical)
        self.encoder = Encoder(config.in_channels, config.encoder_channels, n * d,
                               config.encoder_pool)
        self.causal = CausalLayer(latent_graph, d, config.mechanism, config.mechanism_hidden)
        self.prior = LabelPrior(graph, d, config.categorical_mode, config.class_code_scale,
                                aligned=config.prior == "label_aligned")
        self.unet = UNet(config, cond_dim=n * d)
        self.null = NullToken(n * d, config.null_token)
        # a root's u_i is its z_i: its KL is counted once, in kl_z (see losses.latent_kl)
        skip = [not latent_graph.parents(name) and not config.kl_u_on_roots
                for name in graph.nodes]
        self.register_buffer("skip_kl_u", torch.tensor(skip).repeat_interleave(d),
                             persistent=False)
        child = [bool(latent_graph.parents(name)) for name in graph.nodes]
        self.register_buffer("child_dims", torch.tensor(child).repeat_interleave(d),
                             persistent=False)

    # ------------------------------------------------------------------ inference
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(u|x): images (B, C, H, W) in [-1, 1] -> mu, logvar, each (B, n*d)."""
        self.config.check_images(x)
        return self.encoder(x)

    def latents(self, x: torch.Tensor, sample: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Abduction: u = mu(x) (or a sample of q(u|x)), z = SCM(u); each (B, n*d)."""
        mu, logvar = self.encode(x)
        u = reparameterise(mu, logvar, generator) if sample else mu
        return u, self.causal(u)

    # ------------------------------------------------------------------ interventions
    def intervene(self, u: torch.Tensor, z: torch.Tensor,
                  do: Mapping[str, float | torch.Tensor]) -> torch.Tensor:
        """do(z_i = value) with label values (normalised; class index for a categorical
        variable), scalars or (B,) tensors; returns the counterfactual z (B, n*d)."""
        blocks = {name: self.encode_value(name, value).to(z) for name, value in do.items()}
        return self.causal.intervene(u, z, blocks)

    def encode_value(self, name: str, values: float | torch.Tensor) -> torch.Tensor:
        """The latent block (B, d) that means label value(s) ``values`` of variable ``name``."""
        return self.prior.encode_value(name, values)

    def decode_value(self, name: str, block: torch.Tensor) -> torch.Tensor:
        """The label value (B,) a block (B, d) of variable ``name`` encodes."""
        return self.prior.decode_value(name, block)

    def decode_labels(self, z: torch.Tensor) -> torch.Tensor:
        """Label values read off every block of z (B, n*d) -> (B, n), in graph node order."""
        blocks = self.causal.blocks(z)
        return torch.stack([self.decode_value(name, b) for name, b in blocks.items()], dim=-1)

    # ------------------------------------------------------------------ training
    def loss(self, x: torch.Tensor, y: torch.Tensor, diffusion: Any, step: int,
             labelled: torch.Tensor | None = None, generator: torch.Generator | None = None,
             ) -> dict[str, torch.Tensor]:
        """L = E||eps − eps_theta(x_t, t, z~)||² + gamma(step)·[KL(q(u|x)||N(0,I))
        + sum_i KL(q(z_i|x)||p(z_i|y_i))] + lambda·sum_i ||f_i(z_pa(i)) − m_i(y_i)||²
        (z~, v and lambda: see ``cdae.models.losses``).

        Args:
            x: (B, C, H, W) images in [-1, 1]; y: (B, n) normalised labels (class index for a
                categorical variable; anything, even NaN, in unlabelled rows).
            diffusion: a ``GaussianDiffusion`` with ``config.timesteps`` steps.
            step: optimiser step, for the KL anneal.
            labelled: (B,) bool, False for unlabelled rows (weak supervision). Those rows, and
                rows dropped with ``config.cfg_drop_prob``, are decoded from the null token and
                skip both KL terms (nothing else trains the encoder on them, so a KL alone
                would only pull their codes to the prior).
            generator: drives u, t, noise and the drop mask, for reproducible losses.
        Returns:
            scalars ``loss, mse, kl_u, kl_z, mech, gamma`` (see ``cdae.models.losses``).
        """
        self.config.check_images(x)
        y = check_labels(y, self.graph, x.shape[0])
        check_diffusion(diffusion, self.config)
        mu, logvar = self.encoder(x)
        noise = reparameterise(torch.zeros_like(mu), logvar, generator)  # sigma · eps
        u = mu + noise  # u ~ q(u|x)
        z = self.causal(u)  # z_i = f_i(z_pa(i)) + u_i
        scale = self.config.decoder_variance_scale
        z_dec = z if scale == 1.0 else self.causal(mu + scale**0.5 * noise)  # what the UNet sees
        use = conditioned_rows(x.shape[0], labelled, self.config.cfg_drop_prob, x.device,
                               generator)
        cond = self.null.where(use, z_dec)  # null token where the row is unlabelled or dropped
        mse = diffusion.training_loss(lambda x_t, t: self.unet(x_t, t, cond), x,
                                      generator=generator)  # (B,)
        y = torch.where(use[:, None], y, torch.zeros_like(y))  # unlabelled rows: no prior term
        prior_mean = self.prior.mean(y)
        kl_u, kl_z = latent_kl(mu, logvar, u, z, prior_mean, self.skip_kl_u,
                               self.config.label_prior_variance)
        if self.config.kl_reduction == "mean":
            kl_u, kl_z = kl_u / mu.shape[-1], kl_z / mu.shape[-1]
        mech = mechanism_error(u, z, prior_mean, self.child_dims)
        weight = use.float()
        gamma = annealed_gamma(step, self.config.gamma, self.config.gamma_warmup_steps)
        return objective(mse, masked_mean(kl_u, weight), masked_mean(kl_z, weight), gamma,
                         masked_mean(mech, weight), self.config.mechanism_weight)
