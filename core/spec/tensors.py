"""Tensors of a model's inputs and outputs, and how a streaming model is fed (chunks and carried state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgemed.core.bounds import MAX_COUNT, MAX_DIM, text, whole
from edgemed.core.errors import SpecError
from edgemed.core.limits import check
from edgemed.core.record import Record
from edgemed.core.spec.fields import known

DTYPES = ("float32", "float16", "int64", "int32")
ROLES = ("signal", "lengths", "state", "context")
CONTEXT_SOURCES = ("rr_features", "beat_template")  # computed by edgemed.runtime.ecg.context
MAX_RANK = 64
ITEMSIZE = {"float32": 4, "float16": 2, "int64": 8, "int32": 4}


@dataclass(eq=False, repr=False)
class TensorSpec(Record):
    """One named input or output. Integers in `shape` are fixed; strings name dynamic axes.

    `role` says what an input is: the `signal` (data), the `lengths` of padded sequences (counting along the axis
    named by `counts`), a streaming `state`, or `context` computed from beat positions (`source` names which:
    see `edgemed.runtime.ecg.context`). Code outside a model family finds inputs by role, never by name."""

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
        return cls(**known(cls, data, "tensor"))


@dataclass(eq=False, repr=False)
class StreamingSpec(Record):
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
