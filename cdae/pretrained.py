"""The small pretrained checkpoints that ship in ``data/pretrained/``, with a sha256 manifest.

A shipped checkpoint is a training checkpoint reduced to what inference needs: the EMA weights,
the config, the graph and the label normaliser (no optimiser, no RNG states), so it is a few MB.
``data/pretrained/MANIFEST.json`` lists each file's sha256, the command and seed that trained it,
and what it was trained on; :func:`pretrained_path` refuses a file whose checksum differs.

    python -m cdae export runs/morphomnist_small/last.pt data/pretrained/morphomnist_small.pt \\
        --command "python -m cdae train configs/morphomnist_small.yaml --steps 4000"
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cdae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cdae.files import atomic_write_bytes, file_digest
from cdae.paths import pretrained_dir

if TYPE_CHECKING:
    from cdae.counterfactual import CounterfactualModel

MANIFEST = "MANIFEST.json"
KEEP = ("step", "config", "graph", "normalizer", "model_config", "model_kind", "elapsed_s",
        "world_size", "torch_version")


def export_checkpoint(source: str | os.PathLike, target: str | os.PathLike,
                      command: str | None = None, notes: str | None = None) -> dict[str, Any]:
    """Write the EMA weights of training checkpoint ``source`` as an inference checkpoint
    ``target`` (fp32), and record it in the manifest of ``target``'s folder. Returns the entry."""
    state = load_checkpoint(source)
    weights = {name: tensor.float() if tensor.is_floating_point() else tensor
               for name, tensor in state["ema"]["model"].items()}
    # "model" and "ema" share the same tensors, so torch.save stores them once
    slim = {key: state[key] for key in KEEP if key in state}
    slim.update(model=weights, ema={"model": weights}, exported_from_step=state["step"])
    target = Path(target)
    save_checkpoint(slim, target)
    entry = {
        "file": target.name,
        "sha256": file_digest(target),
        "bytes": target.stat().st_size,
        "step": int(state["step"]),
        "config_name": state["config"].get("name"),
        "model_kind": state["model_kind"],
        "dataset": state["config"].get("data", {}),
        "seed": state["config"].get("train", {}).get("seed"),
        "train_seconds": round(float(state.get("elapsed_s", 0.0)), 1),
        "command": command,
        "notes": notes,
    }
    manifest = read_manifest(target.parent)
    manifest[target.name] = entry
    atomic_write_bytes(target.parent / MANIFEST,
                       (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return entry


def read_manifest(folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{file name: entry}`` from ``folder/MANIFEST.json`` (empty when there is none)."""
    path = Path(folder or pretrained_dir()) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def pretrained_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Path of shipped checkpoint ``name`` (e.g. ``"morphomnist_small"``), checksum-verified."""
    folder = Path(folder or pretrained_dir())
    manifest = read_manifest(folder)
    file_name = name if name.endswith(".pt") else f"{name}.pt"
    if file_name not in manifest:
        raise FileNotFoundError(
            f"no pretrained checkpoint {file_name!r} in {folder / MANIFEST}; available: "
            f"{sorted(manifest) or 'none'}. Train one with `python -m cdae train CONFIG`."
        )
    path = folder / file_name
    if not path.exists():
        raise FileNotFoundError(f"{path} is listed in the manifest but missing; restore it with "
                                f"`git checkout -- {path}`")
    actual = file_digest(path)
    if actual != manifest[file_name]["sha256"]:
        raise CheckpointError(
            f"{path} has sha256 {actual[:12]}..., the manifest says "
            f"{manifest[file_name]['sha256'][:12]}...: the file is corrupt or was replaced. "
            f"Restore it with `git checkout -- {path}` or retrain with "
            f"`{manifest[file_name].get('command')}`"
        )
    return path


def load_pretrained(name: str, device: str | torch.device = "cpu") -> CounterfactualModel:
    """A :class:`~cdae.counterfactual.CounterfactualModel` from shipped checkpoint ``name``."""
    from cdae.counterfactual import CounterfactualModel

    return CounterfactualModel.from_checkpoint(pretrained_path(name), device=device)
