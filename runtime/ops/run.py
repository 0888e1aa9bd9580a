"""`edgemed run` as a library call: predictions for a file, by batch or by stream, written atomically."""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core import readers
from edgemed.core.atomic import check_outputs, write_bytes_atomic
from edgemed.core.errors import DataError, InputError
from edgemed.core.metrics import classification_report
from edgemed.runtime.ecg.beats import BeatClassifier, BeatRows
from edgemed.runtime.ecg.ec57 import reference_beats
from edgemed.runtime.ecg.episodes import detected_episodes
from edgemed.runtime.ecg.recording import LeadMap, Recording, check_lead_map, list_recordings, read_recording
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.ops.inputs import read_input


@dataclass
class RunResult:
    rows: list[dict[str, Any]]
    labels: tuple[str, ...]
    description: str
    seconds: float
    report: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


DEFAULT_CHUNK_SECONDS = 1.0


def stream_step(model: EdgeModel, chunk_seconds: float) -> tuple[int, float]:
    """The model step (a multiple of the spec's chunk multiple, at most one push) and the rate."""
    rate = model.spec.preprocessing.sampling_rate_hz or model.spec.preprocessing.frame_rate_hz
    if not rate:
        raise InputError("the model's spec states no sampling rate, so `chunk_seconds` cannot be converted")
    m = model.spec.streaming.chunk_multiple
    push = int(round(chunk_seconds * rate))
    if push < m:
        raise InputError(f"`chunk_seconds` {chunk_seconds} is {push} samples at {rate:g} Hz; the model needs "
                         f"at least {m} per step")
    return push // m * m, rate


def is_beat_input(model: EdgeModel, path: Path) -> bool:
    """Whether `path` is a recording (or folder of them) that a beat model classifies beat by beat: a WFDB record
    or folder, a CSV or EDF signal, or a .npy signal of at most two dimensions (three are model-ready windows)."""
    pre = model.spec.preprocessing
    if pre.window is None or not pre.window.per_beat:
        return False
    try:
        reader = readers.find_reader(path)
    except DataError:
        return False  # no reader takes it: `read_input` says why
    try:
        return reader.holds(Path(path)) == readers.RECORDING
    except DataError as exc:  # a reader takes it but cannot tell what it holds: a damaged file
        raise InputError(str(exc)) from exc


def run_beats(model: EdgeModel, path: Path, stream: bool = False, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
              sampling_rate_hz: float | None = None, beats: str = "detect",
              progress: Callable[[str], None] | None = None, lead_map: LeadMap | None = None) -> RunResult:
    """Every beat of a recording or of each record in a folder: detected (or the reference annotations with
    `beats="reference"`), then classified, whole or streamed chunk by chunk. `lead_map`: which of the records'
    leads stands for a model lead named otherwise."""
    start = time.perf_counter()
    classifier = BeatClassifier(model)
    tables, latencies = [], []
    paths = list_recordings(path)
    for record_path in paths:
        rec = read_recording(record_path, model.spec, sampling_rate_hz, lead_map)
        if progress is not None:
            progress(rec.name)
        given = reference_positions(rec) if beats == "reference" else None
        if not stream:
            tables.append(classifier.classify(rec.signal, rec.fs, given, rec.model_leads, rec.name))
            continue
        if given is not None:
            raise InputError("`stream` detects beats as the signal arrives; drop `beats` reference")
        tables.append(stream_recording(classifier, rec, chunk_seconds))
        latencies.extend((tables[-1].emitted_at - tables[-1].samples) / rec.fs)
    rows = [r for t in tables for r in t.rows()]
    episodes = [{"record": t.record, **e.to_dict(t.fs)} for t in tables
                for e in detected_episodes(t.samples, t.labels, t.fs, t.quality)]
    extra: dict[str, Any] = {"records": [t.record for t in tables], "beats": beats, "episodes": episodes}
    if latencies:
        lat = np.asarray(latencies)
        extra["latency_s"] = {"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)),
                              "max": float(lat.max()), "chunk_seconds": chunk_seconds}
    what = f"{len(paths)} recordings" if len(paths) > 1 else f"recording {tables[0].record}"
    return RunResult(rows, model.labels, f"{what}: {len(rows)} beats ({beats})", time.perf_counter() - start,
                     extra=extra)


def reference_positions(rec: Recording) -> np.ndarray:
    if rec.annotations is None:
        raise InputError(f"record {rec.name}: no reference annotations (.atr); use `beats` detect")
    return reference_beats(rec.annotations)[0]


def stream_recording(classifier: BeatClassifier, rec: Recording, chunk_seconds: float) -> BeatRows:
    """A recording fed chunk by chunk through a beat stream, as a bedside monitor would."""
    stream = classifier.stream(rec.fs, rec.signal.shape[0], rec.model_leads, rec.name)
    step = max(1, int(round(chunk_seconds * rec.fs)))
    parts = [stream.push(rec.signal[:, i : i + step]) for i in range(0, rec.signal.shape[1], step)]
    parts.append(stream.flush())
    return BeatRows.concat(parts, rec.name, rec.fs, classifier.model.labels)


