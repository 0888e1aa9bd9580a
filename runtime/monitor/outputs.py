"""Where a monitoring session writes: JSON lines (one per beat and per event, flushed as they happen, to a file or
standard output), FHIR R4 Observations (heart rate and rhythm per minute, each alarm with its strip), and the HTML
report. The JSON lines grow while the session runs (a nurse station or a pipeline reads them live); the FHIR files
and the report are written whole at the end (temporary file, then rename), and the report again every
`REPORT_EVERY_S` seconds of signal so a current one is always there."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from edgemed.core.atomic import check_outputs, write_bytes_atomic
from edgemed.runtime.monitor import fhir
from edgemed.runtime.monitor.report import render

REPORT_EVERY_S = 600.0
FHIR_FILES = ("heart-rate.json", "rhythm.json", "alarms.json")


class JsonLines:
    """One JSON object per line, flushed at once (non-finite numbers are written as null)."""

    def __init__(self, path: Path | None, force: bool = False) -> None:
        self.path = path
        if path is None:
            self._file: IO[str] = sys.stdout
        else:
            mode = "w" if force else "x"  # exclusive: an existing file is kept unless `force`
            self._file = open(path, mode, encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __call__(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, allow_nan=False, default=_plain) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self.path is not None and not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def check(jsonl: Path | None, fhir_dir: Path | None, report: Path | None, force: bool, inputs: list[Path]) -> None:
    """Before the session: every output path free (or `force`), none an input, none twice."""
    outputs: dict[str, Path | None] = {"`jsonl`": jsonl, "`report`": report}
    if fhir_dir is not None:
        outputs.update({f"`fhir` {name}": fhir_dir / name for name in FHIR_FILES})
        if fhir_dir.exists() and not fhir_dir.is_dir():
            raise OSError(f"{fhir_dir} exists and is not a folder")
    check_outputs(outputs, force, inputs)


def write_report(path: Path, session, replace: bool) -> None:
    write_bytes_atomic(path, render(session.summary(), session.strips, session.fs or 1.0), replace=replace)


def write_fhir(folder: Path, session, replace: bool, subject: str = "Patient/unknown") -> list[Path]:
    """Three collection Bundles: heart rate per minute, rhythm per minute, alarms with their strips."""
    folder.mkdir(parents=True, exist_ok=True)
    start: dt.datetime = session.started
    device = f"edgemed {session.model.path.name} ({session.model.sha256[:12]})"
    rates = [fhir.heart_rate(subject, start, m["end_s"], m["heart_rate_bpm"], device) for m in session.minutes
             if m["heart_rate_bpm"] is not None]
    rhythm = [fhir.rhythm(subject, start, m["start_s"], m["end_s"], dict(m["counts"]), m["af"], device)
              for m in session.minutes]
    alarms = [fhir.alarm(subject, start, e, _strip(session, e["id"]), session.fs or 1.0, device)
              for e in session.summary()["events"]]
    written = []
    for name, resources in zip(FHIR_FILES, (rates, rhythm, alarms), strict=True):
        write_bytes_atomic(folder / name, json.dumps(fhir.bundle(resources), indent=1), replace=replace)
        written.append(folder / name)
    return written


def _strip(session, event_id: int):
    import numpy as np

    strip = session.strips.get(event_id)
    return None if strip is None else np.asarray(strip["samples"])
