"""The pieces of the CausalDiffAE objective (assembled in ``CausalDiffAE.loss``):

    L = E ||eps - eps_theta(x_t, t, z~)||²
        + gamma(step) · [ KL(q(u|x) || N(0, I)) + sum_i KL(q(z_i|x) || p(z_i | y_i)) ]
        + lambda · sum_{i not a root} ||f_i(z_pa(i)) - m_i(y_i)||²

with the label-aligned prior p(z_i | y_i) = N(m_i(y_i), v·I): m_i(y) = y·1_d for a continuous
variable (normalised label), a class code for a categorical one. The same m_i turns a label value
into the latent block that means it (``encode_value``) and back (``decode_value``).

Scales: each KL is summed over latent dims (``kl_reduction="mean"`` divides it by n·d) and
averaged over the samples whose z reaches the decoder; the diffusion term is averaged over pixels
and samples (as in the released code).

Deviations from the paper's literal formula, all ``ModelConfig`` knobs whose paper values are
v = 1, lambda = 0, z~ = z. With them, nothing pays for a sharp posterior: the KL pulls every
posterior sd to 1, the decoder sees a child's block (whose signal is only the residual of its
mechanism) as noise, and learns to ignore it. So:

* ``label_prior_variance`` v < 1: each block carries its label sharply (signal-to-noise ~1/sqrt v);
* ``mechanism_weight`` lambda fits each f_i to the labelled data directly, so u_i stays the
  residual of the mechanism and a do() on a parent propagates the mechanism's effect;
* ``decoder_variance_scale`` s: the decoder is fed z~ = SCM(mu + sqrt(s)·sigma·eps) while the KL
  uses the full sample (the released code's choice is s = 0.001).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cdae.graph import CausalGraph
from cdae.models.config import ModelConfig


def annealed_gamma(step: int, gamma: float, warmup_steps: int) -> float:
    """KL weight at ``step``: gamma · min(1, step / warmup_steps), or gamma when warmup is 0."""
    if warmup_steps <= 0:
        return float(gamma)
    return float(gamma) * min(1.0, max(step, 0) / warmup_steps)


def objective(mse: torch.Tensor, kl_u: torch.Tensor, kl_z: torch.Tensor,
              gamma: float, mech: torch.Tensor | None = None, mechanism_weight: float = 0.0,
              ) -> dict[str, torch.Tensor]:
    """The scalars a model's ``loss`` returns:
    loss = mean(mse) + gamma · (kl_u + kl_z) + mechanism_weight · mech."""
    mse = mse.mean()
    mech = torch.zeros_like(mse) if mech is None else mech
    loss = mse + gamma * (kl_u + kl_z) + mechanism_weight * mech
    return {"loss": loss, "mse": mse, "kl_u": kl_u, "kl_z": kl_z, "mech": mech,
            "gamma": torch.full_like(mse, gamma)}  # no host-to-device copy


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, prior_mean: torch.Tensor | float = 0.0,
                prior_variance: float = 1.0) -> torch.Tensor:
    """Elementwise KL(N(mu, exp(logvar)) || N(m, v)) = ½((σ² + (mu − m)²)/v − 1 − log(σ²/v))."""
    log_v = math.log(prior_variance)
    return 0.5 * ((logvar.exp() + (mu - prior_mean) ** 2) / prior_variance - 1.0 - logvar + log_v)


def masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum_b w_b v_b / max(1, sum_b w_b): the mean over the rows that count, (B,) -> scalar."""
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def conditioned_rows(batch: int, labelled: torch.Tensor | None, drop_prob: float,
                     device: torch.device, generator: torch.Generator | None = None,
                     ) -> torch.Tensor:
    """(B,) bool: rows whose z conditions the decoder. Unlabelled rows, and labelled rows dropped
    with probability ``drop_prob`` (classifier-free training), get the null token instead."""
    keep = torch.ones(batch, dtype=torch.bool, device=device)
    if labelled is not None:
        if labelled.shape != (batch,):
            raise ValueError(f"labelled must be a (B,) = ({batch},) bool mask, got "
                             f"{tuple(labelled.shape)}")
        keep = labelled.to(device=device, dtype=torch.bool)
    if drop_prob > 0:
        source = generator.device if generator is not None else device
        drop = torch.rand(batch, generator=generator, device=source).to(device) < drop_prob
        keep = keep & ~drop
    return keep


