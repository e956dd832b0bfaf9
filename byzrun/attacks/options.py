"""Parsing and checking of attack options, each failure one ConfigError line naming the fix.

Attacks keep their raw options from the config and check them in validate(), not in __init__:
Hydra wraps any exception raised during instantiation, which would hide the one-line message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from byzrun.errors import ConfigError


def choice(option: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"attack.{option}={value!r} is unknown; choose one of {', '.join(choices)}")
    return value


def number(option: str, value: Any, *, low: float | None = None, high: float | None = None) -> float:
    """A finite real number in [low, high]."""
    try:
        if isinstance(value, bool):
            raise TypeError
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or (low is not None and x < low) or (high is not None and x > high):
        span = {(True, True): f"in [{low}, {high}]", (True, False): f">= {low}", (False, True): f"<= {high}"}
        where = span.get((low is not None, high is not None), "finite")
        raise ConfigError(f"attack.{option} must be a number {where}, got {value!r}; set attack.{option}=...")
    return x


def integer(option: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            as_float = math.nan
        if not (math.isfinite(as_float) and as_float.is_integer()) or isinstance(value, bool):
            raise ConfigError(f"attack.{option} must be an integer, got {value!r}")
        value = int(as_float)
    if (low is not None and value < low) or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]" if low is not None else f"<= {high}"
        raise ConfigError(f"attack.{option} must be an integer {bound}, got {value}")
    return value


def factor(option: str, value: Any, words: Sequence[str], hint: str) -> float | str:
    """A non-negative number, or one of `words` (auto, search)."""
    if isinstance(value, str) and value in words:
        return value
    try:
        if isinstance(value, bool):
            raise TypeError
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < 0:
        alternatives = " or ".join(["a number >= 0", *words])
        raise ConfigError(f"attack.{option} must be {alternatives}, got {value!r}; {hint}")
    return x


def pair(option: str, value: Any) -> tuple:
    """Two values, given as a list [a, b] or a single value used for both."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(f"attack.{option} needs two values [a, b], got {list(value)}")
        return tuple(value)
    return (value, value)
