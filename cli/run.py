"""`edgemed run`, `evaluate` and `score` (torch-free): predictions and clinical figures for recordings."""

from __future__ import annotations

import io
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import click

from edgemed.cli.options import (
    as_flags,
    backend_option,
    csv_list,
    device_option,
    force_option,
    lead_option,
    quiet_option,
    recording_options,
    threads_option,
    user_errors,
)
from edgemed.cli.runtime import load_model
from edgemed.core.atomic import check_output, check_output_folder, write_bytes_atomic
from edgemed.core.metrics import format_report
from edgemed.runtime.model import DEFAULT_BATCH_SIZE, UNCERTAIN
from edgemed.runtime.ops.run import (
    DEFAULT_CHUNK_SECONDS,
    episodes_path,
    quality_summary,
    run_file,
    write_predictions,
)


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
                beats, lead_map, backend, precision, force):
    """Run an ONNX model on INPUT and summarise the predictions.

    INPUT: .npy, .npz, .csv, a WFDB record, an image or a folder of images. A beat model also takes a raw recording
    (a WFDB record or folder of records, a .npy/.csv signal with --sampling-rate, an .edf file): it detects the
    beats and classifies each, one row per beat (record, sample, time_s, label, p_<class>..., quality)."""
    if out is not None:
        check_output(out, force, (model, input_path), what="--out")
    loaded = load_model(model, device=device, strict=strict, threads=threads, batch_size=batch_size, backend=backend,
                        precision=precision)
    result = run_file(loaded, input_path, stream=stream, chunk_seconds=chunk_seconds,
                      sampling_rate_hz=sampling_rate_hz, beats=beats, lead_map=lead_map)
    counts = Counter(r["label"] for r in result.rows)
    click.echo(f"{result.description}: {len(result.rows)} predictions in {result.seconds:.2f} s "
               f"({loaded.providers.summary()})")
    shown = list(result.labels) + ([UNCERTAIN] if counts.get(UNCERTAIN) else [])
    click.echo("predicted: " + ", ".join(f"{name} {counts.get(name, 0)}" for name in shown))
    if result.extra.get("episodes"):
        kinds = Counter(e["kind"] for e in result.extra["episodes"])
        click.echo("episodes: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
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
        click.echo(f"wrote {out}" + (f" and {episodes_path(out)}" if out.suffix == ".csv"
                                     and "episodes" in result.extra else ""))


@click.command("evaluate")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--records", help="Comma-separated record names of the DATA folder (default: all).")
@click.option("--beats", type=click.Choice(["reference", "detect"]), default="reference", show_default=True,
              help="Classify the reference-annotated beats, or the detector's (matched by the EC57 150 ms rule).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Folder for evaluation.json, evaluation.md, confusion.png and model_card.md.")
@lead_option
@device_option
@threads_option
@backend_option
@force_option
@quiet_option
@user_errors
def evaluate_command(model, data, records, beats, out_dir, lead_map, device, threads, backend, precision, force,
                     quiet):
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
    with ExitStack() as stack:  # the bar starts with the first record, after evaluate has checked the model
        bars: list = []

        def step(name: str) -> None:
            if not bars:
                bars.append(stack.enter_context(click.progressbar(
                    length=len(paths), label="records", file=None if not quiet else io.StringIO(),
                    item_show_func=lambda name: name)))
            bars[0].update(1, name)

        ev = evaluate(loaded, data, names, beats, progress=step, lead_map=lead_map)
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
def score_command(model, data, out_dir, workers, address, sampling_rate_hz, beats, lead_map, quiet):
    """Score an archive (WFDB folders or records, .npz shards, images) on Ray Data: one Parquet part per item with
    the columns of `edgemed run`, a summary.json with per-item counts, failures and throughput. Bad items are
    reported and skipped; a re-run with the same --out scores only what is missing."""
    from edgemed.runtime.ops.score import list_items, score

    total = len(list_items(list(data)))
    with click.progressbar(length=total, label="items", file=io.StringIO() if quiet else None,
                           item_show_func=lambda name: name) as bar:
        options = {"sampling_rate_hz": sampling_rate_hz, "beats": beats, "lead_map": lead_map}
        summary = score(model, list(data), out_dir, workers, address, options, progress=lambda n: bar.update(1, n))
    s = summary.to_dict()
    click.echo(f"{s['items']} items: {s['scored_now']} scored now ({s['rows_now']:,} rows), {s['already_done']} "
               f"already done, {len(s['failed'])} failed; {s['seconds']:.1f} s with {workers} worker(s)"
               + (f", {s['items_per_minute']:.1f} items/min" if s["items_per_minute"] else ""))
    for f in s["failed"]:
        click.echo(f"failed: {f['item']}: {as_flags(f['error'])}", err=True)
    click.echo(f"wrote {out_dir / 'predictions'}/ and {out_dir / 'summary.json'}")
