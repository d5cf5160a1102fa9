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
from cdae.files import atomic_path, atomic_write_bytes, file_digest, write_error
from cdae.manifest import MANIFEST, read_manifest
from cdae.paths import pretrained_dir

if TYPE_CHECKING:
    from cdae.counterfactual import CounterfactualModel

KEEP = ("step", "config", "graph", "normalizer", "model_config", "model_kind", "elapsed_s",
        "world_size", "torch_version")


def export_checkpoint(source: str | os.PathLike, target: str | os.PathLike,
                      command: str | None = None, notes: str | None = None,
                      force: bool = False) -> dict[str, Any]:
    """Write the EMA weights of training checkpoint ``source`` as an inference checkpoint
    ``target`` (fp32), and record it in the manifest of ``target``'s folder. Returns the entry.

    An existing ``target`` is replaced only with ``force``; ``source`` itself never is. The
    checkpoint and its manifest entry are written together: if either write fails, neither
    file changes.
    """
    source, target = Path(source), Path(target)
    _check_export_target(source, target, force)
    state = load_checkpoint(source)
    weights = {name: tensor.float() if tensor.is_floating_point() else tensor
               for name, tensor in state["ema"]["model"].items()}
    # "model" and "ema" share the same tensors, so torch.save stores them once
    slim = {key: state[key] for key in KEEP if key in state}
    slim.update(model=weights, ema={"model": weights}, exported_from_step=state["step"],
                normalizer=_with_training_range(state))
    with atomic_path(target) as staged:  # renamed onto target once the manifest is written
        try:
            save_checkpoint(slim, staged)
        except OSError as exc:  # name the file the user asked for, not the staging file
            raise write_error(target, exc) from None
        entry = {
            "file": target.name,
            "sha256": file_digest(staged),
            "bytes": staged.stat().st_size,
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


def _with_training_range(state: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's label normaliser with the training data's range of every variable (what
    do() values are checked against), read from its training set if the run predates it."""
    from cdae.config import ExperimentConfig
    from cdae.data.labels import LabelNormalizer
    from cdae.train.build import build_training_dataset

    normalizer = LabelNormalizer.from_dict(state["normalizer"])
    if normalizer.low is not None:
        return state["normalizer"]
    train = build_training_dataset(ExperimentConfig.from_dict(state["config"]), normalizer)
    return normalizer.with_range(train.labels_natural, train.graph).to_dict()


def _check_export_target(source: Path, target: Path, force: bool) -> None:
    """Refuse a target that is the source, the manifest, a folder, or (without ``force``) any
    existing file."""
    if target.name == MANIFEST or target.is_dir():
        folder = target if target.is_dir() else target.parent
        raise ValueError(f"cannot export to {target}: give a checkpoint file name, such as "
                         f"{folder / 'model.pt'}")
    if not target.exists():
        return
    if source.exists() and os.path.samefile(source, target):
        raise ValueError(f"refusing to export {source} onto itself: that would replace the "
                         "training checkpoint by an inference one that cannot be resumed; give "
                         "another output file")
    if not force:
        raise FileExistsError(f"{target} already exists; pass --force (force=True) to replace it "
                              "(its manifest entry is replaced too)")


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
