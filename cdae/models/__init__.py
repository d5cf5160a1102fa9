"""Models: CausalDiffAE and its baselines, all built from a ``CausalGraph`` and a ``ModelConfig``.

    >>> from cdae.graph import CausalGraph
    >>> model = build_model(CausalGraph.preset("pendulum"), ModelConfig.small(96, 4))
    >>> spec = model_spec(model)            # plain data: kind, graph, config
    >>> same = model_from_spec(spec)        # the same architecture (load the state dict after)

Where things are: the causal layer in ``causal_layer.py``, the UNet in ``unet.py``, the encoder
in ``encoder.py``, the objective's pieces in ``losses.py``, the model in ``causal_diffae.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from cdae.diffusion import GaussianDiffusion
from cdae.graph import CausalGraph
from cdae.models.baselines import DiffAE, LabelConditionalDDIM
from cdae.models.causal_diffae import CausalDiffAE
from cdae.models.causal_layer import CausalLayer
from cdae.models.config import ModelConfig
from cdae.models.encoder import Encoder
from cdae.models.losses import LabelPrior, annealed_gamma
from cdae.models.unet import UNet

#: kind -> model class; every class takes (graph, config).
MODELS: dict[str, type[nn.Module]] = {
    "causal_diffae": CausalDiffAE,
    "diffae": DiffAE,
    "label_ddim": LabelConditionalDDIM,
}


def build_model(graph: CausalGraph, config: ModelConfig, kind: str = "causal_diffae") -> nn.Module:
    """A fresh model of ``kind`` ("causal_diffae", "diffae" or "label_ddim")."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {sorted(MODELS)}")
    return MODELS[kind](graph, config)


def build_model_and_diffusion(graph: CausalGraph, config: ModelConfig,
                              kind: str = "causal_diffae") -> tuple[nn.Module, GaussianDiffusion]:
    """:func:`build_model` and the diffusion process of its config (schedule, timesteps)."""
    return build_model(graph, config, kind), GaussianDiffusion(config.schedule, config.timesteps)


def model_spec(model: nn.Module) -> dict[str, Any]:
    """What rebuilds ``model``'s architecture: {"kind", "graph", "config"} as plain data."""
    return {"kind": model.kind, "graph": model.graph.to_dict(), "config": model.config.to_dict()}


def model_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Inverse of :func:`model_spec` (fresh weights; load a state dict afterwards)."""
    return build_model(CausalGraph.from_dict(spec["graph"]), ModelConfig.from_dict(spec["config"]),
                       spec["kind"])


__all__ = [
    "MODELS", "CausalDiffAE", "CausalLayer", "DiffAE", "Encoder", "LabelConditionalDDIM",
    "LabelPrior", "ModelConfig", "UNet", "annealed_gamma", "build_model",
    "build_model_and_diffusion", "model_from_spec", "model_spec",
]
