"""The anti-causal predictor and the FeatureNet that score a dataset's counterfactuals, trained
once on its real training split and cached.

    >>> predictor, feature_net = load_or_train_evaluators("morphomnist")

Cache files ``<kind>-<key>.pt`` live under ``data_dir()/"evaluators"/<dataset>/``; the key is a
sha256 of the training settings, the training images and their labels, so a change in any of
them trains new evaluators instead of reusing stale ones. The evaluators of the shipped models
ship too, under ``data/pretrained/evaluators/<dataset>/`` with a sha256 ``MANIFEST.json``
(:func:`ship_evaluators`): a file with the same key is used from there, so evaluating a shipped
model needs no training.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cdae.evaluate.predictors import AntiCausalPredictor, TrunkConfig, train_predictor
from cdae.evaluate.realism import FeatureNet, train_feature_net
from cdae.files import atomic_write_bytes, check_shipped_file, file_digest
from cdae.paths import data_dir, pretrained_dir, smoke_mode

if TYPE_CHECKING:
    from cdae.data.datasets import CausalImageDataset

#: Minibatches for the anti-causal predictor and the feature net, and in smoke mode.
EVALUATOR_STEPS = 1500
SMOKE_EVALUATOR_STEPS = 100
#: Images per minibatch of both (part of the cache key).
EVALUATOR_BATCH = 64
_EVALUATOR_VERSION = 1


def _cache_key(kind: str, dataset_name: str, train: CausalImageDataset, steps: int,
               seed: int) -> str:
    """sha256 of the training settings, the training images and their labels."""
    spec = {"kind": kind, "dataset": dataset_name, "steps": steps, "seed": seed,
            "batch_size": EVALUATOR_BATCH,
            "trunk": vars(TrunkConfig(channels=train.image_shape[0])),
            "graph": train.graph.to_dict(), "version": _EVALUATOR_VERSION}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    digest.update(train.images_uint8.numpy().tobytes())
    digest.update(train.labels_natural[train.graph.nodes].to_numpy(np.float64).tobytes())
    return digest.hexdigest()[:16]


def _load_or_train(kind: str, dataset_name: str, train: CausalImageDataset, steps: int, seed: int,
                   progress: bool, cache_dir: Path) -> AntiCausalPredictor:
    """An evaluator network from the cache, or trained on ``train`` and cached (atomically)."""
    name = f"{kind}-{_cache_key(kind, dataset_name, train, steps, seed)}.pt"
    shipped = shipped_evaluator(dataset_name, name)
    if shipped is not None:
        return AntiCausalPredictor.load(shipped)
    path = cache_dir / name
    if path.exists():
        try:
            return AntiCausalPredictor.load(path)
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            warnings.warn(f"cannot read the cached {kind} {path} ({exc}); retraining it",
                          RuntimeWarning, stacklevel=3)
    labels = train.labels_natural[train.graph.nodes]
    if kind == "predictor":
        net = train_predictor(train.images_uint8, labels, train.graph, steps=steps,
                              batch_size=EVALUATOR_BATCH, seed=seed, progress=progress)
    else:  # the feature net: the same kind of network, another seed
        net = train_feature_net(train.images_uint8, labels, train.graph.categorical,
                                steps=steps, batch_size=EVALUATOR_BATCH, seed=seed + 1,
                                progress=progress).predictor
    net.save(path)
    return net


def load_or_train_evaluators(
    dataset_name: str, data_root: str | os.PathLike | None = None,
    dataset_options: Mapping[str, Any] | None = None, steps: int | None = None, seed: int = 0,
    progress: bool = True, cache_dir: str | os.PathLike | None = None,
) -> tuple[AntiCausalPredictor, FeatureNet]:
    """The anti-causal predictor and the FeatureNet of a dataset, trained on its real training
    split (``steps`` minibatches, default :data:`EVALUATOR_STEPS`) and cached under
    ``cache_dir`` (default ``data_dir()/"evaluators"/<dataset>``), keyed by a hash of the
    settings and the training data, so repeated evaluations reuse them."""
    from cdae.data.datasets import build_dataset

    steps = steps or (SMOKE_EVALUATOR_STEPS if smoke_mode() else EVALUATOR_STEPS)
    try:
        train = build_dataset(dataset_name, "train", root=data_root, **dict(dataset_options or {}))
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"the evaluators are trained on {dataset_name!r}'s training split, which is missing "
            f"({exc}). Pass predictors= and feature_net= trained elsewhere, e.g. "
            "load_or_train_evaluators('morphomnist') for the Deep SCM test set") from exc
    folder = Path(cache_dir) if cache_dir is not None else data_dir() / "evaluators" / dataset_name
    predictor = _load_or_train("predictor", dataset_name, train, steps, seed, progress, folder)
    features = _load_or_train("feature_net", dataset_name, train, steps, seed, progress, folder)
    return predictor, FeatureNet(features)


def shipped_dir() -> Path:
    """``data/pretrained/evaluators``: the evaluators shipped with the models."""
    return pretrained_dir() / "evaluators"


def _shipped_manifest() -> dict[str, Any]:
    path = shipped_dir() / "MANIFEST.json"
    return json.loads(path.read_text()) if path.exists() else {}


def shipped_evaluator(dataset_name: str, name: str) -> Path | None:
    """The shipped file ``<dataset>/<name>``, sha256-verified, or None when none ships."""
    relative = f"{dataset_name}/{name}"
    entry = _shipped_manifest().get(relative)
    if entry is None:
        return None
    return check_shipped_file(shipped_dir() / relative, entry["sha256"], "evaluator")


def ship_evaluators(dataset_name: str, cached: list[str | os.PathLike]) -> list[Path]:
    """Copy cached evaluator files of ``dataset_name`` into :func:`shipped_dir` and list them
    with their sha256 in its ``MANIFEST.json``; returns the shipped paths."""
    manifest, shipped = _shipped_manifest(), []
    for source in map(Path, cached):
        target = shipped_dir() / dataset_name / source.name
        atomic_write_bytes(target, source.read_bytes())
        manifest[f"{dataset_name}/{source.name}"] = {"sha256": file_digest(target),
                                                     "bytes": target.stat().st_size}
        shipped.append(target)
    atomic_write_bytes(shipped_dir() / "MANIFEST.json",
                       (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return shipped