def check_labels(y: torch.Tensor, graph: CausalGraph, batch: int) -> torch.Tensor:
    """Raise unless y is (B, n) with one column per graph node; return it as float."""
    if y.dim() != 2 or y.shape != (batch, len(graph)):
        raise ValueError(f"labels y must have shape (B, n) = ({batch}, {len(graph)}), one column "
                         f"per variable {graph.nodes}, got {tuple(y.shape)}")
    return y.float()


def check_diffusion(diffusion: Any, config: ModelConfig) -> None:
    """The diffusion must be the one the config describes (same schedule and T)."""
    got = (getattr(diffusion, "schedule", None), getattr(diffusion, "timesteps", None))
    if got != (config.schedule, config.timesteps):
        raise ValueError(f"the diffusion has (schedule, timesteps) = {got} but the model config "
                         f"says ({config.schedule!r}, {config.timesteps}); build it with "
                         "GaussianDiffusion(config.schedule, config.timesteps)")


class LabelPrior(nn.Module):
    """Prior means m_i(y_i) of the label-aligned prior, and the value <-> block conversions.

    Continuous variable: m(y) = y·1_d, value of a block = mean over its d dims.
    Categorical with K classes, ``block`` mode: fixed codes (a buffer): for d >= K the scaled
    one-hot code_k = s·e_k, else K well-spread random directions of norm s from a fixed seed;
    ``embedding`` mode: learned codes (K, d). Value of a block = index of the nearest code.
    ``standard`` prior: m = 0 for every variable and the blocks carry no label meaning.
    """

    def __init__(self, graph: CausalGraph, latent_dim: int, categorical_mode: str = "block",
                 code_scale: float = 3.0, aligned: bool = True) -> None:
        super().__init__()
        self.graph, self.d, self.aligned = graph, latent_dim, aligned
        learned = categorical_mode == "embedding" and aligned  # standard prior: codes unused
        self.codes = nn.ParameterDict() if learned else None
        for name, k in graph.categorical.items():
            codes = class_codes(k, latent_dim, code_scale)
            if self.codes is not None:
                self.codes[str(graph.index(name))] = nn.Parameter(codes)
            else:
                self.register_buffer(f"codes_{graph.index(name)}", codes)

    def class_codes(self, name: str) -> torch.Tensor:
        """(K, d) codes of a categorical variable."""
        i = str(self.graph.index(name))
        return self.codes[i] if self.codes is not None else getattr(self, f"codes_{i}")

    def encode_value(self, name: str, values: torch.Tensor | float) -> torch.Tensor:
        """Label values (B,) or a scalar (normalised; class index if categorical) -> (B, d)."""
        self._require_aligned()
        values = torch.as_tensor(values).reshape(-1)
        if self.graph.is_categorical(name):
            codes = self.class_codes(name)
            k = codes.shape[0]
            if values.numel() and (values.min() < 0 or values.max() > k - 1):
                raise ValueError(f"{name} is categorical with classes 0..{k - 1}, got values "
                                 f"in [{values.min().item()}, {values.max().item()}]")
            return codes[values.to(codes.device).long()]  # code_k
        return values.float()[:, None].expand(-1, self.d)  # y·1_d

    def decode_value(self, name: str, block: torch.Tensor) -> torch.Tensor:
        """(B, d) block -> (B,) value: block mean, or nearest class code (as float)."""
        self._require_aligned()
        if self.graph.is_categorical(name):
            return torch.cdist(block, self.class_codes(name).to(block)).argmin(-1).float()
        return block.mean(dim=-1)

    def mean(self, y: torch.Tensor) -> torch.Tensor:
        """Prior means for labels y (B, n) -> (B, n*d)."""
        if not self.aligned:
            return y.new_zeros(y.shape[0], len(self.graph) * self.d)
        blocks = []
        for i, name in enumerate(self.graph.nodes):
            if self.graph.is_categorical(name):
                blocks.append(self.class_codes(name)[y[:, i].long()])
            else:
                blocks.append(y[:, i : i + 1].expand(-1, self.d))
        return torch.cat(blocks, dim=-1)

    def _require_aligned(self) -> None:
        if not self.aligned:
            raise ValueError("this model was trained with prior='standard': its latent blocks "
                             "are not aligned with label values, so values cannot be converted; "
                             "intervene with latent blocks (model.causal.intervene) instead")


