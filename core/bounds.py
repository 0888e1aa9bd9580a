"""Checks for numbers that arrive from files (specs, configs, manifests): finite, of the right type, in range.

A model file or checkpoint may be crafted. A number such as `1e400` (read by JSON as infinity), `10**400`, `True`
or a 5,000-digit string must end in a clear error naming the field, not in an OverflowError or a huge
allocation later. Each bound here is far above any real model's value.
"""

from __future__ import annotations

import math
from typing import Any

from edgemed.core.errors import SpecError

MAX_DIM = 2**31 - 1  # one tensor axis
MAX_SECONDS = 86_400.0  # a window, period or averaging span: at most a day
MAX_COUNT = 1_000_000  # frames, beats, chunk multiples, example sizes
MAX_LABELS = 10_000
MAX_TEXT = 1_000  # a label, channel or axis name


def number(value: Any, what: str, low: float = 0.0, high: float = math.inf, low_open: bool = False,
           error: type[Exception] = SpecError) -> float:
    """`value` as a float: a real number (not a bool, not a string), finite, in [low, high] (low excluded when
    `low_open`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{what} must be a number, got {_shown(value)}")
    try:
        result = float(value)
    except OverflowError:
        raise error(f"{what} {_shown(value)} is out of range") from None
    if not math.isfinite(result) or result < low or (low_open and result == low) or result > high:
        bound = f"{'above' if low_open else 'at least'} {low:g}" + (f" and at most {high:g}" if high < math.inf else "")
        raise error(f"{what} must be a finite number {bound}, got {_shown(value)}")
    return result


def whole(value: Any, what: str, low: int = 0, high: int = MAX_DIM, error: type[Exception] = SpecError) -> int:
    """`value` as an int: a whole number (not a bool, float or string) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise error(f"{what} must be a whole number from {low:,} to {high:,}, got {_shown(value)}")
    return value


def text(value: Any, what: str, error: type[Exception] = SpecError) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise error(f"{what} must be a string of at most {MAX_TEXT} characters, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    """A short, safe rendering of a value for an error message (a 5,000-digit int is not printed whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
        return "a number of more than 18 digits"
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
