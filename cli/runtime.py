"""Runtime commands (torch-free): info, run, evaluate, profile, devices, bundle, verify-bundle and keygen."""

from __future__ import annotations

import io
import json
import warnings
from collections import Counter
from pathlib import Path

import click

from edgemed.cli.options import (
    backend_option,
    csv_list,
    device_option,
    force_option,
    quiet_option,
    recording_options,
    threads_option,
    user_errors,
)
from edgemed.core.atomic import check_output, check_output_folder, check_outputs, write_bytes_atomic
from edgemed.core.metrics import format_report
from edgemed.runtime.model import DEFAULT_BATCH_SIZE, UNCERTAIN, EdgeModel
from edgemed.runtime.onnx.info import describe, format_info
from edgemed.runtime.ops.profile import DEFAULT_RUNS, DEFAULT_WARMUP
from edgemed.runtime.ops.run import DEFAULT_CHUNK_SECONDS, quality_summary, run_file, write_predictions


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


@click.command("info")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@user_errors
def info_command(model: Path, as_json: bool) -> None:
    """Describe an ONNX model: spec, labels, opset, ops, parameters, size, sha256, integrity and metadata."""
    info = describe(model)
    click.echo(json.dumps(info.to_dict(), indent=2) if as_json else format_info(info))


@click.command("run")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Write predictions to a .json or .csv file.")
@device_option
@click.option("--strict", is_flag=True, help="Fail instead of warning when a provider is missing, nodes fall back, "
              "or the model lacks its sidecar or integrity record.")
