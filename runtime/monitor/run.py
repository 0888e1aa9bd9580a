"""`run_monitor`: the library entry of `edgemed monitor` (the CLI only parses for it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgemed.runtime.ecg.recording import LeadMap, check_lead_map
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.monitor import outputs
from edgemed.runtime.monitor.profile import load_alarm_profile
from edgemed.runtime.monitor.session import Monitor
from edgemed.runtime.monitor.sources import open_source


def run_monitor(model: Path, source: str, *, profile: str = "adult", speed: float = 1.0,
                sampling_rate_hz: float | None = None, jsonl: Path | None = None, fhir_dir: Path | None = None,
                report: Path | None = None, force: bool = False, echo: Callable[[dict[str, Any]], None] | None = None,
                lead_map: LeadMap | None = None, **model_options: Any) -> Monitor:
    """Monitor `source` with the beat model at `model` until the source ends or SIGTERM; returns the session.
    `echo` also receives every record (the CLI prints events); `lead_map` says which of the source's channels stands
    for a model lead named otherwise."""
    inputs = [Path(model)] + ([Path(source)] if Path(source).exists() else [])
    outputs.check(jsonl, fhir_dir, report, force, inputs)
    alarm_profile = load_alarm_profile(profile)
    loaded = EdgeModel(model, **model_options)
    check_lead_map(lead_map, loaded.spec)
    feed = open_source(source, sampling_rate_hz, speed)
    lines = outputs.JsonLines(jsonl, force) if jsonl is not None else None
    state = {"reported": 0.0}

    def emit(record: dict[str, Any]) -> None:
        if lines is not None:
            lines(record)
        if echo is not None:
            echo(record)
        if report is not None and session.t - state["reported"] >= outputs.REPORT_EVERY_S:
            state["reported"] = session.t
            outputs.write_report(report, session, replace=True)

    session = Monitor(loaded, feed, alarm_profile, emit, lead_map=lead_map)
    try:
        session.run()
    finally:
        if lines is not None:
            lines.close()
        if report is not None:
            outputs.write_report(report, session, replace=True)
        if fhir_dir is not None:
            outputs.write_fhir(fhir_dir, session, replace=True)
    return session
