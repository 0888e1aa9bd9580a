"""On-device acceptance: a bundle carries, per model, a few reference inputs and the outputs validated on the
machine that built it; `edgemed verify-bundle --run` replays them on the target and fails, naming the model and
the deviation, when the device computes something else (another CPU class, another onnxruntime build, a wrong
provider or backend).

Inputs are seeded from the spec (batch 4; for a streaming model, 6 chunks through a stream from the zero state),
so they exercise every input without shipping patient data. Tolerances, per logit: `FLOAT_ATOL` + `FLOAT_RTOL` x
|logit| for float models (summation order differs between CPUs and builds), `HALF_RTOL` for half precision, and
`INT8_ATOL` + `INT8_RTOL` x |logit| for int8 models (rounding at a quantisation boundary moves a logit by about
one step); the predicted labels must agree everywhere.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.core.errors import AcceptanceError
from edgemed.core.examples import example_inputs, example_sizes
from edgemed.core.readers.numpy_arrays import load_npz
from edgemed.runtime.model import EdgeModel

FLOAT_ATOL, FLOAT_RTOL = 1e-4, 1e-3
HALF_RTOL = 2e-2  # fp16 files and OpenVINO's bf16 inference
INT8_ATOL, INT8_RTOL = 0.05, 1e-2
BATCH, CHUNKS = 4, 6
REFERENCE_SUFFIX = ".reference.npz"


@dataclass
class Replay:
    model: str
    max_abs: float  # largest logit deviation
    worst_share: float  # largest deviation as a share of the one allowed there (<= 1 passes)
    labels_agree: bool

    @property
    def passed(self) -> bool:
        return self.labels_agree and self.worst_share <= 1.0

    def describe(self) -> str:
        return (f"{self.model}: max logit deviation {self.max_abs:.2e} ({100 * self.worst_share:.0f} % of the "
                f"allowed), labels {'agree' if self.labels_agree else 'DIFFER'}")


def _allowed(model: EdgeModel, expected: np.ndarray) -> np.ndarray:
    """How far each logit may move between machines (see the module docstring)."""
    mode = str((model.metadata.quantization or {}).get("mode", ""))
    if mode.startswith(("static", "dynamic")):
        return INT8_ATOL + INT8_RTOL * np.abs(expected)
    rtol = HALF_RTOL if mode == "fp16" or model.engine.precision == "bf16" else FLOAT_RTOL
    return FLOAT_ATOL + rtol * np.abs(expected)


def _logits(model: EdgeModel, inputs: dict[str, np.ndarray]) -> np.ndarray:
    spec = model.spec
    if spec.streaming is None:
        return model.run(inputs)[0]
    signal = inputs[spec.signal.name]
    axis = spec.signal.shape.index(spec.streaming.chunk_axis)
    step = signal.shape[axis] // CHUNKS
    stream = model.stream(chunk=step, batch=signal.shape[0])
    return np.concatenate([p.logits for p in stream.push(signal)])


def reference_case(model: EdgeModel, seed: int = 0) -> bytes:
    """The reference inputs and this machine's outputs for `model`, as .npz bytes."""
    spec = model.spec
    sizes = example_sizes(spec, BATCH)
    if spec.streaming is not None:
        m = spec.streaming.chunk_multiple
        sizes[spec.streaming.chunk_axis] = CHUNKS * m * (4 if m > 1 else 3)
    inputs = example_inputs(spec, sizes, seed=seed)
    if spec.streaming is not None:
        inputs = {spec.signal.name: inputs[spec.signal.name]}
    logits = _logits(model, inputs)
    buf = io.BytesIO()
    np.savez(buf, **{f"in_{k}": v for k, v in inputs.items()}, logits=logits)
    return buf.getvalue()


def replay(model: EdgeModel, path) -> Replay:
    """Run the reference inputs at `path` and compare with the outputs stored beside them. A reference file
    without `logits`, without inputs, or with inputs the model does not take is refused (AcceptanceError)."""
    arrays = load_npz(path)
    inputs = {k[3:]: v for k, v in arrays.items() if k.startswith("in_")}
    names = {t.name for t in model.spec.inputs}
    unknown = sorted(set(inputs) - names)
    if "logits" not in arrays or not inputs or unknown or model.spec.signal.name not in inputs:
        raise AcceptanceError(f"{Path(path).name}: not a reference file for {model.path.name} (it needs logits and "
                              f"the model's inputs {sorted(names)}; found {sorted(arrays)[:8]})")
    if not np.issubdtype(arrays["logits"].dtype, np.number) or arrays["logits"].ndim != 2:
        raise AcceptanceError(f"{Path(path).name}: its logits are not a numeric [samples, classes] array")
    expected = arrays["logits"].astype(np.float64)
    got = _logits(model, inputs).astype(np.float64)
    if got.shape != expected.shape:
        return Replay(model.path.name, float("inf"), float("inf"), False)
    deviation = np.abs(got - expected)
    return Replay(model.path.name, float(deviation.max()), float((deviation / _allowed(model, expected)).max()),
                  bool((got.argmax(1) == expected.argmax(1)).all()))