def class_codes(classes: int, dim: int, scale: float, seed: int = 0, tries: int = 64,
                ) -> torch.Tensor:
    """Fixed (K, d) class codes of norm ``scale``: scaled one-hot if d >= K, else the most spread
    (largest minimum pairwise distance) of ``tries`` sets of random unit directions."""
    if dim >= classes:
        return scale * torch.eye(classes, dim)
    generator = torch.Generator().manual_seed(seed)
    best, best_gap = None, -1.0
    for _ in range(tries):
        codes = torch.randn(classes, dim, generator=generator)
        codes = scale * codes / codes.norm(dim=-1, keepdim=True)
        gap = torch.pdist(codes).min().item()
        if gap > best_gap:
            best, best_gap = codes, gap
    return best


def latent_kl(mu: torch.Tensor, logvar: torch.Tensor, u: torch.Tensor, z: torch.Tensor,
              prior_mean: torch.Tensor, skip_u: torch.Tensor, prior_variance: float = 1.0,
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample KL terms (B,), (B,) of the objective.

    kl_u = KL(q(u|x) || N(0, I)) summed over the dims where ``skip_u`` is False (see below);
    kl_z = sum_i KL(q(z_i | z_pa(i), x) || N(m_i, v I)).

    q(z_i | z_pa(i), x) = N(f_i(z_pa(i)) + mu_i, σ_i²) exactly, because u_i is independent of the
    parents. Its mean is z_i − u_i + mu_i with z computed from the reparameterised sample u, so
    the sum over i is a one-sample unbiased estimate of KL(q(z|x) || prod_i p(z_i|y_i)) for the
    whole autoregressive q(z|x). (The released code instead uses z from mu with unit variance.)

    ``skip_u`` (n*d,) bool marks the dims of root variables, where u_i and z_i are one variable:
    it is counted once, against its label prior (both terms would pull its mean to y/2). An
    all-False mask applies N(0, I) to every block, as the paper's formula reads literally.
    """
    kl_u = gaussian_kl(mu, logvar).masked_fill(skip_u, 0.0).sum(-1)
    z_mean = z - u + mu  # f_i(z_pa(i)) + mu_i
    kl_z = gaussian_kl(z_mean, logvar, prior_mean, prior_variance).sum(-1)
    return kl_u, kl_z


def mechanism_error(u: torch.Tensor, z: torch.Tensor, prior_mean: torch.Tensor,
                    child: torch.Tensor) -> torch.Tensor:
    """Per-sample (B,) supervised mechanism term sum_{i child} ||f_i(z_pa(i)) − m_i(y_i)||².

    z − u is what the mechanisms add to each block (0 on roots), so on the dims of non-root
    variables (``child``, (n*d,) bool) it is f_i(z_pa(i)), compared with the block m_i(y_i)
    that the label means: the causal layer learns the SCM from the labelled data.
    """
    return ((z - u - prior_mean) ** 2).masked_fill(~child, 0.0).sum(-1)
