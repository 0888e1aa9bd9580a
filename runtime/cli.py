"""Runtime commands (torch-free): `edgemed info` and `edgemed run`."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import click
from edgemed.cli.options import user_errors
from edgemed.core.metrics import format_report
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.model_info import describe, format_info
from edgemed.runtime.providers import PRESETS
from edgemed.runtime.run import run_file, write_predictions


@click.command("info")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@user_errors
def info_command(model: Path, as_json: bool) -> None:
    """Describe an ONNX model: spec, labels, opset, ops, parameters, size, sha256 and metadata."""
    info = describe(model)
    click.echo(json.dumps(info, indent=2) if as_json else format_info(info))


@click.command("run")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Write predictions to a .json or .csv file.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(sorted(PRESETS)),
              help="Execution providers, in order (cuda falls back to CPU with a warning).")
@click.option("--strict", is_flag=True, help="Fail instead of warning when a provider is missing or nodes fall back.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1), help="Intra-op threads.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option("--stream", is_flag=True, help="Feed INPUT as a continuous signal through a streaming model.")
@click.option("--chunk-seconds", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Streaming: seconds of signal per push (the model step is the largest allowed size within it).")
@user_errors
def run_command(model, input_path, out, device, strict, threads, batch_size, stream, chunk_seconds):
    """Run an ONNX model on INPUT (.npy, .npz, .csv or a WFDB record) and summarise the predictions."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = EdgeModel(model, device=device, strict=strict, threads=threads, batch_size=batch_size)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    result = run_file(loaded, input_path, stream=stream, chunk_seconds=chunk_seconds)
    counts = Counter(r["label"] for r in result.rows)
    click.echo(f"{result.description}: {len(result.rows)} predictions in {result.seconds:.2f} s "
               f"({loaded.providers.summary()})")
    click.echo("predicted: " + ", ".join(f"{name} {counts.get(name, 0)}" for name in result.labels))
    if result.report:
        click.echo(format_report(result.report))
    if out:
        write_predictions(result, out, loaded)
        click.echo(f"wrote {out}")