def run_file(model: EdgeModel, path: Path, stream: bool = False,
             chunk_seconds: float = DEFAULT_CHUNK_SECONDS, sampling_rate_hz: float | None = None,
             beats: str = "detect", progress: Callable[[str], None] | None = None,
             lead_map: LeadMap | None = None) -> RunResult:
    check_lead_map(lead_map, model.spec)
    if is_beat_input(model, path):
        return run_beats(model, path, stream, chunk_seconds, sampling_rate_hz, beats, progress, lead_map)
    if sampling_rate_hz is not None:
        raise InputError("`sampling_rate_hz` applies to raw recordings run through a beat model")
    start = time.perf_counter()
    data = read_input(path, model.spec, whole_signal=stream, lead_map=lead_map)
    if not stream:
        pred = model.predict(data.x, lengths=data.lengths, sampling_rate_hz=data.sampling_rate_hz)
        rows = [{"index": i, "id": data.ids[i] if data.ids else str(i), **r,
                 **({"true": data.truth[i]} if data.truth else {})} for i, r in enumerate(pred.records())]
        report = None
        if data.truth:
            index = {name: k for k, name in enumerate(model.labels)}
            unknown = sorted(set(data.truth) - set(index))
            if unknown:
                raise InputError(f"true labels {unknown} are not among the model's labels {list(model.labels)}")
            report = classification_report([index[t] for t in data.truth], pred.probabilities, model.labels)
        return RunResult(rows, model.labels, data.description, time.perf_counter() - start, report)
    if model.spec.streaming is None:
        raise InputError(f"{model.path.name} is not a streaming model; export it with `streaming`, or drop `stream`")
    step, rate = stream_step(model, chunk_seconds)
    signal = data.x if data.x.ndim == len(model.spec.signal.shape) else data.x[None]
    streamer = model.stream(chunk=step, batch=signal.shape[0])
    push = int(round(chunk_seconds * rate))
    axis = streamer.axis
    rows = []
    for begin in range(0, signal.shape[axis], push):
        piece = np.take(signal, np.arange(begin, min(begin + push, signal.shape[axis])), axis=axis)
        for pred in streamer.push(piece, sampling_rate_hz=data.sampling_rate_hz):
            end_s = pred.end_sample / rate
            rows.extend({"index": len(rows) + b, "id": f"stream{b}:chunk{pred.chunk_index}", "end_s": end_s, **r}
                        for b, r in enumerate(pred.records()))
    return RunResult(rows, model.labels, data.description, time.perf_counter() - start,
                     extra={"step_samples": step, "push_samples": push, "rate_hz": rate})


def _marks(row: dict[str, Any]) -> list[str]:
    q = row.get("quality", ())
    return [m for m in q.split(";") if m != "ok"] if isinstance(q, str) else list(q)


def quality_summary(result: RunResult) -> str | None:
    """A warning line when some predictions were made on implausible input, else None."""
    marks = Counter(m for r in result.rows for m in _marks(r))
    flagged = sum(1 for r in result.rows if _marks(r))
    if not flagged:
        return None
    detail = ", ".join(f"{k} {v}" for k, v in marks.most_common())
    return (f"{flagged} of {len(result.rows)} predictions carry quality marks ({detail}: input unlike the training "
            "data, or a beat window padded at a recording's edge); see the output's quality column")


def flat_rows(result: RunResult) -> list[dict[str, Any]]:
    """One flat dict per prediction, the columns of `edgemed run`'s CSV: for beats record, sample, time_s, label;
    otherwise index, id (end_s when streamed), label (true when known); then p_<class> and quality."""
    if result.rows and "record" in result.rows[0]:  # beats: already flat
        return result.rows
    keys = [k for k in ("index", "id", "end_s", "label", "true") if any(k in r for r in result.rows)]
    return [{**{k: r.get(k, "") for k in keys}, **{f"p_{n}": float(r["probabilities"][n]) for n in result.labels},
             "quality": ";".join(r.get("quality", ())) or "ok"} for r in result.rows]


def predictions_text(result: RunResult, suffix: str, model: EdgeModel) -> str:
    """JSON (with a summary) or CSV (one row per prediction), by suffix. Non-finite numbers are refused, never
    written as invalid JSON."""
    if suffix == ".json":
        try:
            return json.dumps({"model": str(model.path), "model_sha256": model.sha256, "input": result.description,
                               "labels": list(result.labels), "predictions": result.rows, "metrics": result.report,
                               **result.extra}, indent=1, allow_nan=False)
        except ValueError as exc:
            raise InputError(f"predictions hold non-finite numbers ({exc}); nothing written") from exc
    if suffix == ".csv":
        rows = flat_rows(result)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["label"])
        writer.writeheader()
        writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) and k.startswith("p_") else v) for k, v in r.items()}
                         for r in rows)
        return buf.getvalue()
    raise InputError(f"`out`: use a .json or .csv file name, not {suffix or 'no suffix'}")


def write_predictions(result: RunResult, out: Path, model: EdgeModel, force: bool = False,
                      inputs: tuple[Path, ...] = ()) -> None:
    """Write atomically; an existing file is replaced only with `force`, an input never. A CSV of beats gets its
    episodes (runs, AF) in `<name>.episodes.csv` beside it; JSON holds them under `episodes`."""
    text = predictions_text(result, out.suffix, model)
    if not out.parent.is_dir():
        raise InputError(f"`out` {out}: folder {out.parent} does not exist")
    files = {out: text}
    if out.suffix == ".csv" and "episodes" in result.extra:
        files[episodes_path(out)] = episodes_csv(result.extra["episodes"])
    check_outputs({"`out`": out, "its episodes file": episodes_path(out) if len(files) > 1 else None}, force,
                  (model.path, *inputs))
    for path, content in files.items():
        write_bytes_atomic(path, content, replace=force)


def episodes_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.episodes.csv")


def episodes_csv(episodes: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["record", "kind", "start_s", "end_s", "beats", "length"])
    writer.writeheader()
    writer.writerows(episodes)
    return buf.getvalue()
