"""What must happen to a raw signal before it reaches a model: normalisation, band-pass, windows, beat context,
the training data's range, rates and image size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgemed.core.bounds import MAX_COUNT, MAX_SECONDS, number, text, whole
from edgemed.core.errors import SpecError
from edgemed.core.limits import limit
from edgemed.core.record import Record
from edgemed.core.spec.fields import known, numbers, optional
from edgemed.core.spec.tensors import MAX_RANK

SIGNAL_CHECKS = ("range", "flat", "clipping")
WINDOW_KINDS = ("beat", "rhythm", "stay", "clip", "image")
MAX_IMAGE_SIDE = 32_768


@dataclass(eq=False, repr=False)
class Normalization(Record):
    """Per-channel affine normalisation `(x - mean) / std` along `axis` of the input."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    axis: int
    applied_in: str = "graph"

    def __post_init__(self) -> None:
        self.mean = numbers(self.mean, "normalization mean")
        self.std = numbers(self.std, "normalization std")
        self.axis = whole(self.axis, "normalization axis", -MAX_RANK, MAX_RANK)
        if self.applied_in not in ("graph", "runtime"):
            raise SpecError(f"normalization applied_in must be 'graph' or 'runtime', got {self.applied_in!r}")
        if len(self.mean) != len(self.std):
            raise SpecError(f"normalization: {len(self.mean)} means but {len(self.std)} stds")
        if any(not s > 0 for s in self.std):
            raise SpecError("normalization: every std must be positive")


@dataclass(eq=False, repr=False)
class BandpassFilter(Record):
    """A Butterworth band-pass applied to the raw signal before windowing."""

    low_hz: float
    high_hz: float
    order: int = 2
    zero_phase: bool = True

    def __post_init__(self) -> None:
        self.low_hz = number(self.low_hz, "band-pass low_hz", 0, limit("rate_hz"), low_open=True)
        self.high_hz = number(self.high_hz, "band-pass high_hz", self.low_hz, limit("rate_hz"))
        self.order = whole(self.order, "band-pass order", 1, 16)
        if not isinstance(self.zero_phase, bool):
            raise SpecError("band-pass zero_phase must be true or false")

    def describe(self) -> str:
        phase = "zero-phase" if self.zero_phase else "causal"
        return f"{self.low_hz:g}-{self.high_hz:g} Hz, order {self.order}, {phase}"


@dataclass(eq=False, repr=False)
class Window(Record):
    """How a sample is cut from a recording. `length(rate)` is the one formula for every window size.

    kinds: `beat` (from `before_s` ahead of a beat to `after_s` past it), `rhythm` (`seconds` long, no overlap),
    `stay` (a whole variable-length sequence, a reading every `period_s`), `clip` (`frames` frames), `image`."""

    kind: str
    before_s: float = 0.0
    after_s: float = 0.0
    seconds: float = 0.0
    frames: int = 0
    period_s: float = 0.0
    centre: str = ""

    def __post_init__(self) -> None:
        if self.kind not in WINDOW_KINDS:
            raise SpecError(f"window kind {self.kind!r} is not one of {WINDOW_KINDS}")
        for name in ("before_s", "after_s", "seconds", "period_s"):
            setattr(self, name, number(getattr(self, name), f"window {name}", 0, MAX_SECONDS))
        self.frames = whole(self.frames, "window frames", 0, MAX_COUNT)
        text(self.centre, "window centre")
        if self.kind == "beat" and not self.before_s + self.after_s > 0:
            raise SpecError("a beat window needs before_s + after_s > 0")
        if self.kind == "rhythm" and not self.seconds > 0:
            raise SpecError("a rhythm window needs seconds > 0")

    @property
    def per_beat(self) -> bool:
        """One sample per heartbeat, cut around each R peak of a recording."""
        return self.kind == "beat"

    @property
    def cut_by_rhythm(self) -> bool:
        """Fixed-length windows cut from a recording, labelled by its rhythm annotations."""
        return self.kind == "rhythm"

    @property
    def from_recording(self) -> bool:
        """Samples cut from a continuous recording (beats or rhythm windows), at a known sampling rate."""
        return self.per_beat or self.cut_by_rhythm

    def describe(self) -> str:
        """The window in words (`edgemed info`)."""
        if self.kind == "beat":
            return f"from {self.before_s:g} s before to {self.after_s:g} s after each beat"
        if self.kind == "rhythm":
            return f"{self.seconds:g} s of rhythm"
        if self.kind == "stay":
            return "a whole stay" + (f", a reading every {self.period_s:g} s" if self.period_s else "")
        return f"{self.frames} frames" if self.kind == "clip" else "one image"

    def offsets(self, rate_hz: float) -> tuple[int, int]:
        """Samples before and after the centre of a beat window at `rate_hz`."""
        return int(round(self.before_s * rate_hz)), int(round(self.after_s * rate_hz))

    def length(self, rate_hz: float | None) -> int | None:
        """Samples (or frames) in one window; None when windows vary in length (stays, images)."""
        if self.kind == "beat" and rate_hz:
            return sum(self.offsets(rate_hz))
        if self.kind == "rhythm" and rate_hz:
            return int(round(self.seconds * rate_hz))
        if self.kind == "clip":
            return int(self.frames) or None
        return None


