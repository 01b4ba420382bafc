"""Configs checked before any work is done: a config dataclass lists its own problems (`problems()` → pairs of a
dotted field path, relative to the config, and what is wrong), and `config_problems` walks a config with the
dataclasses nested in it and names each problem by its command-line flag:
`--multistep.loop.max-steps -1: must be >= 0`.
"""

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

Problem = tuple[str, str]  # (dotted field path relative to the config, what is wrong)


def at_least(config: Any, minimums: Mapping[str, int | float]) -> list[Problem]:
    """A problem for each field of `config` below its minimum (None fields are skipped: they mean "off")."""
    return [
        (name, f"must be >= {minimum}")
        for name, minimum in minimums.items()
        if getattr(config, name) is not None and not getattr(config, name) >= minimum
    ]


def positive(config: Any, names: Iterable[str]) -> list[Problem]:
    """A problem for each field of `config` that is not a finite number > 0 (None is skipped)."""
    return [
        (name, "must be a finite number > 0")
        for name in names
        if getattr(config, name) is not None
        and not (math.isfinite(getattr(config, name)) and getattr(config, name) > 0)
    ]


def _value(config: Any, path: str) -> Any:
    for name in path.split("."):
        config = getattr(config, name)
    return config


def config_problems(config: Any, prefix: str = "") -> list[str]:
    """Every problem of `config` and of the dataclasses nested in it, as `--flag value: problem` lines."""
    found = []
    own = getattr(config, "problems", None)
    for path, message in own() if callable(own) else []:
        flag = "--" + (prefix + path).replace("_", "-")
        found.append(f"{flag} {_value(config, path)}: {message}")
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            found += config_problems(value, f"{prefix}{field.name}.")
    return found


def check_config(config: Any, what: str, prefix: str = "") -> None:
    """A one-line ValueError listing every problem of `config` (see `config_problems`), prefixed with `what`."""
    found = config_problems(config, prefix)
    if found:
        raise ValueError(f"{what}: {'; '.join(found)}")
