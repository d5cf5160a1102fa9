"""Load a trained model from a checkpoint, for notebooks, sampling and evaluation."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import torch
from torch import nn

from cdae.checkpoint import CheckpointError, load_checkpoint
from cdae.config import ExperimentConfig
from cdae.diffusion import GaussianDiffusion
from cdae.graph import CausalGraph
from cdae.train.build import build_model


class LoadedModel(NamedTuple):
    """What :func:`load_model` returns; unpacks as ``model, diffusion, normalizer, graph,
    config``."""

    model: nn.Module
    diffusion: GaussianDiffusion
    normalizer: Any  # cdae.data.datasets.LabelNormalizer
    graph: CausalGraph
    config: ExperimentConfig


def load_model(checkpoint_path: str | os.PathLike, ema: bool = True,
               device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model of a checkpoint in eval mode on ``device``.

    Args:
        checkpoint_path: a ``last.pt`` / ``step_N.pt`` written by training.
        ema: load the EMA weights (what sampling should use) instead of the raw ones.
        device: where to put the model and the diffusion schedule.
    """
    from cdae.data.datasets import LabelNormalizer
    from cdae.models import ModelConfig

    state = load_checkpoint(checkpoint_path)
    graph = CausalGraph.from_dict(state["graph"])
    model_config = ModelConfig.from_dict(state["model_config"])
    model, diffusion = build_model(graph, model_config, state["model_kind"])
    weights = state["ema"]["model"] if ema else state["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"the weights in {checkpoint_path} do not fit the model this cdae "
                              f"builds from its config: {exc}") from exc
    return LoadedModel(
        model=model.to(device).eval(),
        diffusion=diffusion.to(device),
        normalizer=LabelNormalizer.from_dict(state["normalizer"]),
        graph=graph,
        config=ExperimentConfig.from_dict(state["config"]),
    )
