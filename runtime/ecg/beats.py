"""Beat-by-beat classification of a raw ECG (numpy and onnxruntime only): detect the beats (or take given
positions), condition the signal as the model's spec says, compute each beat's window, rhythm context and template
with `edgemed.runtime.ecg.context`, and classify.

`BeatClassifier.classify` does a whole recording at once; `BeatClassifier.stream` does the same chunk by chunk,
each beat as soon as its window and context are known, and gives the same beats, labels and probabilities (the
conditioning and the detector are causal; see `latency_s` for how late a beat is reported). Every beat is
classified: a window reaching past the recording's ends is edge-padded and marked `edge` in its quality, one that
reaches into a flat stretch of a model lead (a lead coming off) `flat_stretch` (`edgemed.runtime.ecg.flat`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgemed.core.errors import InputError
from edgemed.core.spec import BeatContext
from edgemed.runtime.ecg.conditioning import Conditioner, check_raw_rate, condition, to_conditioned
from edgemed.runtime.ecg.context import ContextTracker, beat_inputs, locate_r, padded_windows
from edgemed.runtime.ecg.detector import BeatDetector, as_leads, detect_beats
from edgemed.runtime.ecg.episodes import AFRelabel
from edgemed.runtime.ecg.flat import FLAT_STRETCH, flat_windows
from edgemed.runtime.model import EdgeModel, Prediction

EDGE = "edge"  # quality mark: the beat's window was padded past the recording's start or end
DETECTOR_LATENCY_RR = 1.0  # the detector confirms a beat about one RR interval plus this many seconds after it
DETECTOR_LATENCY_S = 0.6
MAX_LAG_S = 30.0  # a stream keeps this much conditioned signal at most: the detector is never later


@dataclass
class BeatRows:
    """Classified beats of one recording: positions in the recording's own samples (as given or detected), the
    class probabilities, labels ("uncertain" below the model's abstention threshold) and quality marks."""

    record: str
    fs: float
    classes: tuple[str, ...]
    samples: np.ndarray  # [n] int64
    probabilities: np.ndarray  # [n, classes]
    labels: list[str]
    quality: list[tuple[str, ...]]
    emitted_at: np.ndarray | None = None  # stream: samples received when each beat was reported
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, record: str, fs: float, samples: np.ndarray, prediction: Prediction, padded: np.ndarray,
           flat: np.ndarray, emitted_at: np.ndarray | None = None) -> BeatRows:
        quality = [(*q, *((EDGE,) if p else ()), *((FLAT_STRETCH,) if f else ()))
                   for q, p, f in zip(prediction.quality, padded, flat, strict=True)]
        return cls(record, fs, prediction.labels, np.asarray(samples, np.int64), prediction.probabilities,
                   prediction.predicted, quality, emitted_at)

    def __len__(self) -> int:
        return len(self.samples)

    def rows(self) -> list[dict]:
        """One dict per beat: record, sample, time_s, label, p_<class>..., quality."""
        out = []
        for i, (s, label, q) in enumerate(zip(self.samples, self.labels, self.quality, strict=True)):
            row = {"record": self.record, "sample": int(s), "time_s": round(float(s) / self.fs, 4), "label": label}
            row.update({f"p_{c}": float(self.probabilities[i, k]) for k, c in enumerate(self.classes)})
            row["quality"] = ";".join(q) or "ok"
            out.append(row)
        return out

    @classmethod
    def concat(cls, parts: list[BeatRows], record: str, fs: float, classes: tuple[str, ...]) -> BeatRows:
        """A stream's pieces as one table."""
        parts = [p for p in parts if len(p)]
        return cls(record, fs, classes,
                   np.concatenate([p.samples for p in parts]) if parts else np.zeros(0, np.int64),
                   np.concatenate([p.probabilities for p in parts]) if parts else np.zeros((0, len(classes))),
                   [v for p in parts for v in p.labels], [q for p in parts for q in p.quality],
                   np.concatenate([p.emitted_at for p in parts]) if parts else np.zeros(0, np.int64))


