"""Runtime commands (torch-free): `edgemed info`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from edgemed.cli.options import user_errors
from edgemed.runtime.model_info import describe, format_info


@click.command("info")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@user_errors
def info_command(model: Path, as_json: bool) -> None:
    """Describe an ONNX model: spec, labels, opset, ops, parameters, size, sha256 and metadata."""
    info = describe(model)
    click.echo(json.dumps(info, indent=2) if as_json else format_info(info))
