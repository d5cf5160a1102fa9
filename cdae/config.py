"""The experiment config: one YAML file says what to train on, which model, and how.

    name: morphomnist_small
    data:  {name: morphomnist, split: train, labelled_fraction: 1.0}
    graph: {preset: morphomnist}          # optional; default: the dataset's own graph
    model: {kind: causal_diffae, base_channels: 32, latent_dim: 4, ...}   # ModelConfig fields
    train: {batch_size: 64, lr: 2.0e-4, steps: 3000, ...}                 # TrainConfig fields

Every section is a dataclass; an unknown key is an error naming it and the valid keys, a value
of the wrong type is an error naming the field. A new dataset or graph is a new YAML file.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

MODEL_KINDS = ("causal_diffae", "diffae", "label_ddim")
#: Sections a config file must have (a dict passed to ``ExperimentConfig.from_dict`` may omit
#: them and get the defaults).
FILE_SECTIONS = ("data", "model", "train")


class ConfigError(ValueError):
    """A config file or dict that cannot be used; the message says what to change."""


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
        _require(0.0 < self.labelled_fraction <= 1.0, "data.labelled_fraction",
                 f"must be in (0, 1], got {self.labelled_fraction}")


@dataclass
class ModelSection:
    """``kind`` (``causal_diffae``, ``diffae``, ``label_ddim``) plus the ``ModelConfig`` fields."""

    kind: str = "causal_diffae"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.kind in MODEL_KINDS, "model.kind",
                 f"must be one of {list(MODEL_KINDS)}, got {self.kind!r}")

    def model_config(self) -> Any:
        """The validated ``cdae.models.ModelConfig``."""
        from cdae.models import ModelConfig

        return _build(ModelConfig, self.params, "model", exclude=("kind",))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> ModelSection:
        if not isinstance(spec, Mapping):
            raise ConfigError(f"model must be a mapping of ModelConfig fields, got {spec!r}")
        params = {key: value for key, value in spec.items() if key != "kind"}
        section = cls(kind=spec.get("kind", "causal_diffae"), params=params)
        section.params = _as_plain(dataclasses.asdict(section.model_config()))
        return section


@dataclass
class TrainConfig:
    """Optimisation, checkpointing and hardware settings.

    lr(step) = lr · min(1, (step + 1) / warmup) · s(step), s = 1 (``constant``) or a cosine from
    1 down to ``final_lr_ratio`` over ``steps`` (``cosine``). ``batch_size`` is the global batch
    (summed over processes); each process splits its share into ``accumulate`` micro-batches
    whose gradients add up before the step. ``threads`` 0 = all cores;
    ``channels_last`` null or false: contiguous memory (benchmarks/bench_train.py measured no
    consistent gain from channels-last on a CPU or an H100); ``amp`` auto = bf16 on CUDA only.
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
            _require(getattr(self, name) >= 1, f"train.{name}", "must be at least 1")
        for name in ("warmup", "keep_every", "num_workers", "threads", "weight_decay"):
            _require(getattr(self, name) >= 0, f"train.{name}", "must not be negative")
        _require(self.lr > 0, "train.lr", f"must be positive, got {self.lr}")
        _require(0.0 <= self.ema_decay < 1.0, "train.ema_decay", "must be in [0, 1)")
        _require(all(0.0 <= b < 1.0 for b in self.betas), "train.betas", "must lie in [0, 1)")
        _require(self.grad_clip is None or self.grad_clip > 0, "train.grad_clip",
                 "must be positive or null (no clipping)")


@dataclass
class ExperimentConfig:
    """The whole experiment; ``to_dict()`` / ``from_dict()`` round-trip through YAML."""

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainConfig = field(default_factory=TrainConfig)
    graph: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "data": _as_plain(dataclasses.asdict(self.data)),
            "graph": self.graph,
            "model": self.model.to_dict(),
            "train": _as_plain(dataclasses.asdict(self.train)),
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> ExperimentConfig:
        if not isinstance(spec, Mapping):
            raise ConfigError(f"a config must be a mapping of sections, got {type(spec).__name__}")
        _check_keys(spec, [f.name for f in fields(cls)], "the config")
        graph = spec.get("graph")
        if graph is not None:
            _check_graph(graph)
        return cls(
            name=str(spec.get("name", "experiment")),
            data=_build(DataConfig, spec.get("data", {}), "data"),
            model=ModelSection.from_dict(spec.get("model", {})),
            train=_build(TrainConfig, spec.get("train", {}), "train"),
            graph=dict(graph) if graph is not None else None,
        )

    def replace_train(self, **changes: Any) -> ExperimentConfig:
        """A copy with some ``train`` fields changed (validated like the file)."""
        train = _build(TrainConfig, {**dataclasses.asdict(self.train), **changes}, "train")
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
        spec = yaml.safe_load(path.read_text())
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


# ---------------------------------------------------------------------------- validation helpers
def _check_graph(graph: Any) -> None:
    """Raise unless ``graph`` describes a valid :class:`~cdae.graph.CausalGraph`."""
    from cdae.graph import CausalGraph

    shape = ("graph must be a mapping like {preset: morphomnist} or {nodes: [...], edges: "
             "[[cause, effect], ...], categorical: {name: classes}}")
    if not isinstance(graph, Mapping):
        raise ConfigError(shape)
    _check_keys(graph, ["preset", "nodes", "edges", "categorical"], "graph")
    try:
        CausalGraph.from_dict(graph)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"graph: {exc}") from exc


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where} {message}")


def _check_keys(spec: Mapping[str, Any], valid: list[str], where: str) -> None:
    unknown = sorted(str(key) for key in spec if key not in valid)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; valid keys are {sorted(valid)}")


def _build(cls: type, spec: Any, where: str, exclude: tuple[str, ...] = ()) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, checking keys and coercing value types."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {spec!r}")
    names = [f.name for f in fields(cls) if f.init]
    _check_keys({k: v for k, v in spec.items() if k not in exclude}, names, where)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a foreign dataclass whose annotations cannot be resolved
        hints = {}
    values = {
        key: _coerce(value, hints.get(key, Any), f"{where}.{key}")
        for key, value in spec.items() if key not in exclude
    }
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type (e.g. the string ``"1e-4"`` to a float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits no type")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list) or hint in (tuple, list):
        return _coerce_sequence(value, hint, where)
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    return _coerce_scalar(value, hint, where)


def _coerce_sequence(value: Any, hint: Any, where: str) -> Any:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list, got {value!r}")
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"{where} must have {len(args)} entries, got {list(value)}")
        pairs = enumerate(zip(value, args, strict=True))
        items = [_coerce(v, a, f"{where}[{i}]") for i, (v, a) in pairs]
    else:
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _coerce_scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value)  # YAML reads 1e-4 (no dot) as a string
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def _as_plain(value: Any) -> Any:
    """Tuples to lists, recursively, so dicts compare equal after a YAML or checkpoint trip."""
    if isinstance(value, Mapping):
        return {key: _as_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_plain(item) for item in value]
    return value