# Morphology against the patient's own beats (computed by edgemed.runtime.ecg.morphology; they need a template).
MORPHOLOGY_FEATURES = ("qrs_corr", "p_corr", "qrs_energy", "qrs_width", "residual", "cluster_share", "cluster_rr")
RR_FEATURES = ("pre_rr", "post_rr", "local_rr", "long_rr", "pre_local", "pre_long", "post_local", "post_pre",
               "local_long", "pre_median", "local_cv", "pre_prev", *MORPHOLOGY_FEATURES)


@dataclass(eq=False, repr=False)
class BeatContext(Record):
    """How beat models see rhythm and the patient's own beats, computed from beat positions by one function
    (`edgemed.runtime.ecg.context.beat_inputs`) in training, evaluation and the runtime alike.

    RR intervals in seconds: `pre_rr` (to the previous beat), `post_rr` (to the next: only when not `causal`, and
    it costs one RR interval of latency), `local_rr` (mean of the previous `local_beats` pre-RR intervals),
    `long_rr` (mean of the pre-RR intervals of the previous `long_window_s` seconds), and their ratios
    (`pre_local` = pre_rr / local_rr, ...), `pre_median` (pre_rr over the median of the previous `local_beats`
    intervals: prematurity that ectopic neighbours do not blur), `local_cv` (their coefficient of variation:
    high in atrial fibrillation, where an early beat is not ectopic) and `pre_prev` (pre_rr over the interval
    before it: how abruptly the rhythm changed; sinus arrhythmia changes gradually, a premature beat at once).
    Morphology features against the patient's own beats may be listed too (`qrs_corr`, `p_corr`, `qrs_energy`,
    `qrs_width`, `residual`, `cluster_share`, `cluster_rr`: see `edgemed.runtime.ecg.morphology`; they need a
    template). `template_beats`: the median of the previous that many beat windows is fed beside each beat (0: none),
    a per-patient reference of its usual morphology.
    Positions are first moved to the R peak within `align_s` (`locate_r`), for annotations and detections alike."""

    features: tuple[str, ...] = ("pre_rr", "local_rr", "long_rr", "pre_local", "pre_long", "local_long",
                                 "pre_median", "local_cv")
    local_beats: int = 10
    long_window_s: float = 300.0
    template_beats: int = 16
    align_s: float = 0.05
    causal: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.features, list | tuple) or not all(isinstance(f, str) for f in self.features):
            raise SpecError("beat context: features must be a list of names")
        self.features = tuple(self.features)
        self.local_beats = whole(self.local_beats, "beat context local_beats", 1, MAX_COUNT)
        self.template_beats = whole(self.template_beats, "beat context template_beats", 0, MAX_COUNT)
        self.long_window_s = number(self.long_window_s, "beat context long_window_s", 0, MAX_SECONDS, low_open=True)
        self.align_s = number(self.align_s, "beat context align_s", 0, 10)
        if not isinstance(self.causal, bool):
            raise SpecError("beat context: causal must be true or false")
        unknown = set(self.features) - set(RR_FEATURES)
        if unknown or not self.features:
            raise SpecError(f"beat context: unknown RR features {sorted(unknown)}; known: {RR_FEATURES}")
        if self.template_beats == 0 and set(self.features) & set(MORPHOLOGY_FEATURES):
            raise SpecError("beat context: morphology features compare a beat with its template; keep template_beats")
        if self.causal and any(f.startswith("post") for f in self.features):
            raise SpecError("beat context: a causal model cannot use post_rr features (they need the next beat)")
        if self.local_beats < 1 or self.long_window_s <= 0 or self.template_beats < 0 or self.align_s < 0:
            raise SpecError("beat context: local_beats >= 1, long_window_s > 0, template_beats >= 0, align_s >= 0")


