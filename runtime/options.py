"""Option decorators shared by the runtime commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def device_option(func: Callable[..., Any]) -> Callable[..., Any]:
    from edgemed.devices.profile import list_profiles

    return click.option(
        "--device", default="cpu", show_default=True, metavar="NAME",
        help=f"cpu, cuda, a device profile ({', '.join(list_profiles())}) or a profile .toml: providers in "
             "order, threads and budgets. A missing provider falls back to CPU with a warning.",
    )(func)
