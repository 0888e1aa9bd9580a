"""Shared by the runtime commands: loading a model with its warnings shown one line each."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from edgemed.runtime.model import EdgeModel


def load_model(path: Path, **options) -> EdgeModel:
    """An EdgeModel, with its load warnings (integrity, providers, metadata) printed as one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = EdgeModel(path, **options)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    if model.device.emulation:
        click.echo(f"device {model.device.name}: {model.device.emulation}")
    return model