def _context_feeds(model: EdgeModel, context: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    feeds = {}
    for source, arr in context.items():
        t = model.spec.context(source)
        if t is not None:
            feeds[t.name] = arr
    missing = [t.name for t in model.spec.inputs if t.role == "context" and t.name not in feeds]
    if missing:
        raise InputError(f"{model.path.name}: its spec does not say how to compute input(s) {missing}")
    return feeds


class BeatClassifier:
    """A beat model (its spec states a beat window) applied to raw recordings."""

    def __init__(self, model: EdgeModel) -> None:
        pre = model.spec.preprocessing
        if pre.window is None or not pre.window.per_beat or not pre.sampling_rate_hz:
            raise InputError(f"{model.path.name} is not a beat model (its spec states no beat window and sampling "
                             "rate); give it model-ready arrays instead of a recording")
        self.model, self.pre = model, pre
        self.ctx: BeatContext = pre.beat_context or BeatContext(template_beats=0)
        self.rate = float(pre.sampling_rate_hz)
        self.before, self.after = pre.window.offsets(self.rate)

    def raw_window(self, fs: float) -> tuple[int, int]:
        """The model's window in raw samples at `fs` (before, after the beat), where `flat_windows` looks."""
        return int(round(self.before * fs / self.rate)), int(round(self.after * fs / self.rate))

    def _predict(self, windows: np.ndarray, context: dict[str, np.ndarray]) -> Prediction:
        leads = len(self.model.spec.channel_names) or windows.shape[1]
        return self.model.predict(windows[:, :leads], **_context_feeds(self.model, context))

    def classify(self, signal: np.ndarray, fs: float, beats: np.ndarray | None = None, model_leads: int | None = None,
                 record: str = "recording") -> BeatRows:
        """Classify every beat of `signal` [leads, samples] sampled at `fs`: the given `beats` (sample positions),
        or those the detector finds on all leads. The model sees the first `model_leads` leads."""
        fs = check_raw_rate(self.model.spec, fs, f"record {record}")
        signal = np.asarray(signal, dtype=np.float64)
        leads = model_leads or signal.shape[0]
        raw = np.sort(np.asarray(beats, np.int64)) if beats is not None else detect_beats(signal, fs)
        if not len(raw):
            raise InputError(f"record {record}: no beats {'given' if beats is not None else 'detected'}")
        conditioned, delay = condition(signal[:leads], fs, self.pre)
        positions = to_conditioned(raw, fs, self.rate, delay)
        inputs = beat_inputs(conditioned, positions, self.rate, self.pre.window, self.ctx)
        flat = flat_windows(signal[:leads], fs, raw, *self.raw_window(fs))
        rows = BeatRows.of(record, fs, raw, self._predict(inputs.windows, inputs.context()), inputs.padded, flat)
        rows.labels, rows.extra["s_in_af_relabelled"] = AFRelabel(fs, self.model.labels).apply(rows.samples,
                                                                                               rows.labels)
        rows.extra["conditioning_delay_s"] = delay
        return rows

    def stream(self, fs: float, leads: int, model_leads: int | None = None, record: str = "stream") -> BeatStream:
        """A stream of raw chunks [leads, samples] at `fs`; the model sees the first `model_leads` leads."""
        return BeatStream(self, check_raw_rate(self.model.spec, fs, f"stream {record}"), leads,
                          model_leads or leads, record)

    def latency_s(self, rr_s: float) -> float:
        """How long after its R peak a streamed beat is reported, for a heart beating every `rr_s` seconds: the
        detector's confirmation, the conditioning delay, the window's end, and one more beat for a model that
        reads the next RR interval."""
        detector = DETECTOR_LATENCY_RR * rr_s + DETECTOR_LATENCY_S
        window = (self.after + 1) / self.rate + self.ctx.align_s
        return detector + (rr_s if not self.ctx.causal else 0.0) + max(window - detector, 0.0)


class BeatStream:
    """Beats classified chunk by chunk (see `BeatClassifier.stream`); `push` and `flush` return `BeatRows` of the
    beats completed by that call, positions counted from the first sample pushed."""

    def __init__(self, owner: BeatClassifier, fs: float, leads: int, model_leads: int, record: str) -> None:
        self.owner, self.fs, self.leads, self.model_leads, self.record = owner, fs, leads, model_leads, record
        self.detector = BeatDetector(fs, leads)
        self.conditioner = Conditioner(owner.pre, fs, model_leads) if owner.pre.causal else None
        if self.conditioner is None:
            raise InputError(f"{owner.model.path.name}: its preprocessing is zero-phase (it needs the whole "
                             "recording); only a model trained with causal preprocessing can stream")
        self.tracker = ContextTracker(owner.rate, owner.ctx, owner.before)
        self.relabel = AFRelabel(fs, owner.model.labels)
        self._buffer = np.zeros((model_leads, 0), np.float32)
        self._base = 0  # conditioned sample index of _buffer[:, 0]
        self._raw = np.zeros((model_leads, 0))  # the model leads as received, for `flat_windows`
        self._raw_base = 0
        self._raw_span = owner.raw_window(fs)
        self._last_raw: int | None = None
        self._pending: list[tuple[int, int]] = []  # (raw position, conditioned position), in time order
        self._received = 0
        self._last_position: int | None = None  # conditioned position of the last classified beat

    def _aligned(self, position: int, final: bool) -> int | None:
        """The R-aligned conditioned position (as `beat_inputs` computes it), once the samples it needs are here."""
        owner = self.owner
        reach = int(round(owner.ctx.align_s * owner.rate))
        if not reach:
            return position
        if position + reach >= self._base + self._buffer.shape[1] and not final:
            return None
        return int(locate_r(self._buffer[0], np.array([position - self._base]), owner.rate, owner.ctx.align_s,
                            owner.ctx.align_s)[0]) + self._base

    def _ready(self, final: bool) -> BeatRows:
        owner = self.owner
        end = self._base + self._buffer.shape[1]
        done_raw, windows, rrs, templates, padded, flat = [], [], [], [], [], []
        while self._pending:
            raw, pos = self._pending[0]
            aligned = self._aligned(pos, final)
            if aligned is None or (max(aligned + owner.after - end, raw + self._raw_span[1] - self._received) > 0
                                   and not final):
                break
            nxt = None
            if not owner.ctx.causal and len(self._pending) > 1:
                nxt = self._aligned(self._pending[1][1], final)
                if nxt is None:
                    break
            elif not owner.ctx.causal and not final:
                break  # the next beat is not known yet
            window, was_padded = self._window(aligned)
            flat.append(self._flat(raw))
            self._last_position, self._last_raw = pos, raw
            rr, template = self.tracker.next_inputs(aligned, window[0], nxt)
            done_raw.append(raw)
            windows.append(window[0])
            rrs.append(rr)
            padded.append(was_padded)
            if template is not None:
                templates.append(template)
            self._pending.pop(0)
        self._trim()
        if not done_raw:
            return BeatRows(self.record, self.fs, owner.model.labels, np.zeros(0, np.int64),
                            np.zeros((0, len(owner.model.labels))), [], [], np.zeros(0, np.int64))
        context = {"rr_features": np.stack(rrs)}
        if templates:
            context["beat_template"] = np.stack(templates)
        rows = BeatRows.of(self.record, self.fs, np.array(done_raw), owner._predict(np.stack(windows), context),
                           np.array(padded, bool), np.array(flat, bool),
                           np.full(len(done_raw), self._received, np.int64))
        rows.labels, _ = self.relabel.apply(rows.samples, rows.labels)
        return rows

    def _window(self, centre: int) -> tuple[np.ndarray, bool]:
        """The window around conditioned position `centre`, edge-padded as `padded_windows` does on a whole
        recording (the buffer always reaches back to the window's start, or to the recording's)."""
        owner = self.owner
        window, padded = padded_windows(self._buffer, np.array([centre - self._base]), owner.before, owner.after)
        return window, bool(padded[0])

    def _flat(self, raw: int) -> bool:
        """Whether the beat's raw window holds a flat stretch: the samples a whole recording would look at (its
        window cut at the recording's start and at what has arrived, which at the end is the recording's end)."""
        before, after = self._raw_span
        lo, hi = max(raw - before, self._raw_base), min(raw + after, self._received)  # kept: MAX_LAG_S back
        part = self._raw[:, lo - self._raw_base : hi - self._raw_base]
        return bool(flat_windows(part, self.fs, np.array([raw - lo]), before, after)[0])

    def _trim(self) -> None:
        """Drop conditioned samples no beat can need: beats arrive in time order, so nothing before the window of
        the oldest waiting beat (or of the last classified one, after which the next must come) is read again;
        and the detector reports a beat at most `MAX_LAG_S` late."""
        owner = self.owner
        reach = int(round(owner.ctx.align_s * owner.rate))
        anchor = self._pending[0][1] if self._pending else self._last_position
        end = self._base + self._buffer.shape[1]
        keep_from = end - int(MAX_LAG_S * owner.rate) if anchor is None else anchor
        keep_from = max(keep_from - owner.before - 2 * reach, end - int(MAX_LAG_S * owner.rate), 0)
        if keep_from > self._base:
            self._buffer = self._buffer[:, keep_from - self._base:]
            self._base = keep_from
        anchor = self._pending[0][0] if self._pending else self._last_raw
        lag = self._received - int(MAX_LAG_S * self.fs)
        keep_from = max((lag if anchor is None else anchor) - self._raw_span[0], lag - self._raw_span[0], 0)
        if keep_from > self._raw_base:
            self._raw = self._raw[:, keep_from - self._raw_base :]
            self._raw_base = keep_from

    def push(self, chunk: np.ndarray) -> BeatRows:
        try:
            x = as_leads(chunk)
        except InputError as exc:
            raise InputError(f"stream {self.record}: {exc}") from None
        if x.shape[0] != self.leads:
            raise InputError(f"stream {self.record}: chunks are [{self.leads} leads, samples], got {list(x.shape)}")
        if not np.isfinite(x).all():
            raise InputError(f"stream {self.record}: the chunk holds invalid (missing) samples")
        self._received += x.shape[1]
        self._raw = np.concatenate([self._raw, x[: self.model_leads]], axis=1)
        self._buffer = np.concatenate([self._buffer, self.conditioner.push(x[: self.model_leads])], axis=1)
        self._queue(self.detector.push(x))
        return self._ready(final=False)

    def last_decided_s(self) -> tuple[float, float] | None:
        """(the last detected beat, the time up to which every beat is detected) in seconds of the stream; see
        `BeatDetector.last_decided`."""
        known = self.detector.last_decided()
        return None if known is None else (known[0] / self.fs, known[1] / self.fs)

    def flush(self) -> BeatRows:
        """The beats still waiting at the end of the recording (their windows edge-padded)."""
        self._queue(self.detector.flush())
        return self._ready(final=True)

    def _queue(self, raw_beats: list[int]) -> None:
        owner = self.owner
        for raw in raw_beats:
            pos = int(to_conditioned(np.array([raw]), self.fs, owner.rate, self.conditioner.delay_s)[0])
            self._pending.append((raw, pos))
