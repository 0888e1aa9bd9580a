"""What quantisation is checked with: whether a model is already quantised, which ops compute in int8, logits on
labelled data (streaming models chunk by chunk), the fp32 parity of the prepared graph, the accuracy gate, and the
interleaved fp32/quantised latency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgemed.core.calibration import softmax
from edgemed.core.errors import QuantizationError
from edgemed.core.metrics import classification_report
from edgemed.core.spec import ModelSpec
from edgemed.export.graph_passes import RECURRENT_OPS
from edgemed.export.quant_data import Labelled
from edgemed.export.quant_options import QUANTIZED_OPS
from edgemed.export.quant_report import Gate
from edgemed.export.quant_stream import StreamingData
from edgemed.runtime.engines.onnxruntime import TimedSession
from edgemed.runtime.engines.providers import session_options
from edgemed.runtime.ops.timing import interleaved


def is_quantized(model: onnx.ModelProto) -> str | None:
    """Why `model` already looks quantised, or None."""
    ops = {n.op_type for n in model.graph.node} & QUANTIZED_OPS
    if ops:
        return f"it already holds quantised ops ({', '.join(sorted(ops))})"
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        return "its weights are already float16"
    if any(p.key == "edgemed.quantization" for p in model.metadata_props):
        return "its metadata records an earlier quantisation"
    return None


def precision_of_ops(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Which compute ops run in int8 (integer ops, or QDQ-wrapped: their activation comes from a
    DequantizeLinear, which onnxruntime fuses into QLinear kernels), which only store int8 weights
    (the recurrent ops), and which stay float."""
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    dequantized |= {o for n in model.graph.node if n.op_type == "Reshape" and n.input[0] in dequantized
                    for o in n.output}
    compute = {"Conv", "Gemm", "MatMul", *RECURRENT_OPS, "MaxPool", "ConvInteger", "MatMulInteger", "QLinearConv",
               "QLinearMatMul", "QGemm"}
    int8, weights_only, floating = set(), set(), set()
    for n in model.graph.node:
        if n.op_type not in compute:
            continue
        if n.op_type in RECURRENT_OPS:  # onnxruntime has no int8 recurrent kernel: dequantised weights, float compute
            (weights_only if any(i in dequantized for i in n.input[1:3]) else floating).add(n.op_type)
        elif n.op_type in QUANTIZED_OPS or n.input[0] in dequantized:
            int8.add(n.op_type)
        elif any(i in dequantized for i in n.input[1:]):
            weights_only.add(n.op_type)
        else:
            floating.add(n.op_type)
    return {"int8_compute_ops": sorted(int8), "int8_weight_only_ops": sorted(weights_only),
            "float_compute_ops": sorted(floating)}


def session_for(path: Path, threads: int) -> TimedSession:
    """A CPU session whose runs have the runtime's deadline."""
    return TimedSession(ort.InferenceSession(str(path), session_options(threads, spinning=False),
                                             providers=["CPUExecutionProvider"]))


def logits_of(sess: TimedSession, data: Labelled, spec: ModelSpec, batch: int = 64) -> np.ndarray:
    """Logits of every sample: one batch call each, or (streaming models) after streaming it chunk by chunk."""
    if spec.streaming is not None:
        return StreamingData(data, spec).logits(sess, batch)
    return np.concatenate([sess.run(None, data.feeds(s, min(s + batch, len(data.y)), spec))[0]
                           for s in range(0, len(data.y), batch)]).astype(np.float64)


def latency_ratio(fp32: Path, quant: Path, feeds: dict[str, np.ndarray], runs: int = 30) -> dict[str, float]:
    """Median batch-1 latency on one thread, the two models interleaved so machine noise hits both."""
    a, b = session_for(fp32, 1), session_for(quant, 1)
    times = interleaved({"fp32": lambda: a.run(None, feeds), "quantized": lambda: b.run(None, feeds)}, runs, warmup=3)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"fp32_us": med["fp32"], "quantized_us": med["quantized"], "speedup": med["fp32"] / med["quantized"]}


def prepared_parity(original: Path, prepared: Path, data: Labelled, spec: ModelSpec, atol: float = 1e-5,
                     rtol: float = 1e-4) -> float:
    """The pre-processed, Pad-fused fp32 graph must still match the original at fp32 tolerance before it is
    quantised; otherwise a quantisation error could hide a rewrite error."""
    subset = data.take(slice(0, 32))
    ref = logits_of(session_for(original, 2), subset, spec)
    got = logits_of(session_for(prepared, 2), subset, spec)
    worst = float(np.abs(got - ref).max())
    if not np.allclose(got, ref, atol=atol, rtol=rtol):
        raise QuantizationError(f"the prepared fp32 graph differs from {original.name} by {worst:.2e} "
                                f"(atol {atol}, rtol {rtol}) before quantisation; nothing written")
    return worst


def accuracy_gate(spec: ModelSpec, fp32: Path, q_logits: np.ndarray, validation: Labelled) -> Gate:
    """The quantised model's validation logits (`logits_of`) against the fp32 model's."""
    ref_logits = logits_of(session_for(fp32, 2), validation, spec)
    ref = classification_report(validation.y, softmax(ref_logits), spec.labels)
    got = classification_report(validation.y, softmax(q_logits), spec.labels)
    diff = np.abs(q_logits - ref_logits)
    per_class = {name: {k: (ref["per_class"][name][k], got["per_class"][name][k]) for k in ("sensitivity",
                                                                                              "specificity")}
                 for name in spec.labels}
    return Gate(source=validation.source, samples=int(len(validation.y)), max_abs_logit_diff=float(diff.max()),
                max_rel_logit_diff=float((diff / np.maximum(np.abs(ref_logits), 1e-6)).max()),
                top1_agreement=float((q_logits.argmax(1) == ref_logits.argmax(1)).mean()),
                macro_f1=(ref["macro_f1"], got["macro_f1"]), accuracy=(ref["accuracy"], got["accuracy"]),
                per_class=per_class)
