"""Checkpoints: the file format, written atomically, read safely (``weights_only``), checked
against the config; and :func:`load_model`, which rebuilds a trained model from one (inference
needs nothing from ``cdae.train``).

A checkpoint is a dict of tensors and plain data:

    format, version      "cdae-checkpoint", FORMAT_VERSION
    step                 optimiser steps done
    model, ema           state dicts of the trained weights and of their moving average
    optimizer            the AdamW state; lr comes from the schedule in config.train
    rng                  python / numpy / torch / CUDA generator states (cdae.train.rng)
    config, graph, normalizer, model_config, model_kind   everything needed to rebuild the model
    elapsed_s, world_size, torch_version                 bookkeeping
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from cdae.config import ExperimentConfig
from cdae.data.labels import LabelNormalizer
from cdae.diffusion import GaussianDiffusion
from cdae.files import atomic_path
from cdae.graph import CausalGraph
from cdae.models import ModelConfig, build_model_and_diffusion

FORMAT = "cdae-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("step", "model", "ema", "config", "graph", "normalizer", "model_config", "model_kind")
#: Config sections that must agree between a checkpoint and the config resuming it (the graph
#: is compared as resolved, since a config may take it from the dataset).
MUST_MATCH = ("model", "data")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why and what to do instead."""


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (plus the format tag) to ``path`` atomically: a crash never truncates it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": FORMAT_VERSION, **state}, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and sanity-check a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: truncated, corrupt, foreign or from an incompatible format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # not a pickle of forbidden classes
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated and cannot be "
                                  f"read ({_first_line(exc)}). {_other_checkpoints_hint(path)}"
                                  ) from exc
        raise CheckpointError(
            f"{path} holds Python objects other than tensors and plain data, so it was not "
            "written by cdae's trainer; it is not loaded, because unpickling such a file can run "
            "arbitrary code"
        ) from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, OSError, ...
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated and cannot be read ({_first_line(exc)}). "
            f"{_other_checkpoints_hint(path)}"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cdae checkpoint (no '{FORMAT}' format tag)")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {state.get('version')}; this cdae reads "
            f"version {FORMAT_VERSION}. Use the cdae release that wrote it."
        )
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; {_other_checkpoints_hint(path)}")
    return state


def check_compatible(state: Mapping[str, Any], config: Mapping[str, Any],
                     graph: Mapping[str, Any], path: Any = "") -> None:
    """Raise :class:`CheckpointError` naming every field where ``config`` (an
    ``ExperimentConfig.to_dict()``) differs from the checkpoint's in the model or data sections,
    or where ``graph`` (the ``CausalGraph.to_dict()`` to train with) differs from its graph."""
    saved = state["config"]
    differences = config_differences(state["graph"], graph, "graph")
    for section in MUST_MATCH:
        differences += config_differences(saved.get(section), config.get(section), section)
    if differences:
        listing = "; ".join(differences)
        raise CheckpointError(
            f"checkpoint {path} was trained with a different config: {listing}. "
            "Resume with the config it was trained with, or train into a new --out folder."
        )


def config_differences(saved: Any, current: Any, where: str) -> list[str]:
    """``["model.base_channels: checkpoint 32, config 48", ...]`` for each differing leaf."""
    if isinstance(saved, Mapping) and isinstance(current, Mapping):
        out = []
        for key in sorted(set(saved) | set(current), key=str):
            out += config_differences(saved.get(key), current.get(key), f"{where}.{key}")
        return out
    same = _plain(saved) == _plain(current)
    return [] if same else [f"{where}: checkpoint {saved!r}, config {current!r}"]


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _other_checkpoints_hint(path: Path) -> str:
    others = sorted(p.name for p in path.parent.glob("*.pt") if p != path)
    if others:
        return f"Try an earlier checkpoint in {path.parent}: {', '.join(others)}."
    return "No other checkpoint is in that folder; retrain or restore the file from a backup."


# ---------------------------------------------------------------------------- loading a model
class LoadedModel(NamedTuple):
    """What :func:`load_model` returns; unpacks as ``model, diffusion, normalizer, graph,
    config``."""

    model: nn.Module
    diffusion: GaussianDiffusion
    normalizer: LabelNormalizer
    graph: CausalGraph
    config: ExperimentConfig


def load_model(checkpoint_path: str | os.PathLike, ema: bool = True,
               device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model of a checkpoint in eval mode on ``device``.

    Args:
        checkpoint_path: a ``last.pt`` / ``step_N.pt`` written by training, or a shipped one.
        ema: load the EMA weights (what sampling should use) instead of the raw ones.
        device: where to put the model and the diffusion schedule.
    """
    state = load_checkpoint(checkpoint_path)
    graph = CausalGraph.from_dict(state["graph"])
    model_config = ModelConfig.from_dict(state["model_config"])
    model, diffusion = build_model_and_diffusion(graph, model_config, state["model_kind"])
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
