"""`edgemed monitor` (torch-free): a live ECG through a beat model, with alarms and a Holter-style report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgemed.cli.options import device_option, force_option, lead_option, threads_option, user_errors


@click.command("monitor")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("source", metavar="SOURCE")
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Replay a recording at this many times real time (0: as fast as it can be processed).")
@click.option("--sampling-rate", "sampling_rate_hz", type=click.FloatRange(min=0, min_open=True),
              help="The rate (Hz) of a raw .npy or CSV recording replayed.")
@click.option("--profile", default="adult", show_default=True, metavar="NAME|TOML",
              help="Alarm thresholds and priorities: a built-in profile or a .toml file.")
@click.option("--jsonl", type=click.Path(path_type=Path),
              help="Write one JSON line per beat and per event, flushed as they happen ('-' for standard output).")
@click.option("--fhir", "fhir_dir", type=click.Path(path_type=Path),
              help="Folder for FHIR R4 Observations: heart-rate.json, rhythm.json, alarms.json.")
@click.option("--report", type=click.Path(path_type=Path), help="The HTML report (self-contained).")
@click.option("--quiet", "-q", is_flag=True, help="Do not print events as they happen.")
@lead_option
@device_option
@threads_option
@force_option
@user_errors
def monitor_command(model, source, speed, sampling_rate_hz, profile, jsonl, fhir_dir, report, quiet, lead_map, device,
                    threads, force):
    """Monitor a live ECG: SOURCE is a recording replayed (WFDB, EDF, .npy or CSV; see --speed), '-' for raw
    frames on standard input, tcp://HOST:PORT for raw frames from a socket, or lsl:NAME for a Lab Streaming Layer
    stream (the lsl extra). Beats are detected and classified as `edgemed run` does; alarms (ventricular runs,
    couplets, frequent PVCs, brady- and tachycardia, pauses, asystole, lead-off, atrial fibrillation, poor signal,
    source faults) are reported with IEC 60601-1-8 priorities. SIGTERM or Ctrl-C ends it cleanly: every output is
    flushed and closed."""
    from edgemed.runtime.monitor.report import latency_text
    from edgemed.runtime.monitor.run import run_monitor

    to_stdout = jsonl is not None and str(jsonl) == "-"

    def echo(record: dict) -> None:
        if to_stdout:
            click.echo(json.dumps(record))
        elif not quiet and record["type"] == "event" and record["state"] != "end":
            end = "" if record["end_s"] is None else f" to {record['end_s']:.1f} s"
            click.echo(f"[{record['priority']}] {record['kind']} at {record['start_s']:.1f} s{end}: "
                       + ", ".join(f"{k} {v}" for k, v in record["evidence"].items()), err=True)

    session = run_monitor(model, source, profile=profile, speed=speed, sampling_rate_hz=sampling_rate_hz,
                          jsonl=None if to_stdout else jsonl, fhir_dir=fhir_dir, report=report, force=force,
                          echo=echo, device=device, threads=threads, lead_map=lead_map)
    s = session.summary()
    meta = s["session"]
    click.echo(f"monitored {meta['seconds'] / 60:.1f} min of {meta['source']}: {s['beats']:,} beats, "
               f"{len(s['events'])} events; {latency_text(meta)}"
               + (" (stopped by signal)" if meta["stopped_by"] else ""),
               err=to_stdout)
    for path in (jsonl if not to_stdout else None, report, fhir_dir):
        if path is not None:
            click.echo(f"wrote {path}", err=to_stdout)
