"""The experiment config: one YAML file says what to train on, which model, and how.

    name: morphomnist_small
    data:  {name: morphomnist, split: train, labelled_fraction: 1.0}
    graph: {preset: morphomnist}          # optional; default: the dataset's own graph
    model: {kind: causal_diffae, base_channels: 32, latent_dim: 4, ...}   # ModelConfig fields
    train: {batch_size: 64, lr: 2.0e-4, steps: 3000, ...}                 # TrainConfig fields

Every section is a dataclass read by :func:`cdae.schema.from_mapping`: an unknown key is an error
naming it and the valid keys, a value of the wrong type is an error naming the field. The model
section is a :class:`cdae.models.ModelConfig`, plus its ``kind`` (``ExperimentConfig.model_kind``).
A new dataset or graph is a new YAML file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cdae.models import MODELS
from cdae.models.config import ModelConfig
from cdae.schema import ConfigError, check_keys, from_mapping, require, to_plain

#: Sections a config file must have (a dict passed to ``ExperimentConfig.from_dict`` may omit
#: them and get the defaults).
FILE_SECTIONS = ("data", "model", "train")

__all__ = ["ConfigError", "DataConfig", "ExperimentConfig", "TrainConfig", "load_config",
           "save_config"]


@dataclass
class DataConfig:
    """Which dataset to train on (``cdae.data.datasets.build_dataset(name, split, ...)``).

    ``labelled_fraction`` < 1 turns on weak supervision: ``"split"`` labels a fixed random subset
    of that size (seeded by ``train.seed``); ``"random_drop"`` hides each sample's labels with
    probability ``1 - labelled_fraction`` afresh at every step.
    """

    name: str = "morphomnist"
    split: str = "train"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    labelled_fraction: float = 1.0
    weak_supervision: Literal["split", "random_drop"] = "split"

    def __post_init__(self) -> None:
        require(0.0 < self.labelled_fraction <= 1.0, "data.labelled_fraction",
                f"must be in (0, 1], got {self.labelled_fraction}")


@dataclass
class TrainConfig:
    """Optimisation, checkpointing and hardware settings.

    lr(step) = lr · min(1, (step + 1) / warmup) · s(step), s = 1 (``constant``) or a cosine from
    1 down to ``final_lr_ratio`` over ``steps`` (``cosine``). ``batch_size`` is the global batch
    (summed over processes); each process splits its share into ``accumulate`` micro-batches
    whose gradients add up before the step. ``threads`` 0 = all cores;
    ``channels_last`` null or false: contiguous memory (benchmarks/bench_train.py measured no
    consistent gain from channels-last on a CPU or an H100); ``amp`` auto = bf16 on CUDA only.
    ``grad_clip_by``: ``global`` clips all gradients together to norm ``grad_clip``; ``module``
    clips the decoder's and the latent part's apart (see :func:`cdae.train.optim.clip_gradients`),
    so that a large KL gradient on the encoder cannot throttle the UNet.
    """

    batch_size: int = 64
    accumulate: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    steps: int = 10_000
    warmup: int = 200
    lr_schedule: Literal["constant", "cosine"] = "constant"
    final_lr_ratio: float = 0.1
    ema_decay: float = 0.999
    grad_clip: float | None = 1.0
    grad_clip_by: Literal["global", "module"] = "global"
    checkpoint_every: int = 500
    keep_every: int = 0
    log_every: int = 25
    seed: int = 0
    device: str = "auto"
    amp: Literal["auto", "bf16", "off"] = "auto"
    compile: bool = False
    channels_last: bool | None = None
    num_workers: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "accumulate", "steps", "checkpoint_every", "log_every"):
            require(getattr(self, name) >= 1, f"train.{name}", "must be at least 1")
        for name in ("warmup", "keep_every", "num_workers", "threads", "weight_decay"):
            require(getattr(self, name) >= 0, f"train.{name}", "must not be negative")
        require(self.lr > 0, "train.lr", f"must be positive, got {self.lr}")
        require(0.0 <= self.ema_decay < 1.0, "train.ema_decay", "must be in [0, 1)")
        require(all(0.0 <= b < 1.0 for b in self.betas), "train.betas", "must lie in [0, 1)")
        require(self.grad_clip is None or self.grad_clip > 0, "train.grad_clip",
                "must be positive or null (no clipping)")
        require(self.grad_clip_by in ("global", "module"), "train.grad_clip_by",
                f"must be 'global' or 'module', got {self.grad_clip_by!r}")


@dataclass
class ExperimentConfig:
    """The whole experiment; ``to_dict()`` / ``from_dict()`` round-trip through YAML, where
    ``model_kind`` is the model section's ``kind``."""

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    model_kind: str = "causal_diffae"
    train: TrainConfig = field(default_factory=TrainConfig)
    graph: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        require(self.model_kind in MODELS, "model.kind",
                f"must be one of {list(MODELS)}, got {self.model_kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "data": to_plain(dataclasses.asdict(self.data)),
            "graph": self.graph,
            "model": {"kind": self.model_kind, **self.model.to_dict()},
            "train": to_plain(dataclasses.asdict(self.train)),
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> ExperimentConfig:
        if not isinstance(spec, Mapping):
            raise ConfigError(f"a config must be a mapping of sections, got {type(spec).__name__}")
        check_keys(spec, ["name", "data", "graph", "model", "train"], "the config")
        graph = spec.get("graph")
        if graph is not None:
            _check_graph(graph)
        model = spec.get("model", {})
        if not isinstance(model, Mapping):
            raise ConfigError(f"model must be a mapping of ModelConfig fields, got {model!r}")
        return cls(
            name=str(spec.get("name", "experiment")),
            data=from_mapping(DataConfig, spec.get("data", {}), "data"),
            model=from_mapping(ModelConfig, {k: v for k, v in model.items() if k != "kind"},
                               "model"),
            model_kind=model.get("kind", "causal_diffae"),
            train=from_mapping(TrainConfig, spec.get("train", {}), "train"),
            graph=dict(graph) if graph is not None else None,
        )

    def replace_train(self, **changes: Any) -> ExperimentConfig:
        """A copy with some ``train`` fields changed (validated like the file)."""
        train = from_mapping(TrainConfig, {**dataclasses.asdict(self.train), **changes}, "train")
        return dataclasses.replace(self, train=train)


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read and validate a YAML experiment config; ``name`` defaults to the file's stem.

    The file must have the sections of :data:`FILE_SECTIONS`, so that nothing trains on library
    defaults by accident (an empty file would otherwise train a larger default model).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config {path} is a folder; give a YAML file such as "
                          "configs/morphomnist_small.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist (see configs/ for examples)")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it "
                          "as UTF-8, or check that it is the YAML config you meant") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    needs = (f"a config needs the sections {', '.join(FILE_SECTIONS)} (the dataset, the network, "
             "the optimisation); see configs/morphomnist_small.yaml")
    if spec is None:
        raise ConfigError(f"{path} is empty; {needs}")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{path} holds a YAML {type(spec).__name__}, not a mapping of "
                          f"sections; {needs}")
    missing = [section for section in FILE_SECTIONS if section not in spec]
    if missing:
        raise ConfigError(f"{path} has no {', '.join(missing)} section(s); {needs}")
    try:
        return ExperimentConfig.from_dict({"name": path.stem, **spec})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def save_config(config: ExperimentConfig, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML (atomically)."""
    from cdae.files import atomic_write_bytes

    text = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None)
    atomic_write_bytes(path, text.encode())


def _check_graph(graph: Any) -> None:
    """Raise unless ``graph`` describes a valid :class:`~cdae.graph.CausalGraph`."""
    from cdae.graph import CausalGraph

    shape = ("graph must be a mapping like {preset: morphomnist} or {nodes: [...], edges: "
             "[[cause, effect], ...], categorical: {name: classes}}")
    if not isinstance(graph, Mapping):
        raise ConfigError(shape)
    check_keys(graph, ["preset", "nodes", "edges", "categorical"], "graph")
    try:
        CausalGraph.from_dict(graph)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"graph: {exc}") from exc
