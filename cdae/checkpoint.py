"""Checkpoints: written atomically, read safely (``weights_only``), checked against the config.

A checkpoint is a dict of tensors and plain data:

    format, version      "cdae-checkpoint", FORMAT_VERSION
    step                 optimiser steps done
    model, ema           state dicts of the trained weights and of their moving average
    optimizer            the AdamW state; lr comes from the schedule in config.train
    rng                  python / numpy / torch / CUDA generator states and the trainer's own
    config, graph, normalizer, model_config, model_kind   everything needed to rebuild the model
    elapsed_s, world_size, torch_version                 bookkeeping
"""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cdae.files import atomic_path

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


# ---------------------------------------------------------------------------- random state
def capture_rng(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """All random states needed for an exact resume, in ``weights_only``-loadable form."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (global)
    state = {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    return state


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_rng`."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    global_state = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    np.random.set_state(global_state)  # noqa: NPY002 (the legacy global state is what is saved)
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in generators.items():
        generator.set_state(state["generators"][name].to("cpu"))
