"""A monitoring session: a source's samples through the beat stream (the same detector, conditioning, context and
model as `edgemed run`), the alarm engine, and the outputs, for as long as the source lasts or until SIGTERM.

Memory stays bounded however long it runs: the signal kept for strips is the last `HISTORY_S` seconds, the beats
for strip labels the last minute, latencies a fixed reservoir, the trend one point per `TREND_S`, and strips are
kept for at most `MAX_STRIPS` events. After a fault that breaks the signal (non-finite samples, a reconnection)
the beat stream starts again; signal time goes on. Once the leads have been off (a flat signal) for
`LEADS_OFF_RESTART_S`, no stream runs: the one before ends (its beats decided, the alarm engine told of the gap),
and a new one starts when the signal returns, so no RR interval, rhythm context or run spans the gap. A shorter
flat stretch keeps the stream: it may be a pause, and the beat after it says so.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgemed.core.errors import InputError, LimitError, OutputError
from edgemed.runtime.ecg.beats import EDGE, BeatClassifier, BeatStream
from edgemed.runtime.ecg.context import RESTART_S
from edgemed.runtime.ecg.episodes import rhythm_label
from edgemed.runtime.ecg.recording import LeadMap, map_leads, model_leads_first
from edgemed.runtime.monitor.alarms import POINT, AlarmEngine, Event
from edgemed.runtime.monitor.profile import AlarmProfile
from edgemed.runtime.monitor.sources import Chunk, Fault

_GENERIC = re.compile(r"ch\d+")  # the names of channels a source does not name

HISTORY_S = 60.0
TREND_S = 10.0
STRIP_BEFORE_S, STRIP_AFTER_S = 3.0, 7.0
MAX_STRIPS = 200
RESERVOIR = 20_000
LEADS_OFF_RESTART_S = RESTART_S  # no heart pauses this long and beats on; the next beat starts the rhythm afresh


@dataclass
class SessionState:
    """What the session accumulates for the summary and the report (all bounded)."""

    beats: int = 0
    per_hour: dict[int, Counter] = field(default_factory=dict)
    trend: list[tuple[float, float]] = field(default_factory=list)
    latencies: np.ndarray = field(default_factory=lambda: np.zeros(RESERVOIR))
    latency_count: int = 0
    minute: Counter = field(default_factory=Counter)


class Monitor:
    """Run `source` through `model` with the alarm `profile`; `emit(record)` receives every beat and event as it
    happens (the JSON-lines writer, a test, a pipeline)."""

    def __init__(self, model, source, profile: AlarmProfile, emit: Callable[[dict[str, Any]], None],
                 started: dt.datetime | None = None, lead_map: LeadMap | None = None) -> None:
        self.model, self.source, self.profile, self.emit = model, source, profile, emit
        self.lead_map = lead_map
        self.classifier = BeatClassifier(model)
        self.started = started or dt.datetime.now(dt.UTC)
        self.state = SessionState()
        self.stream: BeatStream | None = None
        self._channels = 0  # channels of the current stream: the model's leads first, then the others
        self.engine: AlarmEngine | None = None
        self.fs: float | None = None
        self.t = 0.0  # seconds of signal received
        self._offset = 0  # samples received before the current beat stream started
        self._leads_off = False  # the stream ended on a flat signal; the next starts when it returns
        self._received = 0
        self._history: deque[np.ndarray] = deque()
        self._history_len = 0
        self._recent: deque[tuple[float, str]] = deque()
        self._pending_strips: list[Event] = []
        self.strips: dict[int, dict[str, Any]] = {}
        self.minutes: list[dict[str, Any]] = []  # per-minute heart rate and beat counts (for FHIR)
        self.stopped_by: str | None = None

    # -- the loop -----------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Until the source ends, a fault it cannot come back from, or SIGTERM/Ctrl-C (which end it cleanly)."""
        try:
            for item in self.source.chunks():
                if isinstance(item, Fault):
                    if not self._fault(item):
                        break
                else:
                    self._chunk(item)
        except KeyboardInterrupt:
            self.stopped_by = "signal"
        finally:
            self.source.close()
            self._close()

    def _start_stream(self) -> None:
        fs = float(self.source.fs)
        if self.fs is not None and fs != self.fs:
            raise InputError(f"{self.source.name}: the sampling rate changed from {self.fs:g} to {fs:g} Hz")
        model_leads = len(self.model.spec.channel_names) or 1
        self.stream = self.classifier.stream(fs, self._channels, model_leads, self.source.name)
        if self.engine is None:
            self.fs, self.engine = fs, AlarmEngine(self.profile, fs)
        self._offset = self._received

    def _chunk(self, chunk: Chunk) -> None:
        x = self._leads(chunk.samples)
        if self.stream is None and not self._leads_off:
            self._channels = x.shape[0]
            try:
                self._start_stream()
            except InputError as exc:
                self._updates(self._engine_or_default().fault(self.t, "rate", str(exc), ongoing=False))
                raise
        self._keep(x[0])
        flat = self._flat()
        if self._leads_off and not flat:
            self._leads_off = False
            self._start_stream()
        self._updates(self.engine.recovered(self.t))
        self._received += x.shape[1]
        self.t = self._received / self.fs
        if self.stream is not None:
            rows = self._push(x)
            for s, label, q in zip(rows.samples, rows.labels, rows.quality, strict=True):
                self._beat(float(s + self._offset) / self.fs, label, q, rows)
        self._updates(self.engine.signal(self.t, flat))
        if flat and self.stream is not None and self.t - self.engine.flat_since >= LEADS_OFF_RESTART_S:
            self._leads_off = True
            self._end_stream()
        known = self.stream.last_decided_s() if self.stream is not None else None
        if known is not None:
            self._updates(self.engine.tick(known[1] + self._offset / self.fs, known[0] + self._offset / self.fs))
        self._capture_strips(final=False)

    def _leads(self, samples: np.ndarray) -> np.ndarray:
        """The model's leads first, then the other channels: the detector reads them all, as `edgemed run` does (a
        beat faint in one lead shows in another). Leads are found by name in a source that names them (a
        recording, labelled LSL channels), after `lead_map` (the channel that stands for a model lead named
        otherwise), and refused when absent; a source that names its channels only ch1, ch2... (raw frames) gives
        the model's leads first, in order."""
        wanted = list(self.model.spec.channel_names)
        names = map_leads(list(getattr(self.source, "names", []) or []), self.lead_map, self.model.spec,
                          self.source.name)
        named = names and not all(_GENERIC.fullmatch(n) for n in names)
        if wanted and (named or all(w in names for w in wanted)):  # by name; refused, with the hint, when absent
            samples, _ = model_leads_first(samples, names, self.model.spec, self.source.name)
        count = len(wanted) or 1
        if samples.shape[0] < count:
            raise InputError(f"{self.source.name}: {samples.shape[0]} channel(s), the model needs {count}")
        if self.stream is not None and samples.shape[0] != self._channels:
            raise InputError(f"{self.source.name}: {samples.shape[0]} channel(s) now, {self._channels} before")
        return samples

    def _engine_or_default(self) -> AlarmEngine:
        if self.engine is None:
            self.engine = AlarmEngine(self.profile, float(self.source.fs or 1.0))
        return self.engine

    def _push(self, x: np.ndarray):
        """Classify the new samples; a model run that fails or is stopped at its deadline (EDGEMED_MAX_RUN_S) ends
        the session, after a `source_fault` event that says so."""
        try:
            return self.stream.push(x)
        except (LimitError, OutputError) as exc:
            self._updates(self.engine.fault(self.t, "model", str(exc), ongoing=False))
            raise

    def _fault(self, fault: Fault) -> bool:
        engine = self._engine_or_default()
        ongoing = fault.kind == "stall"
        self._updates(engine.fault(self.t, fault.kind, fault.detail, ongoing))
        if fault.kind in ("nan", "disconnect", "frame", "garbage", "rate"):
            self._end_stream()
        return fault.resumes

    def _end_stream(self) -> None:
        """The signal broke: beats still in the stream are decided, the alarm engine is told of the gap, and the
        next samples start a new stream."""
        if self.stream is not None:
            rows = self.stream.flush()
            for s, label, q in zip(rows.samples, rows.labels, rows.quality, strict=True):
                self._beat(float(s + self._offset) / self.fs, label, q, rows)
            self.stream = None
            self._updates(self.engine.gap(self.t))

    # -- beats, alarms, strips ----------------------------------------------------------------------------------

    def _beat(self, t: float, label: str, quality: tuple[str, ...], rows) -> None:
        st = self.state
        st.beats += 1
        st.per_hour.setdefault(int(t // 3600), Counter())[label] += 1
        st.minute[label] += 1
        latency = self.t - t
        st.latencies[st.latency_count % RESERVOIR] = latency
        st.latency_count += 1
        self._recent.append((t, label))
        while self._recent and self._recent[0][0] < self.t - HISTORY_S:
            self._recent.popleft()
        updates = self.engine.beat(t, rhythm_label(label, quality), implausible=any(m != EDGE for m in quality))
        hr = self.engine.heart_rate
        self.emit({"type": "beat", "t": round(t, 3), "label": label, "heart_rate_bpm": None if hr is None
                   else round(hr, 1), "quality": ";".join(quality) or "ok", "latency_s": round(latency, 3)})
        if hr is not None and (not st.trend or t - st.trend[-1][0] >= TREND_S):
            st.trend.append((round(t, 1), round(hr, 1)))
        if not self.minutes or t - self.minutes[-1]["start_s"] >= 60.0:
            self.minutes.append({"start_s": t, "end_s": t, "counts": Counter(), "heart_rate_bpm": hr,
                                 "af": "atrial_fibrillation" in self.engine.active})
        self.minutes[-1]["counts"][label] += 1
        self.minutes[-1]["end_s"] = t
        self._updates(updates)

    def _updates(self, updates: list) -> None:
        for state, event in updates:
            self.emit({"type": "event", "state": state, **event.to_dict()})
            if state in ("start", POINT) and len(self.strips) + len(self._pending_strips) < MAX_STRIPS:
                self._pending_strips.append(event)

    def _keep(self, lead: np.ndarray) -> None:
        self._history.append(np.asarray(lead, np.float32))
        self._history_len += lead.size
        limit = int(HISTORY_S * self.fs)
        while self._history and self._history_len - self._history[0].size >= limit:
            self._history_len -= self._history.popleft().size

    def _flat(self) -> bool:
        n = int(self.profile["asystole.window_s"] * self.fs)
        if self._history_len < n:
            return False
        return float(np.ptp(self._tail(n))) < self.profile["asystole.flat_mv"]

    def _tail(self, n: int) -> np.ndarray:
        """The last `n` samples kept, joined from the newest chunks only (this runs on every chunk; the history
        holds a minute)."""
        parts, have = [], 0
        for part in reversed(self._history):
            parts.append(part)
            have += part.size
            if have >= n:
                break
        return np.concatenate(parts[::-1])[-n:]

    def _capture_strips(self, final: bool) -> None:
        """Cut each pending event's strip once the signal has reached its end (or at the close)."""
        if not self._pending_strips or self.fs is None:
            return
        signal = np.concatenate(list(self._history)) if self._history else np.zeros(0)
        first = self.t - signal.size / self.fs
        waiting = []
        for event in self._pending_strips:
            start = max(event.start_s - STRIP_BEFORE_S, first)
            end = min(start + STRIP_BEFORE_S + STRIP_AFTER_S, self.t)
            if not final and self.t < event.start_s + STRIP_AFTER_S:
                waiting.append(event)
                continue
            a, b = int(round((start - first) * self.fs)), int(round((end - first) * self.fs))
            self.strips[event.id] = {"start_s": start, "samples": signal[max(a, 0):max(b, 0)].tolist(),
                                     "beats": [(t, lab) for t, lab in self._recent if start <= t <= end]}
        self._pending_strips = waiting

    def _close(self) -> None:
        self._end_stream()
        if self.engine is not None:
            self._updates(self.engine.close(self.t))
        self._capture_strips(final=True)

    # -- results ------------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        st = self.state
        lat = st.latencies[: min(st.latency_count, RESERVOIR)]
        classes = [*self.model.labels, "uncertain"]
        return {
            "session": {"source": self.source.name, "model": str(self.model.path), "model_sha256": self.model.sha256,
                        "profile": self.profile.name, "started": self.started.isoformat(timespec="seconds"),
                        "seconds": round(self.t, 3), "fs": self.fs or 0.0, "stopped_by": self.stopped_by,
                        "latency_p50_s": float(np.median(lat)) if lat.size else None,  # no beats: none measured
                        "latency_p99_s": float(np.percentile(lat, 99)) if lat.size else None},
            "beats": st.beats, "classes": classes,
            "beats_per_hour": {f"{h:02d}:00": dict(c) for h, c in sorted(st.per_hour.items())},
            "heart_rate_trend": st.trend,
            "events": [e.to_dict() for e in (self.engine.events if self.engine else [])],
        }
