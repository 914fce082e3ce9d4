"""Typed configuration: the YAML loader for the frozen config dataclasses each stage defines beside its code.

The stages' configs live with their stages (``RunConfig`` in :mod:`pipeline.run`, ``TwoDConfig`` in
:mod:`pipeline.twod.stage`, ``LifterConfig`` in :mod:`pipeline.lifting.model`, the training configs in
:mod:`pipeline.training.config`, ...); this module turns YAML into any of them. Unknown keys are an error that names the closest valid key, so a typo never silently falls back to a
default. Values are checked against the field's annotated type (ints accepted where floats are expected,
lists turned into tuples).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.errors import ConfigError

T = TypeVar("T")


def _closest(key: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.0)
    return f"; did you mean {match[0]!r}?" if match else ""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming ``where``."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], where)
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str and isinstance(value, bool):
        # YAML 1.1 reads a bare off/on (no/yes) as a boolean; for a string setting that was a word.
        return "on" if value else "off"
    if annotation in (int, str, bool) and type(value) is not annotation:
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build a config dataclass from a plain mapping, rejecting unknown keys.

    Args:
        cls: A config dataclass type.
        data: Mapping of field names to values (nested mappings for nested configs).
        where: Name used in error messages (a file name or key path).

    Returns:
        An instance of ``cls``.
    """
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}{_closest(key, names)}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def load_config(cls: type[T], path: str | Path | None, overrides: dict[str, Any] | None = None) -> T:
    """Load a config dataclass from a YAML file (or defaults when ``path`` is None).

    Args:
        cls: A config dataclass type.
        path: YAML file; its top level maps field names to values.
        overrides: Top-level values that win over the file (from the command line).

    Returns:
        An instance of ``cls``.
    """
    data: dict[str, Any] = {}
    where = cls.__name__
    if path is not None:
        path = Path(path)
        where = str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text file; a config is YAML text") from None
        except OSError as err:
            raise ConfigError(f"{path}: cannot be read ({err.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    data = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    return from_dict(cls, data, where)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data form of a config (tuples become lists) for YAML/JSON/checkpoints."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))
