"""The model spec and a dataset's spec: labels, inputs and outputs, preprocessing, calibration."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from edgemed.core.bounds import MAX_COUNT, MAX_LABELS, number, text, whole
from edgemed.core.errors import SpecError
from edgemed.core.record import Record
from edgemed.core.spec.fields import known, optional
from edgemed.core.spec.preprocessing import Preprocessing
from edgemed.core.spec.tensors import StreamingSpec, TensorSpec

SPEC_VERSION = 2
CHANNEL_AXES = ("lead", "feature", "channel")  # layout words naming the channel axis


@dataclass(eq=False, repr=False)
class Calibration(Record):
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
        self.ece_before = optional(self.ece_before, "calibration ece_before", 0, 1)
        self.ece_after = optional(self.ece_after, "calibration ece_after", 0, 1)
        self.coverage = optional(self.coverage, "calibration coverage", 0, 1)
        text(self.fitted_on, "calibration fitted_on")
        if self.abstain_below is not None and not 0 < number(self.abstain_below, "abstain_below", 0, 1) < 1:
            raise SpecError(f"abstain_below must be between 0 and 1, got {self.abstain_below!r}")


@dataclass(eq=False, repr=False)
class ModelSpec(Record):
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
            self.calibration = Calibration(**known(Calibration, self.calibration, "calibration"))
        if isinstance(self.streaming, dict):
            self.streaming = StreamingSpec(**known(StreamingSpec, self.streaming, "streaming"))
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
        self._check_runtime_normalization()

    def _check_runtime_normalization(self) -> None:
        """Normalisation the runtime applies (`applied_in == "runtime"`) must fit the signal: one mean per entry of
        a fixed axis. Otherwise every call would fail to broadcast; refused when the model loads instead."""
        norm = self.preprocessing.normalization
        if norm is None or norm.applied_in != "runtime":
            return
        shape = self.signal.shape
        if not -len(shape) <= norm.axis < len(shape):
            raise SpecError(f"{self.architecture}: normalization axis {norm.axis} is outside the {len(shape)} axes "
                            f"of the signal {self.signal.name!r}")
        size = shape[norm.axis]
        if isinstance(size, str) or len(norm.mean) != size:
            raise SpecError(f"{self.architecture}: the runtime normalization has {len(norm.mean)} means along axis "
                            f"{norm.axis}, where the signal {self.signal.name!r} has {size!r}; they must match a "
                            "fixed axis")

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
            data = dict(known(cls, data, "model spec"))
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
