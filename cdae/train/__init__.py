"""Training: ``train(config, out_dir)`` / ``train_from_config(path)``.

    >>> from cdae.checkpoint import load_model
    >>> from cdae.config import load_config
    >>> checkpoint = train(load_config("configs/morphomnist_small.yaml"), "runs/small")
    >>> model, diffusion, normalizer, graph, config = load_model(checkpoint)

Multi-GPU: ``torchrun --nproc_per_node N -m cdae train CONFIG``; ``train.batch_size`` is the
global batch, and only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cdae.config import ExperimentConfig, load_config
from cdae.paths import repo_root
from cdae.train.runtime import shutdown_distributed
from cdae.train.trainer import RunExistsError, Trainer, TrainingDiverged, TrainingInterrupted


def train(config: ExperimentConfig, out_dir: str | os.PathLike, *, steps: int | None = None,
          resume: bool = False, device: str | None = None, dataset: Any = None,
          progress: bool = True) -> Path:
    """Train ``config`` into ``out_dir`` and return the path of its last checkpoint.

    ``steps`` overrides ``config.train.steps`` (the length of the run, and of a cosine
    schedule); see :class:`Trainer` for the other arguments.
    """
    if steps is not None:
        config = config.replace_train(steps=steps)
    try:
        trainer = Trainer(config, out_dir, resume=resume, device=device, dataset=dataset,
                          progress=progress)
        return trainer.fit()
    finally:
        shutdown_distributed()


def default_out_dir(config: ExperimentConfig) -> Path:
    """``<repo>/runs/<config name>``."""
    return repo_root() / "runs" / config.name


def train_from_config(config_path: str | os.PathLike, steps: int | None = None,
                      out: str | os.PathLike | None = None, resume: bool = False,
                      device: str | None = None) -> Path:
    """``python -m cdae train CONFIG [--steps N] [--out DIR] [--resume] [--device D]``:
    load the YAML config, train into ``out`` (default ``runs/<config name>``), return the
    checkpoint path."""
    config = load_config(config_path)
    out_dir = Path(out) if out is not None else default_out_dir(config)
    return train(config, out_dir, steps=steps, resume=resume, device=device)


__all__ = [
    "RunExistsError", "Trainer", "TrainingDiverged", "TrainingInterrupted", "default_out_dir",
    "train", "train_from_config",
]