@threads_option
@click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(1))
@click.option("--stream", is_flag=True, help="Feed INPUT as a continuous signal through a streaming model.")
@click.option("--chunk-seconds", default=DEFAULT_CHUNK_SECONDS, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Streaming: seconds of signal per push (the model step is the largest allowed size within it).")
@recording_options
@backend_option
@force_option
@user_errors
def run_command(model, input_path, out, device, strict, threads, batch_size, stream, chunk_seconds, sampling_rate_hz,
                beats, backend, precision, force):
    """Run an ONNX model on INPUT and summarise the predictions.

    INPUT: .npy, .npz, .csv, a WFDB record, an image or a folder of images. A beat model also takes a raw recording
    (a WFDB record or folder of records, a .npy/.csv signal with --sampling-rate, an .edf file): it detects the
    beats and classifies each, one row per beat (record, sample, time_s, label, p_<class>..., quality)."""
    if out is not None:
        check_output(out, force, (model, input_path), what="--out")
    loaded = load_model(model, device=device, strict=strict, threads=threads, batch_size=batch_size, backend=backend,
                        precision=precision)
    result = run_file(loaded, input_path, stream=stream, chunk_seconds=chunk_seconds,
                      sampling_rate_hz=sampling_rate_hz, beats=beats)
    counts = Counter(r["label"] for r in result.rows)
    click.echo(f"{result.description}: {len(result.rows)} predictions in {result.seconds:.2f} s "
               f"({loaded.providers.summary()})")
    shown = list(result.labels) + ([UNCERTAIN] if counts.get(UNCERTAIN) else [])
    click.echo("predicted: " + ", ".join(f"{name} {counts.get(name, 0)}" for name in shown))
    if "latency_s" in result.extra:
        lat = result.extra["latency_s"]
        click.echo(f"stream latency (R peak to report): median {lat['median']:.2f} s, 95th percentile "
                   f"{lat['p95']:.2f} s, max {lat['max']:.2f} s with {lat['chunk_seconds']:g} s chunks")
    if result.report:
        click.echo(format_report(result.report))
    warning = quality_summary(result)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if out:
        write_predictions(result, out, loaded, force=force, inputs=(input_path,))
        click.echo(f"wrote {out}")


@click.command("evaluate")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--records", help="Comma-separated record names of the DATA folder (default: all).")
@click.option("--beats", type=click.Choice(["reference", "detect"]), default="reference", show_default=True,
              help="Classify the reference-annotated beats, or the detector's (matched by the EC57 150 ms rule).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Folder for evaluation.json, evaluation.md, confusion.png and model_card.md.")
@device_option
@threads_option
@backend_option
@force_option
@quiet_option
@user_errors
def evaluate_command(model, data, records, beats, out_dir, device, threads, backend, precision, force, quiet):
    """Evaluate a beat model on annotated WFDB records (a folder, --records of it, or one record) by the AAMI
    EC57 rules: per record and gross, per class Se, +P, FPR and F1, the confusion matrix, and with --beats detect
    the detection Se and +P. Every reference beat is counted."""
    from edgemed.runtime.ecg.evaluate import evaluate
    from edgemed.runtime.ecg.evaluate_report import EVALUATION_FILES, markdown, write_evaluation
    from edgemed.runtime.ecg.model_card import model_card
    from edgemed.runtime.ecg.recording import list_recordings

    if out_dir is not None:  # before the work, not after it
        check_output_folder(out_dir, (*EVALUATION_FILES, "model_card.md"), force, (model,))
    loaded = load_model(model, device=device, threads=threads, backend=backend, precision=precision)
    names = csv_list(records)
    paths = list_recordings(data, names)
    with click.progressbar(length=len(paths), label="records", file=None if not quiet else io.StringIO(),
                           item_show_func=lambda name: name) as bar:
        def step(name: str) -> None:
            bar.update(1, name)

        ev = evaluate(loaded, data, names, beats, progress=step)
    text = markdown(ev)
    if not quiet:
        click.echo(text.split("## Per record")[0].rstrip())
    if out_dir is not None:
        written = write_evaluation(ev, out_dir, force, inputs=(model,))
        card = out_dir / "model_card.md"
        check_output(card, force, (model,), what="model card")
        write_bytes_atomic(card, model_card(loaded, ev), replace=force)
        click.echo("wrote " + ", ".join(str(p) for p in [*written, card]))


@click.command("score")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for predictions/*.parquet, failures/ and summary.json; a re-run resumes it.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1),
              help="Ray actors scoring at once, each with its own runtime session.")
@click.option("--address", metavar="RAY_ADDRESS", help="An existing Ray cluster (default: a local Ray, started and "
              "stopped here).")
@recording_options
@quiet_option
@user_errors
def score_command(model, data, out_dir, workers, address, sampling_rate_hz, beats, quiet):
    """Score an archive (WFDB folders or records, .npz shards, images) on Ray Data: one Parquet part per item with
    the columns of `edgemed run`, a summary.json with per-item counts, failures and throughput. Bad items are
    reported and skipped; a re-run with the same --out scores only what is missing."""
    from edgemed.runtime.ops.score import list_items, score

    total = len(list_items(list(data)))
    with click.progressbar(length=total, label="items", file=io.StringIO() if quiet else None,
                           item_show_func=lambda name: name) as bar:
        summary = score(model, list(data), out_dir, workers, address,
                        {"sampling_rate_hz": sampling_rate_hz, "beats": beats}, progress=lambda n: bar.update(1, n))
    s = summary.to_dict()
    click.echo(f"{s['items']} items: {s['scored_now']} scored now ({s['rows_now']:,} rows), {s['already_done']} "
               f"already done, {len(s['failed'])} failed; {s['seconds']:.1f} s with {workers} worker(s)"
               + (f", {s['items_per_minute']:.1f} items/min" if s["items_per_minute"] else ""))
    for f in s["failed"]:
        click.echo(f"failed: {f['item']}: {f['error']}", err=True)
    click.echo(f"wrote {out_dir / 'predictions'}/ and {out_dir / 'summary.json'}")


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
    from edgemed.core.atomic import write_bytes_atomic
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
        click.echo(f"{key:<20} {value}")


@click.command("bundle")
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option("--device", required=True, metavar="NAME", help="Device profile the bundle targets.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="A folder, or a file.zip.")
@click.option("--sign", "sign_key", type=click.Path(path_type=Path), metavar="KEY",
              help="Sign manifest.json with this Ed25519 private key (PEM; needs the sign extra).")
@click.option("--card", "cards", multiple=True, type=click.Path(path_type=Path), metavar="CARD",
              help="A model card written by `edgemed evaluate` for one of the MODELS (repeatable).")
@click.option("--tuned", "tuned_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="The result of `edgemed tune` (its model, backend, precision and threads) instead of MODELS.")
@backend_option
@force_option
@user_errors
def bundle_command(models, device, output, sign_key, cards, tuned_dir, backend, precision, force):
    """Bundle models with their sidecars, a manifest (checksums, spec, reports, device, pinned requirements),
    model cards and a README; optionally signed."""
    from edgemed.runtime.deploy.bundle import make_bundle, read_tuned

    tuned = None
    if tuned_dir is not None:
        if models:
            raise click.UsageError("--tuned bundles the tuned model; give no MODELS beside it")
        tuned = read_tuned(tuned_dir)
        models, backend, precision = (tuned_dir / tuned["file"],), tuned["backend"], tuned["precision"]
    elif not models:
        raise click.UsageError("give MODELS, or --tuned DIR")
    manifest = make_bundle(list(models), device, output, sign_key=sign_key, force=force, cards=list(cards),
                           backend=backend, precision=precision, tuned=tuned)
    click.echo(f"wrote {output}: {len(manifest.models)} model(s) for {manifest.device['name']}, "
               f"{len(manifest.files)} files with their sha256 in manifest.json" + (", signed" if sign_key else ""))


@click.command("verify-bundle")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--key", type=click.Path(path_type=Path), metavar="PUB",
              help="Require a valid Ed25519 signature by this public key (PEM).")
@click.option("--run", "replay", is_flag=True,
              help="Also run each model's reference inputs here and compare with the outputs validated when it was "
                   "bundled (an on-device acceptance check).")
@user_errors
def verify_bundle_command(path, key, replay):
    """Check a bundle: its layout, every checksum in its manifest, each model's own sidecar and integrity record,
    the signature (with --key), that every model loads, and with --run that it computes here what it computed
    when validated; exit 1 otherwise."""
    from edgemed.runtime.deploy.bundle import verify_bundle

    manifest = verify_bundle(path, key=key, run=replay)
    for result in manifest.replays:
        click.echo(f"replayed {result.describe()}")
    sig = manifest.signature
    signed = f"signature valid (key {sig['signed_by'][:16]}...)" if "signed_by" in sig else "not signed"
    click.echo(f"{path}: OK: {len(manifest.files)} files match their sha256, {len(manifest.models)} model(s) load "
               f"with matching sidecars and integrity records; {signed}; device {manifest.device['name']}")


@click.command("keygen")
@click.argument("prefix", type=click.Path(path_type=Path))
@force_option
@user_errors
def keygen_command(prefix, force):
    """Make an Ed25519 key pair for signing bundles: PREFIX.key (private, owner-only) and PREFIX.pub."""
    from edgemed.runtime.deploy.signing import keygen

    private, public = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    fingerprint = keygen(private, public, force=force)
    click.echo(f"wrote {private} (keep it secret) and {public}; fingerprint {fingerprint}")
