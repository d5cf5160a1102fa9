"""The optimiser (AdamW), the learning-rate schedule (a pure function of the step) and the
gradient clip, global or per module."""

from __future__ import annotations

import math

import torch
from torch import nn

from cdae.config import TrainConfig

#: Parameter groups whose gradient norms are logged (and clipped apart with ``grad_clip_by:
#: module``): the decoder (the UNet and the null token it is fed) and everything else (encoder,
#: causal layer, prior). Empty groups (the label DDIM has no latent part) are kept, with norm 0.
GRAD_GROUPS = ("decoder", "latent")
_DECODER_PREFIXES = ("unet.", "null.")


def lr_at(step: int, train: TrainConfig) -> float:
    """Learning rate of optimiser step ``step`` (0-based).

    ``lr(s) = lr · min(1, (s + 1) / warmup) · c(s)``, with ``c = 1`` (constant) or
    ``c(s) = r + (1 − r) · ½ (1 + cos(π · s / steps))`` (cosine to ``r = final_lr_ratio``).
    Being a function of the step alone, it needs no state to resume.
    """
    warm = min(1.0, (step + 1) / train.warmup) if train.warmup > 0 else 1.0
    decay = 1.0
    if train.lr_schedule == "cosine":
        progress = min(1.0, step / train.steps)
        r = train.final_lr_ratio
        decay = r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return train.lr * warm * decay


def make_optimizer(model: nn.Module, train: TrainConfig,
                   device: torch.device) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; the fused kernel on CUDA, foreach elsewhere."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device.type == "cuda"
    return torch.optim.AdamW(
        params, lr=lr_at(0, train), betas=tuple(train.betas), weight_decay=train.weight_decay,
        fused=fused, foreach=None if fused else True,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def gradient_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The trainable parameters of ``model`` split into :data:`GRAD_GROUPS`."""
    groups: dict[str, list[nn.Parameter]] = {name: [] for name in GRAD_GROUPS}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups["decoder" if name.startswith(_DECODER_PREFIXES) else "latent"].append(param)
    return groups


def clip_gradients(groups: dict[str, list[nn.Parameter]], max_norm: float | None,
                   by: str = "global") -> torch.Tensor:
    """Clip the gradients in place; return each group's norm before clipping, (len(groups),).

    ``by="global"`` scales all gradients by one factor, min(1, max_norm / global norm), so a
    large gradient in one group (the KL's, on the encoder) shrinks every other group's too.
    ``by="module"`` clips each group to ``max_norm`` on its own: the decoder's update then does
    not depend on the size of the latent terms. ``max_norm=None`` only measures. No GPU sync.
    """
    grads = [[p.grad for p in params if p.grad is not None] for params in groups.values()]
    zero = torch.zeros((), device=next((g[0].device for g in grads if g), torch.device("cpu")))
    norms = torch.stack([torch.linalg.vector_norm(torch.stack(torch._foreach_norm(g)))
                         if g else zero for g in grads])
    if max_norm is None:
        return norms
    if by == "module":
        factors = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    elif by == "global":
        total = torch.linalg.vector_norm(norms)
        factors = (max_norm / (total + 1e-6)).clamp(max=1.0).expand(len(grads))
    else:
        raise ValueError(f"grad_clip_by must be 'global' or 'module', got {by!r}")
    for factor, g in zip(factors, grads, strict=True):
        if g:
            torch._foreach_mul_(g, factor)
    return norms
