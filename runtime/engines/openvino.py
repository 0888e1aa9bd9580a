"""The OpenVINO backend (`pip install 'edgemed[openvino]'`): the same edgemed ONNX file, compiled by OpenVINO for
the CPU, behind the same `EdgeModel` checks, outputs, metadata and warnings as onnxruntime.

- Precision: `fp32`, or `bf16` where the CPU reports BF16 (OpenVINO's inference precision hint; weights and I/O
  stay as they are in the file). An int8 QDQ file from `edgemed quantize` or `edgemed quantize --engine nncf` runs
  in OpenVINO's int8 kernels.
- Threads: one stream of `threads` inference threads, as onnxruntime's intra-op threads.
- Streaming: a streaming export's state inputs and outputs are turned into OpenVINO variables (`MakeStateful`), so
  the state stays inside the inference request between chunks instead of crossing into numpy every step.

Nothing here is trusted blindly: `edgemed tune` and the tests measure every backend and precision against the
model's parity and accuracy gates before it is used.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgemed.core.errors import InputError, ModelLoadError, ProviderError, first_line
from edgemed.core.limits import limit
from edgemed.core.spec import ModelSpec
from edgemed.runtime.engines.base import TensorInfo
from edgemed.runtime.engines.watchdog import Slot, watch

PRECISIONS = ("fp32", "bf16")
_HINTS = {"fp32": "f32", "bf16": "bf16"}
_DTYPES = {"f32": "float32", "f16": "float16", "i64": "int64", "i32": "int32"}


def _openvino():
    try:
        import openvino as ov
    except ImportError as exc:
        raise ProviderError("the openvino backend needs OpenVINO: pip install 'edgemed[openvino]'") from exc
    return ov


def available() -> bool:
    try:
        _openvino()
    except ProviderError:
        return False
    return True


def supports_bf16() -> bool:
    ov = _openvino()
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@dataclass
class OpenVINOReport:
    """What `EdgeModel.providers` is for onnxruntime: where the model runs and how."""

    precision: str
    threads: int
    version: str
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"OpenVINO {self.version} CPU, {self.precision}, {self.threads} thread(s)"

    def to_dict(self) -> dict[str, Any]:
        return {"backend": "openvino", "precision": self.precision, "threads": self.threads, "version": self.version,
                "problems": self.problems}


def _info(port) -> TensorInfo:
    shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
    return TensorInfo(port.get_any_name(), _DTYPES.get(port.get_element_type().get_type_name()), shape)


def _config(threads: int, precision: str) -> dict[str, Any]:
    return {"INFERENCE_NUM_THREADS": max(threads, 1), "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": _HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY"}


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"OpenVINO precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "bf16" and not supports_bf16():
        raise ProviderError("this CPU has no bf16 support in OpenVINO; use precision fp32")


def _refuse_loops(model) -> None:
    """OpenVINO cannot stop a Loop once it runs (the run deadline cancels between nodes), and edgemed exports none."""
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Loop":
            raise ModelLoadError("the graph has a Loop node, which OpenVINO cannot stop if it runs without end; run "
                                 "this model on onnxruntime (edgemed exports no Loop)")
        for body in _bodies(op):
            _refuse_loops(body)


def _bodies(op) -> list:
    """The subgraphs of an OpenVINO node: an If's two branches, a TensorIterator's (an ONNX Scan) body."""
    if hasattr(op, "get_then_body"):
        return [op.get_then_body(), op.get_else_body()]
    if hasattr(op, "get_function"):
        return [op.get_function()]
    return []


def request_slot(request, limit_s: float) -> Slot:
    return watch(Slot(request, request.cancel, limit_s))


def timed_infer(slot: Slot, inputs: dict, what: str) -> Any:
    """One inference under the run deadline (`watchdog`); a cancel that raced the end of the run before is retried
    once, any other failure is InputError."""
    for attempt in (1, 2):
        slot.started = time.monotonic()
        try:
            return slot.handle.infer(inputs, share_inputs=True)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses, a cancel included
            if slot.overdue():
                raise slot.timeout("OpenVINO") from exc
            if attempt == 2 or "canceled" not in str(exc):
                raise InputError(f"OpenVINO could not run {what}: {first_line(exc)}") from exc
        finally:
            slot.started = None
    return None  # not reached: the second try returns or raises


class OpenVINOEngine:
    """A compiled model; `run(feeds)` returns the outputs in the ONNX file's order. Thread-safe: one inference
    request per calling thread."""

    name = "openvino"

    def __init__(self, data: bytes, threads: int, precision: str = "fp32") -> None:
        ov = _openvino()
        _check_precision(precision)
        self._ov = ov
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(data)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses on unreadable or unsupported graphs
            raise ModelLoadError(f"OpenVINO cannot read this model: {str(exc).splitlines()[0][:300]}") from exc
        _refuse_loops(self.model)
        self.threads, self.precision = threads, precision
        self.limit_s = limit("run_s")
        self.compiled = self._compile(self.model)
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._local = threading.local()
        self.report = OpenVINOReport(precision, threads, ov.get_version().split("-")[0])

    def _compile(self, model):
        try:
            return self.core.compile_model(model, "CPU", _config(self.threads, self.precision))
        except Exception as exc:
            raise ModelLoadError(f"OpenVINO cannot compile this model: {str(exc).splitlines()[0][:300]}") from exc

    def inputs(self) -> list[TensorInfo]:
        return [_info(p) for p in self.model.inputs]

    def outputs(self) -> list[TensorInfo]:
        return [_info(p) for p in self.model.outputs]

    def _slot(self) -> Slot:
        """This thread's inference request, watched for the run deadline."""
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = request_slot(self.compiled.create_infer_request(), self.limit_s)
        return slot

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = timed_infer(self._slot(), feeds, "these inputs")
        return [np.array(result[o]) for o in self.compiled.outputs]

    def stateful(self, spec: ModelSpec, batch: int = 1) -> StatefulStream:
        """A request whose streaming state lives inside OpenVINO (zero at start and after `reset`), for `batch`
        streams side by side."""
        return StatefulStream(self, spec, batch)


