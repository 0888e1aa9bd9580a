"""Field checks shared by the spec's dataclasses: lists of finite numbers, optional numbers, known keys."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from edgemed.core.bounds import MAX_COUNT, number
from edgemed.core.errors import SpecError


def numbers(values: Any, what: str, low: float = -math.inf, high: float = math.inf) -> tuple[float, ...]:
    """A list of finite numbers in [low, high]."""
    if not isinstance(values, list | tuple) or len(values) > MAX_COUNT:
        raise SpecError(f"{what} must be a list of at most {MAX_COUNT:,} numbers")
    return tuple(number(v, what, low, high) for v in values)


def optional(value: Any, what: str, low: float, high: float, low_open: bool = False) -> float | None:
    return None if value is None else number(value, what, low, high, low_open)


def known(cls, data: dict[str, Any], what: str) -> dict[str, Any]:
    """`data` restricted to `cls`'s fields; unknown keys are a SpecError (a newer writer, or a typo)."""
    if not isinstance(data, dict):
        raise SpecError(f"{what}: expected an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(f"{what}: unknown field(s) {unknown}")
    return data
