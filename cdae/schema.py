"""Dataclasses from plain mappings (YAML files, JSON, checkpoints), the one way every config is
read: :func:`from_mapping` checks the keys, converts each value to its annotated type and leaves
missing keys at their defaults.

    >>> from cdae.config import TrainConfig
    >>> from_mapping(TrainConfig, {"lr": "1e-4"}, "train").lr      # YAML reads 1e-4 as a string
    0.0001
    >>> from_mapping(TrainConfig, {"learning_rate": 0.1}, "train")
    ConfigError: unknown key(s) ['learning_rate'] in train; valid keys are [... 'lr' ...]
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or dict that cannot be used; the message says what to change."""


def from_mapping(cls: type[T], spec: Any, where: str) -> T:
    """Instantiate dataclass ``cls`` from the mapping ``spec``.

    Unknown keys are an error naming them and the valid ones; values are converted to the
    annotated types (``"1e-4"`` to a float, lists to tuples, ...) or an error names the field as
    ``<where>.<key>``; the dataclass's own checks (``__post_init__``) run last and their
    ``ValueError`` becomes a :class:`ConfigError` prefixed with ``where``.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {spec!r}")
    check_keys(spec, [f.name for f in fields(cls) if f.init], where)
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(value, hints.get(key, Any), f"{where}.{key}")
              for key, value in spec.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def check_keys(spec: Mapping[str, Any], valid: list[str], where: str) -> None:
    """Raise :class:`ConfigError` naming the keys of ``spec`` not in ``valid``, and those."""
    unknown = sorted(str(key) for key in spec if key not in valid)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; valid keys are {sorted(valid)}")


def require(ok: bool, where: str, message: str) -> None:
    """Raise ``ConfigError("<where> <message>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{where} {message}")


def to_plain(value: Any) -> Any:
    """Tuples to lists, recursively, so dicts compare equal after a YAML or checkpoint trip."""
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    return value


# ---------------------------------------------------------------------------- type conversion
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