@dataclass(eq=False, repr=False)
class InputRange(Record):
    """What the training data looked like, per channel along `axis`: its 0.1 and 99.9 percentiles. The runtime
    marks inputs far outside this range (wrong units, a failed sensor) and, for waveforms (`checks` with "flat"
    and "clipping"), flat lines and clipped samples."""

    axis: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    checks: tuple[str, ...] = ("range",)

    def __post_init__(self) -> None:
        self.low = numbers(self.low, "input_range low")
        self.high = numbers(self.high, "input_range high")
        self.axis = whole(self.axis, "input_range axis", -MAX_RANK, MAX_RANK)
        if not isinstance(self.checks, list | tuple):
            raise SpecError("input_range: checks must be a list")
        self.checks = tuple(self.checks)
        if len(self.low) != len(self.high) or not self.low:
            raise SpecError(f"input_range: {len(self.low)} lows but {len(self.high)} highs")
        if any(not (lo <= hi) for lo, hi in zip(self.low, self.high, strict=True)):
            raise SpecError("input_range: every low must be at most its high, and finite")
        unknown = set(self.checks) - set(SIGNAL_CHECKS)
        if unknown:
            raise SpecError(f"input_range: unknown checks {sorted(unknown)}; known: {SIGNAL_CHECKS}")


@dataclass(eq=False, repr=False)
class Preprocessing(Record):
    """What must happen to a raw signal before it reaches the model's input.

    `rate_range_hz` bounds the sampling rate of a raw signal the runtime will resample to `sampling_rate_hz`;
    `resize` is the (height, width) the graph resizes images to. `causal`: the band-pass and the resampling use
    past samples only (see `edgemed.runtime.ecg.conditioning`), so a stream conditions exactly as a whole recording."""

    sampling_rate_hz: float | None = None
    frame_rate_hz: float | None = None
    units: str | None = None
    normalization: Normalization | None = None
    bandpass: BandpassFilter | None = None
    window: Window | None = None
    input_range: InputRange | None = None
    rate_range_hz: tuple[float, float] | None = None
    resize: tuple[int, int] | None = None
    beat_context: BeatContext | None = None
    causal: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.normalization, dict):
            self.normalization = Normalization(**known(Normalization, self.normalization, "normalization"))
        if isinstance(self.bandpass, dict):
            self.bandpass = BandpassFilter(**known(BandpassFilter, self.bandpass, "bandpass"))
        if isinstance(self.window, dict):
            self.window = Window(**known(Window, self.window, "window")) if self.window else None
        if isinstance(self.input_range, dict):
            self.input_range = InputRange(**known(InputRange, self.input_range, "input_range"))
        if isinstance(self.beat_context, dict):
            self.beat_context = BeatContext(**known(BeatContext, self.beat_context, "beat_context"))
        top = limit("rate_hz")
        self.sampling_rate_hz = optional(self.sampling_rate_hz, "sampling_rate_hz", 0, top, low_open=True)
        self.frame_rate_hz = optional(self.frame_rate_hz, "frame_rate_hz", 0, top, low_open=True)
        if self.units is not None:
            text(self.units, "units")
        if self.rate_range_hz is not None:
            rates = numbers(self.rate_range_hz, "rate_range_hz", 0, top)
            if len(rates) != 2 or not 0 < rates[0] <= rates[1]:
                raise SpecError(f"rate_range_hz must be two positive rates, low first; got {self.rate_range_hz}")
            self.rate_range_hz = rates
        if self.resize is not None:
            if not isinstance(self.resize, list | tuple) or len(self.resize) != 2:
                raise SpecError(f"resize must be (height, width), got {self.resize!r}")
            self.resize = tuple(whole(v, "resize", 1, MAX_IMAGE_SIDE) for v in self.resize)
        if not isinstance(self.causal, bool):
            raise SpecError("preprocessing causal must be true or false")
        if self.causal and self.bandpass is not None and self.bandpass.zero_phase:
            raise SpecError("causal preprocessing cannot use a zero-phase band-pass (it needs future samples)")

    @property
    def rate_hz(self) -> float | None:
        """Samples (or frames) per second along the sequence axis."""
        return self.sampling_rate_hz or self.frame_rate_hz

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Preprocessing:
        return cls(**known(cls, dict(data or {}), "preprocessing"))
