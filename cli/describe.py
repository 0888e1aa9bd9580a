"""`edgemed info`, `profile` and `devices` (torch-free): what a model is, how fast it runs, where."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgemed.cli.options import (
    backend_option,
    device_option,
    force_option,
    threads_option,
    user_errors,
)
from edgemed.core.atomic import check_outputs, write_bytes_atomic
from edgemed.runtime.onnx.info import describe, format_info
from edgemed.runtime.ops.profile_defaults import DEFAULT_RUNS, DEFAULT_WARMUP


@click.command("info")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@user_errors
def info_command(model: Path, as_json: bool) -> None:
    """Describe an ONNX model: spec, labels, opset, ops, parameters, size, sha256, integrity and metadata."""
    info = describe(model)
    click.echo(json.dumps(info.to_dict(), indent=2) if as_json else format_info(info))


@click.command("profile")
@click.argument("model", type=click.Path(path_type=Path))
@device_option
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@threads_option
@click.option("--runs", default=DEFAULT_RUNS, show_default=True, type=click.IntRange(2))
@click.option("--warmup", default=DEFAULT_WARMUP, show_default=True, type=click.IntRange(0))
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Run for S seconds instead of --runs.")
@click.option("--data", "data_path", type=click.Path(path_type=Path),
              help="Real inputs (.npy, .npz, .csv, WFDB, images).")
@click.option("--compare", multiple=True, type=click.Path(path_type=Path), help="Other variants (int8, fp16...).")
@click.option("--torch", "torch_checkpoint", type=click.Path(path_type=Path),
              help="The PyTorch checkpoint, run in a subprocess (needs the export extra).")
@click.option("--per-op", is_flag=True, help="onnxruntime's profiler: top ops by time.")
@click.option("--no-cold-start", is_flag=True, help="Skip the cold-start measurement (a fresh interpreter).")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Write the report (schema edgemed.profile/1).")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="Latency histogram and CDF as PNG.")
@backend_option
@force_option
@user_errors
def profile_command(model, device, batch, threads, runs, warmup, duration, data_path, compare, torch_checkpoint,
                    per_op, no_cold_start, json_path, plot_path, backend, precision, force):
    """Profile latency, cold start and memory against a device's budgets, optionally beside other variants."""
    from edgemed.runtime.ops.profile import profile
    from edgemed.runtime.ops.profile_report import format_profile, plot_latency

    inputs = [model, *compare, *([torch_checkpoint] if torch_checkpoint else [])]
    for path in inputs:
        if not Path(path).is_file():
            raise click.ClickException(f"{path}: no such file")
    check_outputs({"--json": json_path, "--plot": plot_path}, force, [*inputs, data_path])
    references = {}
    if torch_checkpoint:
        references["pytorch"] = _torch_reference(torch_checkpoint)
    report = profile(model, device=device, batch=batch, threads=threads, runs=runs, warmup=warmup, duration=duration,
                     backend=backend, precision=precision,
                     data=data_path, compare=list(compare), references=references, with_per_op=per_op,
                     with_cold_start=not no_cold_start)
    click.echo(format_profile(report))
    if json_path:
        write_bytes_atomic(json_path, report.to_json(), replace=force)
        click.echo(f"wrote {json_path}")
    if plot_path:
        plot_latency(report.times, plot_path, f"{model.name} on {report.device['name']}", replace=force)
        click.echo(f"wrote {plot_path}")


def _torch_reference(checkpoint: Path):
    """A factory for the PyTorch original in a worker process; the export extra provides it."""
    try:
        from edgemed.export.torch_reference import TorchReference
    except ImportError as exc:
        raise click.ClickException("--torch needs the export extra: pip install 'edgemed[export]'") from exc
    return lambda buffers, threads: TorchReference(checkpoint, buffers, list(buffers[0]), threads)


@click.group("devices")
def devices_group() -> None:
    """List and show device profiles (bedside boxes, Raspberry Pi, Jetson, OpenVINO, CUDA server, host)."""


@devices_group.command("list")
@user_errors
def devices_list() -> None:
    """One line per built-in device profile."""
    from edgemed.devices.profile import list_profiles, load_profile

    for name in list_profiles():
        p = load_profile(name)
        click.echo(f"{p.name:<16} {p.arch:<8} {p.cores:>3} cores  budget {p.latency_budget_ms:>6} ms  "
                   f"{p.precision:<5} {', '.join(p.provider_names)}  {p.emulation or 'this machine'}")


@devices_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def devices_show(name: str, as_json: bool) -> None:
    """Every field of one profile (a built-in name or a .toml file)."""
    from edgemed.devices.profile import load_profile

    p = load_profile(name).to_dict()
    if as_json:
        click.echo(json.dumps(p, indent=2))
        return
    for key, value in p.items():
        click.echo(f"{key:<20} {_plain(value)}")


def _plain(value: object) -> str:
    """A profile field as a person reads it: lists joined, providers by name (with their options), none for empty."""
    if value is None or value == [] or value == {}:
        return "none"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict) and "name" in value:
        options = value.get("options") or {}
        return str(value["name"]) + (f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")
    return str(value)
