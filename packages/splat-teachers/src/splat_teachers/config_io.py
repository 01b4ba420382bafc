"""Frozen config dataclasses <-> JSON-ready values (nested dataclasses, tuples, unions, literals, paths): the one
codec of the project's configs (teacher checkpoints, training checkpoints' metadata, experiment configs)."""

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any


def to_jsonable(value: Any) -> Any:
    """A JSON-ready copy of `value`: dataclass instances and dicts become dicts, tuples lists, paths strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass (`to_jsonable`)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ValueError(f"config must be a dataclass instance, got {type(config).__name__}")
    return to_jsonable(config)


def _convert(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object for {kind.__name__}, got {value!r}")
        return config_from_dict(kind, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(f"{where}: {value!r} fits none of {kind} ({'; '.join(errors)})")
    if origin is typing.Literal:
        if value not in typing.get_args(kind):
            raise ValueError(f"{where}: {value!r} is not one of {typing.get_args(kind)}")
        return value
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(a, item, f"{where}[{i}]") for i, (a, item) in enumerate(zip(args, value, strict=True)))
    if kind is Path:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind in (int, str, bool):
        if type(value) is not kind:
            raise ValueError(f"{where}: expected {kind.__name__}, got {value!r}")
        return value
    raise ValueError(f"{where}: unsupported config field type {kind}")


def config_from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Rebuild config dataclass `cls` from `config_to_dict` output (missing fields take their defaults); unknown or
    ill-typed fields are ValueErrors naming the field (`where` prefixes it, e.g. the file)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown} for {cls.__name__}")
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**values)