class StatefulStream:
    """A streaming export made stateful: feed the chunk alone, get the logits; the state is kept in the request."""

    def __init__(self, engine: OpenVINOEngine, spec: ModelSpec, batch: int) -> None:
        if spec.streaming is None:
            raise InputError("not a streaming model")
        from openvino._offline_transformations import apply_make_stateful_transformation

        model = engine.model.clone()
        # The state's batch must be fixed: a variable's initial value takes its shape from it.
        shapes = {}
        for t in (spec.signal, *spec.streaming.state_inputs):
            shapes[t.name] = [batch if d == "batch" else (d if isinstance(d, int) else -1) for d in t.shape]
        try:
            model.reshape(shapes)
        except Exception as exc:
            raise ModelLoadError(f"OpenVINO cannot fix the stream's batch to {batch}: {exc}") from exc
        pairs = dict(zip((t.name for t in spec.streaming.state_inputs), spec.streaming.state_outputs, strict=True))
        try:
            apply_make_stateful_transformation(model, pairs)
        except Exception as exc:
            raise ModelLoadError(f"OpenVINO cannot make this streaming model stateful: {exc}") from exc
        self.compiled = engine._compile(model)
        self.request = self.compiled.create_infer_request()
        self._slot = request_slot(self.request, engine.limit_s)
        self.logits = self.compiled.outputs[0]
        self.input = self.compiled.inputs[0]  # the chunk: the only input left

    def reset(self) -> None:
        self.request.reset_state()

    def run(self, chunk: np.ndarray) -> np.ndarray:
        return np.array(timed_infer(self._slot, {self.input: chunk}, "this chunk")[self.logits])
