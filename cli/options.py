"""Option decorators and error handling shared by every command."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from edgemed.core.errors import EdgemedError


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn edgemed's errors and file-system errors into a one-line message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EdgemedError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from exc

    return wrapper


def seed_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--seed", default=0, show_default=True, type=int,
                        help="Seed for data generation, splits, initialisation and shuffling.")(func)


def device_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
                        help="Where PyTorch runs: CUDA when present (auto), or forced.")(func)


def quiet_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--quiet", "-q", is_flag=True, help="Print only the final summary.")(func)


def overwrite_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--overwrite", is_flag=True,
                        help="Replace an earlier edgemed run in --out (never a folder edgemed did not write).")(func)


def force_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--force", is_flag=True, help="Replace existing output files (never an input).")(func)


def parse_value(text: str) -> Any:
    """A CLI config value: int, float, true/false, or a comma list of those; anything else stays text."""
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part]
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_pairs(pairs: tuple[str, ...], option: str) -> dict[str, Any]:
    """`KEY=VALUE` strings to a dict, with a clear error for anything else."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        out[key.strip().replace("-", "_")] = parse_value(value.strip())
    return out
