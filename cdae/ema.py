"""Exponential moving average (EMA) of a model's weights, the copy used for sampling."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """Keeps ``shadow = d · shadow + (1 − d) · weights`` after every optimiser step.

    The decay warms up, d(n) = min(decay, (1 + n) / (10 + n)) after n updates, so a short run's
    EMA is not dominated by the random initialisation. Buffers are copied, not averaged.

    Args:
        model: the trained module (unwrapped: not DDP or compiled).
        decay: the final decay, e.g. 0.999.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self._source: nn.Module | None = None
        self._pairs: tuple[list[torch.Tensor], ...] = ()

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step from ``model``'s current weights."""
        if model is not self._source:  # tensor lists cached: no module walk per step
            self._source, self._pairs = model, _tensor_lists(self.shadow, model)
        shadow, live, shadow_buffers, live_buffers = self._pairs
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(shadow, live, 1.0 - d)  # shadow += (1 − d)(live − shadow)
        if shadow_buffers:
            torch._foreach_copy_(shadow_buffers, live_buffers)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.shadow.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shadow.load_state_dict(state["model"])
        self.updates = int(state["updates"])


def _tensor_lists(shadow: nn.Module, model: nn.Module) -> tuple[list[torch.Tensor], ...]:
    """(shadow params, live params, shadow buffers, live buffers), floating-point params only."""
    pairs = [(s, p.detach()) for s, p in zip(shadow.parameters(), model.parameters(), strict=True)
             if p.dtype.is_floating_point]
    buffers = list(zip(shadow.buffers(), model.buffers(), strict=True))
    return ([s for s, _ in pairs], [p for _, p in pairs], [s for s, _ in buffers],
            [b for _, b in buffers])
