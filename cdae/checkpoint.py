"""Checkpoints: the file format, written atomically, read safely (``weights_only``),
checksummed, checked against the config; and :func:`load_model`, which rebuilds a trained model
from one (inference needs nothing from ``cdae.train``).

A checkpoint is a dict of tensors and plain data:

    format, version      "cdae-checkpoint", FORMAT_VERSION
    checksum             sha256 of everything else (:func:`content_digest`), checked on load
    step                 optimiser steps done
    model, ema           state dicts of the trained weights and of their moving average
    optimizer            the AdamW state; lr comes from the schedule in config.train
    rng                  python / numpy / torch / CUDA generator states (cdae.train.rng)
    config, graph, normalizer, model_config, model_kind   everything needed to rebuild the model
    elapsed_s, world_size, torch_version                 bookkeeping

Checkpoints written before checksums existed still load, with a warning that their contents
cannot be verified, unless a ``MANIFEST.json`` beside them vouches for their bytes (the shipped
checkpoints) or they are byte-identical copies of a shipped one.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from cdae.config import ExperimentConfig
from cdae.data.labels import LabelNormalizer
from cdae.diffusion import GaussianDiffusion
from cdae.files import atomic_path, file_digest
from cdae.graph import CausalGraph
from cdae.manifest import manifest_sha256, read_manifest
from cdae.models import ModelConfig, build_model_and_diffusion

FORMAT = "cdae-checkpoint"
FORMAT_VERSION = 1
CHECKSUM = "checksum"
REQUIRED = ("step", "model", "ema", "config", "graph", "normalizer", "model_config", "model_kind")
#: Config sections that must agree between a checkpoint and the config resuming it (the graph
#: is compared as resolved, since a config may take it from the dataset).
MUST_MATCH = ("model", "data")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why and what to do instead."""


class _Damaged(Exception):
    """A file that was a checkpoint once but whose bytes are no longer what was written."""


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (plus the format tag and its checksum) to ``path`` atomically: a crash
    never truncates it, and a failed write (a full disk) leaves the old file untouched."""
    path = Path(path)
    payload = {"format": FORMAT, "version": FORMAT_VERSION,
               **{key: value for key, value in state.items() if key != CHECKSUM}}
    payload[CHECKSUM] = content_digest(payload)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a file object: torch then
        torch.save(payload, handle)  # raises the OSError itself (ENOSPC), not a RuntimeError
    return path


def content_digest(state: Mapping[str, Any]) -> str:
    """sha256 of every entry of ``state`` except its checksum: tensors by dtype, shape and
    bytes, other values by type and ``repr``, containers in order."""
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in state.items() if key != CHECKSUM})
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {flat.dtype} {tuple(value.shape)}:".encode())
        digest.update(flat.view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f"map {len(value)}:".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, list | tuple):  # a tuple may come back as a list: the same content
        digest.update(f"seq {len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    else:
        text = repr(value).encode()
        digest.update(f"{type(value).__name__} {len(text)}:".encode() + text)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read, verify and sanity-check a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no file at ``path`` (``IsADirectoryError``: a folder there).
        CheckpointError: truncated, corrupt (content checksum or manifest sha256 differ),
            foreign or from an incompatible format version; the message says what to do.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a folder; give the checkpoint file in "
                                f"it (e.g. {path / 'last.pt'})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = _read(path, map_location)
    except _Damaged as exc:
        raise CheckpointError(f"checkpoint {path} {exc}. {_recovery_hint(path)}") from exc
    if state.pop(CHECKSUM, None) is None:
        _check_unchecksummed(path)
    return state


def _read(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """The verified state of ``path``, still with its checksum (None for an old checkpoint)."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # not a pickle of forbidden classes
            raise _Damaged(f"is corrupt or truncated and cannot be read ({_first_line(exc)})"
                           ) from exc
        raise CheckpointError(
            f"{path} holds Python objects other than tensors and plain data, so it was not "
            "written by cdae's trainer; it is not loaded, because unpickling such a file can run "
            "arbitrary code"
        ) from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, OSError, ...
        raise _Damaged(f"is corrupt or truncated and cannot be read ({_first_line(exc)})"
                       ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cdae checkpoint (no '{FORMAT}' format tag)")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {state.get('version')}; this cdae reads "
            f"version {FORMAT_VERSION}. Use the cdae release that wrote it."
        )
    recorded = state.get(CHECKSUM)
    if recorded is not None and content_digest(state) != recorded:
        raise _Damaged("fails its content checksum: its bytes changed after it was written "
                       "(disk or copy corruption, or an edit), so its weights cannot be trusted")
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise _Damaged(f"lacks {missing}")
    return state


def _check_unchecksummed(path: Path) -> None:
    """A checkpoint without a checksum (written by an older cdae): verified by the sha256 of a
    ``MANIFEST.json`` that lists it, or found to be an intact copy of a shipped checkpoint;
    else loaded with a warning."""
    expected = manifest_sha256(path)
    if expected is None:
        shipped = {entry.get("sha256") for entry in read_manifest().values()}
        if file_digest(path) in shipped:
            return
        warnings.warn(
            f"{path} carries no content checksum (it was written before cdae checksummed its "
            "checkpoints), so its contents cannot be verified; it is loaded as it is. Saving it "
            "again (training on with --resume, or `python -m cdae export`) adds a checksum.",
            stacklevel=3,
        )
    elif file_digest(path) != expected:
        raise CheckpointError(
            f"checkpoint {path} differs from the sha256 recorded for it in "
            f"{path.parent / 'MANIFEST.json'}: it is corrupt or was replaced. "
            f"{_recovery_hint(path)}"
        )


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


def _recovery_hint(path: Path) -> str:
    """What to do instead of loading ``path``: restore a shipped file, or use another checkpoint
    of its folder that loads and verifies."""
    if manifest_sha256(path) is not None:
        return (f"Restore the shipped file with `git checkout -- {path}` (or export it again "
                "from its training run).")
    others = [p.name for p in sorted(path.parent.glob("*.pt")) if p != path and _loads(p)]
    if others:
        return f"Try an earlier checkpoint in {path.parent}: {', '.join(others)}."
    return ("No other loadable checkpoint is in that folder; retrain or restore the file from a "
            "backup.")


def _loads(path: Path) -> bool:
    try:
        _read(path)
    except Exception:  # anything that stops it loading disqualifies it
        return False
    return True


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
