"""The model spec: the single declaration of a model's inputs, outputs, labels and preprocessing.

Training builds it from the model's config; export writes it into the ONNX metadata; the runtime
reads it back (without torch) to check inputs. Nothing else re-declares these facts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from edgemed.core.errors import SpecError

SPEC_VERSION = 1
DTYPES = ("float32", "float16", "int64", "int32")


@dataclass
class TensorSpec:
    """One named input or output. Integers in `shape` are fixed; strings name dynamic axes."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    layout: str = ""
    description: str = ""
    min_sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shape = tuple(self.shape)
        if self.dtype not in DTYPES:
            raise SpecError(f"tensor {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        for dim in self.shape:
            if not (isinstance(dim, str) and dim) and not (isinstance(dim, int) and dim > 0):
                raise SpecError(f"tensor {self.name!r}: dimension {dim!r} must be a positive int or an axis name")

    @property
    def dynamic_axes(self) -> dict[int, str]:
        """Axis index -> axis name, for the dynamic axes only."""
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}


@dataclass
class Normalization:
    """Per-channel affine normalisation `(x - mean) / std` along `axis` of the input."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    axis: int
    applied_in: str = "graph"

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if len(self.mean) != len(self.std):
            raise SpecError(f"normalization: {len(self.mean)} means but {len(self.std)} stds")
        if any(s <= 0 for s in self.std):
            raise SpecError("normalization: every std must be positive")


@dataclass
class BandpassFilter:
    """A Butterworth band-pass applied to the raw signal before windowing."""

    low_hz: float
    high_hz: float
    order: int = 2
    zero_phase: bool = True


SIGNAL_CHECKS = ("range", "flat", "clipping")


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
        self.low = tuple(float(v) for v in self.low)
        self.high = tuple(float(v) for v in self.high)
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

    `rate_range_hz` bounds the sampling rate of a raw signal the runtime will resample to `sampling_rate_hz`."""

    sampling_rate_hz: float | None = None
    frame_rate_hz: float | None = None
    units: str | None = None
    normalization: Normalization | None = None
    bandpass: BandpassFilter | None = None
    window: dict[str, Any] = field(default_factory=dict)
    input_range: InputRange | None = None
    rate_range_hz: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.normalization, dict):
            self.normalization = Normalization(**self.normalization)
        if isinstance(self.bandpass, dict):
            self.bandpass = BandpassFilter(**self.bandpass)
        if isinstance(self.input_range, dict):
            self.input_range = InputRange(**self.input_range)
        if self.rate_range_hz is not None:
            lo, hi = (float(v) for v in self.rate_range_hz)
            if not 0 < lo <= hi:
                raise SpecError(f"rate_range_hz must be two positive rates, low first; got {self.rate_range_hz}")
            self.rate_range_hz = (lo, hi)


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
        self.state_inputs = tuple(t if isinstance(t, TensorSpec) else TensorSpec(**t) for t in self.state_inputs)
        self.state_outputs = tuple(self.state_outputs)
        if len(self.state_inputs) != len(self.state_outputs):
            raise SpecError("streaming: every state input needs exactly one state output")
        if self.chunk_multiple < 1:
            raise SpecError(f"streaming: chunk_multiple must be >= 1, got {self.chunk_multiple}")

    def check_chunk(self, length: int) -> None:
        if length < self.chunk_multiple or length % self.chunk_multiple:
            raise SpecError(
                f"chunk of {length} along {self.chunk_axis!r}: streaming needs a positive multiple of "
                f"{self.chunk_multiple} (pooling alignment); buffer the signal to such a length"
            )


@dataclass
class ModelSpec:
    """Everything later stages need to know about a model, in plain, JSON-serialisable types."""

    architecture: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    task: str = "sequence_classification"
    channel_names: tuple[str, ...] = ()
    streaming: StreamingSpec | None = None
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.streaming, dict):
            self.streaming = StreamingSpec(**self.streaming)
        self.inputs = tuple(self.inputs)
        self.outputs = tuple(self.outputs)
        self.labels = tuple(self.labels)
        self.channel_names = tuple(self.channel_names)
        if len(self.labels) < 2:
            raise SpecError(f"{self.architecture}: a classifier needs at least two labels, got {self.labels}")
        if len(set(self.labels)) != len(self.labels):
            raise SpecError(f"{self.architecture}: duplicate labels in {self.labels}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Rebuild a spec from `to_dict` output, raising `SpecError` on anything malformed."""
        try:
            version = int(data.get("version", SPEC_VERSION))
            if version > SPEC_VERSION:
                raise SpecError(f"spec version {version} is newer than this edgemed understands ({SPEC_VERSION})")
            pre = dict(data.get("preprocessing") or {})
            return cls(
                architecture=data["architecture"],
                inputs=tuple(TensorSpec(**t) for t in data["inputs"]),
                outputs=tuple(TensorSpec(**t) for t in data["outputs"]),
                labels=tuple(data["labels"]),
                preprocessing=Preprocessing(**pre),
                task=data.get("task", "sequence_classification"),
                channel_names=tuple(data.get("channel_names", ())),
                streaming=data.get("streaming"),
                version=version,
            )
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"malformed model spec: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise SpecError(f"model spec is not valid JSON: {exc}") from exc
