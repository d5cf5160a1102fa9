"""The optimiser (AdamW) and the learning-rate schedule, a pure function of the step."""

from __future__ import annotations

import math

import torch
from torch import nn

from cdae.config import TrainConfig


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
