"""The model spec: the single declaration of a model's inputs, outputs, labels and preprocessing.

A model family builds it from its config; the checkpoint and the ONNX metadata each store it once; the runtime
reads it back (without torch) to check inputs. A dataset carries a `DataSpec` (labels, layout, channel names and
the preprocessing its samples had), from which the model's spec takes what concerns the data. Nothing else
re-declares these facts, and every window length comes from `Window.length`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edgemed.core.bounds import MAX_COUNT, MAX_DIM, MAX_LABELS, MAX_SECONDS, number, text, whole
from edgemed.core.errors import SpecError
from edgemed.core.limits import check, limit

SPEC_VERSION = 2
DTYPES = ("float32", "float16", "int64", "int32")
ROLES = ("signal", "lengths", "state", "context")
CONTEXT_SOURCES = ("rr_features", "beat_template")  # computed by edgemed.core.beat_context
SIGNAL_CHECKS = ("range", "flat", "clipping")
WINDOW_KINDS = ("beat", "rhythm", "stay", "clip", "image")
CHANNEL_AXES = ("lead", "feature", "channel")  # layout words naming the channel axis
MAX_RANK = 64
MAX_IMAGE_SIDE = 32_768
ITEMSIZE = {"float32": 4, "float16": 2, "int64": 8, "int32": 4}


def _numbers(values: Any, what: str, low: float = -math.inf, high: float = math.inf) -> tuple[float, ...]:
    if not isinstance(values, list | tuple) or len(values) > MAX_COUNT:
        raise SpecError(f"{what} must be a list of at most {MAX_COUNT:,} numbers")
    return tuple(number(v, what, low, high) for v in values)


def _optional(value: Any, what: str, low: float, high: float, low_open: bool = False) -> float | None:
    return None if value is None else number(value, what, low, high, low_open)


def _known(cls, data: dict[str, Any], what: str) -> dict[str, Any]:
    """`data` restricted to `cls`'s fields; unknown keys are a SpecError (a newer writer, or a typo)."""
    if not isinstance(data, dict):
        raise SpecError(f"{what}: expected an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(f"{what}: unknown field(s) {unknown}")
    return data


@dataclass
class TensorSpec:
    """One named input or output. Integers in `shape` are fixed; strings name dynamic axes.

    `role` says what an input is: the `signal` (data), the `lengths` of padded sequences (counting along the axis
    named by `counts`), a streaming `state`, or `context` computed from beat positions (`source` names which:
    see `edgemed.core.beat_context`). Code outside a model family finds inputs by role, never by name."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    layout: str = ""
    description: str = ""
    min_sizes: dict[str, int] = field(default_factory=dict)
    role: str = "signal"
    counts: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"tensor name {self.name!r} must be a non-empty string")
        text(self.name, "tensor name")
        if not isinstance(self.shape, list | tuple) or len(self.shape) > MAX_RANK:
            raise SpecError(f"tensor {self.name!r}: shape must be a list of at most {MAX_RANK} dimensions")
        self.shape = tuple(self.shape)
        if self.dtype not in DTYPES:
            raise SpecError(f"tensor {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        fixed = 1
        for dim in self.shape:
            if isinstance(dim, str) and dim:
                text(dim, f"tensor {self.name!r}: axis name")
                continue
            fixed *= whole(dim, f"tensor {self.name!r}: dimension", 1, MAX_DIM)
        check("array_mb", fixed * ITEMSIZE[self.dtype], f"tensor {self.name!r}: its fixed dimensions",
              scale=2**20)
        if not isinstance(self.min_sizes, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_DIM
                for k, v in self.min_sizes.items()):
            raise SpecError(f"tensor {self.name!r}: min_sizes must map axis names to positive ints")
        for name in ("layout", "description"):
            if not isinstance(getattr(self, name), str):
                raise SpecError(f"tensor {self.name!r}: {name} must be a string")
        if self.role not in ROLES:
            raise SpecError(f"tensor {self.name!r}: role {self.role!r} is not one of {ROLES}")
        if (self.role == "lengths") != (self.counts is not None):
            raise SpecError(f"tensor {self.name!r}: a lengths input names the axis it counts (counts), others do not")
        has_source = self.source is not None
        if (self.role == "context") != has_source or (has_source and self.source not in CONTEXT_SOURCES):
            raise SpecError(f"tensor {self.name!r}: a context input names its source, one of {CONTEXT_SOURCES}")

    @property
    def dynamic_axes(self) -> dict[int, str]:
        """Axis index -> axis name, for the dynamic axes only."""
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(**_known(cls, data, "tensor"))


@dataclass
class Normalization:
    """Per-channel affine normalisation `(x - mean) / std` along `axis` of the input."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    axis: int
    applied_in: str = "graph"

    def __post_init__(self) -> None:
        self.mean = _numbers(self.mean, "normalization mean")
        self.std = _numbers(self.std, "normalization std")
        self.axis = whole(self.axis, "normalization axis", -MAX_RANK, MAX_RANK)
        if self.applied_in not in ("graph", "runtime"):
            raise SpecError(f"normalization applied_in must be 'graph' or 'runtime', got {self.applied_in!r}")
        if len(self.mean) != len(self.std):
            raise SpecError(f"normalization: {len(self.mean)} means but {len(self.std)} stds")
        if any(not s > 0 for s in self.std):
            raise SpecError("normalization: every std must be positive")


@dataclass
class BandpassFilter:
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


@dataclass
class Window:
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


RR_FEATURES = ("pre_rr", "post_rr", "local_rr", "long_rr", "pre_local", "pre_long", "post_local", "post_pre",
               "local_long", "pre_median", "local_cv")


@dataclass
class BeatContext:
    """How beat models see rhythm and the patient's own beats, computed from beat positions by one function
    (`edgemed.core.beat_context.beat_inputs`) in training, evaluation and the runtime alike.

    RR intervals in seconds: `pre_rr` (to the previous beat), `post_rr` (to the next: only when not `causal`, and
    it costs one RR interval of latency), `local_rr` (mean of the previous `local_beats` pre-RR intervals),
    `long_rr` (mean of the pre-RR intervals of the previous `long_window_s` seconds), and their ratios
    (`pre_local` = pre_rr / local_rr, ...), `pre_median` (pre_rr over the median of the previous `local_beats`
    intervals: prematurity that ectopic neighbours do not blur) and `local_cv` (their coefficient of variation:
    high in atrial fibrillation, where an early beat is not ectopic). `template_beats`: the median of the previous
    that many beat windows is fed beside each beat (0: none), a per-patient reference of its usual morphology.
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
        if self.causal and any(f.startswith("post") for f in self.features):
            raise SpecError("beat context: a causal model cannot use post_rr features (they need the next beat)")
        if self.local_beats < 1 or self.long_window_s <= 0 or self.template_beats < 0 or self.align_s < 0:
            raise SpecError("beat context: local_beats >= 1, long_window_s > 0, template_beats >= 0, align_s >= 0")


@dataclass
class Calibration:
    """Temperature scaling fitted on validation data (applied in the graph: logits / temperature), its expected
    calibration error before and after, and an optional abstention threshold: a prediction whose top probability
    is below it is reported as "uncertain"."""

    temperature: float = 1.0
    ece_before: float | None = None
    ece_after: float | None = None
    fitted_on: str = ""
    abstain_below: float | None = None
    coverage: float | None = None  # share of the validation data answered at abstain_below

    def __post_init__(self) -> None:
        self.temperature = number(self.temperature, "calibration temperature", 0, 1e6, low_open=True)
        self.ece_before = _optional(self.ece_before, "calibration ece_before", 0, 1)
        self.ece_after = _optional(self.ece_after, "calibration ece_after", 0, 1)
        self.coverage = _optional(self.coverage, "calibration coverage", 0, 1)
        text(self.fitted_on, "calibration fitted_on")
        if self.abstain_below is not None and not 0 < number(self.abstain_below, "abstain_below", 0, 1) < 1:
            raise SpecError(f"abstain_below must be between 0 and 1, got {self.abstain_below!r}")


@dataclass
class InputRange:
    """What the training data looked like, per channel along `axis`: its 0.1 and 99.9 percentiles. The runtime
    marks inputs far outside this range (wrong units, a failed sensor) and, for waveforms (`checks` with "flat"
    and "clipping"), flat lines and clipped samples."""

    axis: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    checks: tuple[str, ...] = ("range",)

    def __post_init__(self) -> None:
        self.low = _numbers(self.low, "input_range low")
        self.high = _numbers(self.high, "input_range high")
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


@dataclass
class Preprocessing:
    """What must happen to a raw signal before it reaches the model's input.

    `rate_range_hz` bounds the sampling rate of a raw signal the runtime will resample to `sampling_rate_hz`;
    `resize` is the (height, width) the graph resizes images to. `causal`: the band-pass and the resampling use
    past samples only (see `edgemed.core.conditioning`), so a stream conditions exactly as a whole recording."""

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
            self.normalization = Normalization(**_known(Normalization, self.normalization, "normalization"))
        if isinstance(self.bandpass, dict):
            self.bandpass = BandpassFilter(**_known(BandpassFilter, self.bandpass, "bandpass"))
        if isinstance(self.window, dict):
            self.window = Window(**_known(Window, self.window, "window")) if self.window else None
        if isinstance(self.input_range, dict):
            self.input_range = InputRange(**_known(InputRange, self.input_range, "input_range"))
        if isinstance(self.beat_context, dict):
            self.beat_context = BeatContext(**_known(BeatContext, self.beat_context, "beat_context"))
        top = limit("rate_hz")
        self.sampling_rate_hz = _optional(self.sampling_rate_hz, "sampling_rate_hz", 0, top, low_open=True)
        self.frame_rate_hz = _optional(self.frame_rate_hz, "frame_rate_hz", 0, top, low_open=True)
        if self.units is not None:
            text(self.units, "units")
        if self.rate_range_hz is not None:
            rates = _numbers(self.rate_range_hz, "rate_range_hz", 0, top)
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
        return cls(**_known(cls, dict(data or {}), "preprocessing"))


@dataclass
class StreamingSpec:
    """How a streaming model is fed: chunks along one axis of one input, with state carried between calls.

    Allowed chunk lengths are the positive multiples of `chunk_multiple`. `state_inputs[i]` is fed with the
    output named `state_outputs[i]` of the previous call (zeros before the first).
    """

    chunk_input: str
    chunk_axis: str
    chunk_multiple: int
    state_inputs: tuple[TensorSpec, ...]
    state_outputs: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.state_inputs, list | tuple) or not isinstance(self.state_outputs, list | tuple):
            raise SpecError("streaming: state_inputs and state_outputs must be lists")
        self.state_inputs = tuple(t if isinstance(t, TensorSpec) else TensorSpec.from_dict(t)
                                  for t in self.state_inputs)
        self.state_outputs = tuple(text(o, "streaming state output") for o in self.state_outputs)
        text(self.chunk_input, "streaming chunk_input")
        text(self.chunk_axis, "streaming chunk_axis")
        if len(self.state_inputs) != len(self.state_outputs):
            raise SpecError("streaming: every state input needs exactly one state output")
        self.chunk_multiple = whole(self.chunk_multiple, "streaming: chunk_multiple", 1, MAX_COUNT)

    def check_chunk(self, length: int) -> None:
        if length < self.chunk_multiple or length % self.chunk_multiple:
            raise SpecError(
                f"chunk of {length} along {self.chunk_axis!r}: streaming needs a positive multiple of "
                f"{self.chunk_multiple} (pooling alignment); buffer the signal to such a length"
            )


@dataclass
class DataSpec:
    """What a dataset declares about its samples: class names, layout of X, channel names, the preprocessing the
    samples already had (rate, units, band-pass, window), and which plausibility checks suit them."""

    labels: tuple[str, ...]
    layout: str | None = None  # e.g. "batch,lead,sample"; None when the source cannot tell (plain arrays)
    channel_names: tuple[str, ...] = ()
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    signal_checks: tuple[str, ...] = ("range",)

    def __post_init__(self) -> None:
        self.labels = tuple(str(v) for v in self.labels)
        self.channel_names = tuple(str(v) for v in self.channel_names)
        self.signal_checks = tuple(self.signal_checks)

    @property
    def channel_axis(self) -> int | None:
        """The axis of X holding channels (named lead, feature or channel in the layout), if the layout is known."""
        parts = (self.layout or "").split(",")
        return next((i for i, name in enumerate(parts) if name in CHANNEL_AXES), None)


@dataclass
class ModelSpec:
    """Everything later stages need to know about a model, in plain, JSON-serialisable types.

    `example_sizes` gives each dynamic axis other than batch a typical size (the family's choice, or the window
    length), from which example inputs are made anywhere (export, parity, profiling) without the model."""

    architecture: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    task: str = "sequence_classification"
    channel_names: tuple[str, ...] = ()
    streaming: StreamingSpec | None = None
    example_sizes: dict[str, int] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.calibration, dict):
            self.calibration = Calibration(**_known(Calibration, self.calibration, "calibration"))
        if isinstance(self.streaming, dict):
            self.streaming = StreamingSpec(**_known(StreamingSpec, self.streaming, "streaming"))
        if isinstance(self.preprocessing, dict):
            self.preprocessing = Preprocessing.from_dict(self.preprocessing)
        for name in ("inputs", "outputs", "labels", "channel_names"):
            value = getattr(self, name)
            if not isinstance(value, list | tuple) or len(value) > MAX_LABELS:
                raise SpecError(f"{name} must be a list of at most {MAX_LABELS:,} entries")
        self.inputs = tuple(t if isinstance(t, TensorSpec) else TensorSpec.from_dict(t) for t in self.inputs)
        self.outputs = tuple(t if isinstance(t, TensorSpec) else TensorSpec.from_dict(t) for t in self.outputs)
        self.labels = tuple(self.labels)
        self.channel_names = tuple(text(c, "channel name") for c in self.channel_names)
        if not isinstance(self.example_sizes, dict):
            raise SpecError("example_sizes must map axis names to sizes")
        self.example_sizes = {text(k, "example size axis"): whole(v, f"example size of {k!r}", 1, MAX_COUNT * 16)
                              for k, v in self.example_sizes.items()}
        text(self.architecture, "architecture")
        if not self.inputs or not self.outputs:
            raise SpecError(f"{self.architecture}: a model needs at least one input and one output")
        if sum(t.role == "signal" for t in self.inputs) != 1:
            raise SpecError(f"{self.architecture}: exactly one input must have the role 'signal'")
        if len(self.labels) < 2:
            raise SpecError(f"{self.architecture}: a classifier needs at least two labels, got {self.labels}")
        if not all(isinstance(v, str) and len(v) <= 200 for v in self.labels) or len(set(self.labels)) != len(
                self.labels):
            raise SpecError(f"{self.architecture}: labels must be distinct strings, got {self.labels}")
        names = [t.name for t in self.inputs]
        if len(set(names)) != len(names):
            raise SpecError(f"{self.architecture}: duplicate input names {names}")

    @property
    def signal(self) -> TensorSpec:
        """The data input."""
        return next(t for t in self.inputs if t.role == "signal")

    @property
    def lengths(self) -> TensorSpec | None:
        """The input holding sequence lengths of padded batches, if the model takes one."""
        return next((t for t in self.inputs if t.role == "lengths"), None)

    def context(self, source: str) -> TensorSpec | None:
        """The context input fed from `source`, if the model takes one."""
        return next((t for t in self.inputs if t.role == "context" and t.source == source), None)

    @property
    def sequence_axis(self) -> str | None:
        """The signal's dynamic axis other than batch (time, samples, frames), or None."""
        return next((n for n in self.signal.dynamic_axes.values() if n != "batch"), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Rebuild a spec from `to_dict` output (this version or the first), raising `SpecError` on anything
        malformed."""
        try:
            data = dict(_known(cls, data, "model spec"))
            version = whole(data.get("version", SPEC_VERSION), "spec version", 1, 10**6)
            if version > SPEC_VERSION:
                raise SpecError(f"spec version {version} is newer than this edgemed understands ({SPEC_VERSION})")
            data["version"] = SPEC_VERSION
            if version < 2:
                data["inputs"] = _v1_roles(data["inputs"])
            pre = dict(data.get("preprocessing") or {})
            if isinstance(pre.get("window"), dict) and not pre["window"]:
                pre["window"] = None
            data["preprocessing"] = Preprocessing.from_dict(pre)
            return cls(**data)
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as exc:
            raise SpecError(f"malformed model spec: {type(exc).__name__} {str(exc)[:200]}") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, and 5,000-digit numbers
            raise SpecError(f"model spec is not valid JSON: {str(exc)[:200]}") from exc


def _v1_roles(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Version-1 specs had no roles: their integer input held the lengths of the float input's sequence axis."""
    signal = next((t for t in inputs if t.get("dtype", "float32").startswith("float")), None)
    axis = next((d for d in (signal or {}).get("shape", [])[1:] if isinstance(d, str)), None)
    return [{**t, "role": "lengths", "counts": axis} if t.get("dtype", "").startswith("int") and axis else t
            for t in inputs]
