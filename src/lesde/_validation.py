"""Argument checks shared by the configs and entry points (scikit-learn's check_scalar habit).

Each raises with the argument's name, the expected and the found value:
``ValueError("`n_trials` must be a positive int, got 0")``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["check_int", "check_fraction", "check_choice", "check_seed", "check_positive_float"]


def check_int(name: str, value: Any, *, low: int = 1, allow_none: bool = False) -> int | None:
    """An int >= ``low`` (bools refused); None passes when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = {1: "a positive int", 0: "an int >= 0"}.get(low, f"an int >= {low}")
        if allow_none:
            what += " or None"
        raise ValueError(f"`{name}` must be {what}, got {value!r}")
    return value


def check_fraction(name: str, value: Any, *, low: float = 0.0, high: float = 1.0,
                   closed_high: bool = True) -> float:  # fmt: skip
    """A float in [low, high] (or [low, high) when not ``closed_high``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and low <= value and (value <= high if closed_high else value < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ValueError(f"`{name}` must be in [{low:g}, {high:g}{bracket}, got {value!r}")
    return float(value)


def check_positive_float(name: str, value: Any) -> float:
    """A finite float > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"`{name}` must be a finite float > 0, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """One of ``choices``."""
    options = list(choices)
    if value not in options:
        raise ValueError(f"`{name}` must be one of {options}, got {value!r}")
    return value


def check_seed(name: str, value: Any) -> int:
    """A seed: an int in [0, 2**32)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ValueError(f"`{name}` must be an int in [0, 2^32), got {value!r}")
    return value
