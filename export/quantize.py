"""`edgemed quantize`: int8 (dynamic or static QDQ) and fp16 models that prove they kept their accuracy.

Pipeline: onnxruntime's quantisation pre-processing (shape inference, constant folding), `Pad` fused into
`Conv`, then the mode; int8 modes also store the recurrent weights as int8 (see graph_passes). Before anything
is written the quantised model is compared with the fp32 model on labelled validation data; a macro-F1 drop
over `max_drop` points fails unless forced, and the report goes to the caller and into the metadata.
"""

from __future__ import annotations

import contextlib
import enum
import io
import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime import quantization as ortq
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgemed.core.atomic import check_output, sidecar_path, temporary_folder
from edgemed.core.calibration import softmax
from edgemed.core.errors import QuantizationError
from edgemed.core.metrics import classification_report
from edgemed.core.spec import ModelSpec
from edgemed.export.graph_passes import RECURRENT_OPS, fuse_pad_into_conv, recurrent_weights_int8
from edgemed.export.onnx_io import check_writable, get_metadata, save_model, set_metadata
from edgemed.export.quant_data import Labelled
from edgemed.export.quant_report import Gate, QuantReport
from edgemed.export.quant_stream import StreamingData
from edgemed.runtime.engines.providers import session_options
from edgemed.runtime.onnx.integrity import verified_copy
from edgemed.runtime.ops.timing import interleaved

DEFAULT_MAX_DROP = 0.5  # macro-F1 points
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                 "ConvInteger", "MatMulInteger", "QGemm"}


class QuantMode(enum.Enum):
    DYNAMIC = "dynamic"
    STATIC = "static"
    FP16 = "fp16"


class RecurrentWeights(enum.Enum):
    """How an int8 model stores the GRU/LSTM/RNN weights (onnxruntime has no int8 recurrent kernel, so they are
    computed in float either way). `float`: plain constants, which onnxruntime pre-packs once at load: the fastest.
    `int8`: int8 + per-row scales behind DequantizeLinear: about 4x smaller, but the dequantised weights are not
    constants, so they are not pre-packed and every run is slower (measured in benchmarks/quantization.py)."""

    FLOAT = "float"
    INT8 = "int8"


class QuantEngine(enum.Enum):
    """Who places the int8 quantisation: onnxruntime's quantiser, or NNCF (the `openvino` extra) in its
    accuracy-control mode, which keeps layers in float until the validation macro-F1 drop is within the limit.
    Both write the same QDQ ONNX file, gated the same way, and run on either backend."""

    ONNXRUNTIME = "onnxruntime"
    NNCF = "nncf"


class QuantScheme(enum.Enum):
    """Static int8 types. `u8s8` (u8 activations, s8 weights) is onnxruntime's default and exact on x86 CPUs with
    VNNI and on aarch64, but on x86 without VNNI its products are summed in pairs into 16 bits and saturate
    (measured: logits 0.28 off on a vitals GRU, against 0.02 elsewhere). `u8s8-reduced` keeps weights to 7 bits
    (no saturation), `u8u8` uses u8 weights (another kernel); `auto` takes the first that holds on every target
    class (`--isa`)."""

    AUTO = "auto"
    U8S8 = "u8s8"
    U8S8_REDUCED = "u8s8-reduced"
    U8U8 = "u8u8"


_SCHEMES = {QuantScheme.U8S8: dict(activation_type=ortq.QuantType.QUInt8, weight_type=ortq.QuantType.QInt8),
            QuantScheme.U8S8_REDUCED: dict(activation_type=ortq.QuantType.QUInt8, weight_type=ortq.QuantType.QInt8,
                                           reduce_range=True),
            QuantScheme.U8U8: dict(activation_type=ortq.QuantType.QUInt8, weight_type=ortq.QuantType.QUInt8)}
ISA_SAMPLES = 64  # validation samples replayed on each other instruction-set class (emulated: slow)
ISA_ATOL = 0.05  # logits may move this much from the host's int8 result on another class


class CalibrationMethod(enum.Enum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


_ORT_METHODS = {CalibrationMethod.MINMAX: ortq.CalibrationMethod.MinMax,
                CalibrationMethod.ENTROPY: ortq.CalibrationMethod.Entropy,
                CalibrationMethod.PERCENTILE: ortq.CalibrationMethod.Percentile}


class _Reader(ortq.CalibrationDataReader):
    """onnxruntime's calibration interface over any iterable of input dicts."""

    def __init__(self, batches: Iterable[dict[str, np.ndarray]]) -> None:
        self._it = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


@dataclass
class QuantResult:
    path: Path | None
    report: QuantReport


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


def _precision_of_ops(model: onnx.ModelProto) -> dict[str, list[str]]:
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


def _session(path: Path, threads: int) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), session_options(threads, spinning=False),
                                providers=["CPUExecutionProvider"])


def _logits(sess: ort.InferenceSession, data: Labelled, spec: ModelSpec, batch: int = 64) -> np.ndarray:
    """Logits of every sample: one batch call each, or (streaming models) after streaming it chunk by chunk."""
    if spec.streaming is not None:
        return StreamingData(data, spec).logits(sess, batch)
    return np.concatenate([sess.run(None, data.feeds(s, min(s + batch, len(data.y)), spec))[0]
                           for s in range(0, len(data.y), batch)]).astype(np.float64)


def _latency_ratio(fp32: Path, quant: Path, feeds: dict[str, np.ndarray], runs: int = 30) -> dict[str, float]:
    """Median batch-1 latency on one thread, the two models interleaved so machine noise hits both."""
    a, b = _session(fp32, 1), _session(quant, 1)
    times = interleaved({"fp32": lambda: a.run(None, feeds), "quantized": lambda: b.run(None, feeds)}, runs, warmup=3)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"fp32_us": med["fp32"], "quantized_us": med["quantized"], "speedup": med["fp32"] / med["quantized"]}


def _prepared_parity(original: Path, prepared: Path, data: Labelled, spec: ModelSpec, atol: float = 1e-5,
                     rtol: float = 1e-4) -> float:
    """The pre-processed, Pad-fused fp32 graph must still match the original at fp32 tolerance before it is
    quantised; otherwise a quantisation error could hide a rewrite error."""
    subset = data.take(slice(0, 32))
    ref = _logits(_session(original, 2), subset, spec)
    got = _logits(_session(prepared, 2), subset, spec)
    worst = float(np.abs(got - ref).max())
    if not np.allclose(got, ref, atol=atol, rtol=rtol):
        raise QuantizationError(f"the prepared fp32 graph differs from {original.name} by {worst:.2e} "
                                f"(atol {atol}, rtol {rtol}) before quantisation; nothing written")
    return worst


def _gate(spec: ModelSpec, fp32: Path, quant: Path, validation: Labelled) -> Gate:
    ref_logits = _logits(_session(fp32, 2), validation, spec)
    q_logits = _logits(_session(quant, 2), validation, spec)
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


def _nncf_quantize(pre: Path, out: Path, spec: ModelSpec, calibration: Labelled, validation: Labelled,
                   max_drop: float) -> dict[str, Any]:
    """NNCF's accuracy-controlled int8 on the prepared ONNX graph: macro-F1 on the validation data (scored with
    onnxruntime) may drop by at most `max_drop` points, layers reverted to float until it does."""
    try:
        import nncf
    except ImportError as exc:
        raise QuantizationError("--engine nncf needs NNCF: pip install 'edgemed[openvino]'") from exc
    import logging

    logging.getLogger("nncf").setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    model = onnx.load(str(pre))
    batches = [calibration.feeds(s, s + 8, spec) for s in range(0, len(calibration.y), 8)]
    cal = nncf.Dataset(batches)
    items = [(validation.feeds(s, s + 64, spec), validation.y[s : s + 64]) for s in range(0, len(validation.y), 64)]

    def macro_f1(candidate: onnx.ModelProto, data: Iterable[tuple[dict[str, np.ndarray], np.ndarray]]) -> float:
        sess = ort.InferenceSession(candidate.SerializeToString(), session_options(2, spinning=False),
                                    providers=["CPUExecutionProvider"])
        batches = list(data)
        logits = np.concatenate([sess.run(None, f)[0] for f, _ in batches])
        truth = np.concatenate([y for _, y in batches])
        return float(classification_report(truth, softmax(logits.astype(np.float64)), spec.labels)["macro_f1"])

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        quantized = nncf.quantize_with_accuracy_control(
            model, cal, nncf.Dataset(items, lambda item: item[0]), validation_fn=macro_f1,
            max_drop=max_drop / 100, drop_type=nncf.DropType.ABSOLUTE, subset_size=min(300, len(batches)))
    onnx.save(quantized, str(out))
    return {"engine": "nncf", "version": nncf.__version__, "accuracy_control_max_drop_points": max_drop}


def isa_targets(text: str | None, device: str | None = None) -> tuple[str, ...]:
    """The instruction-set classes to check: `text` (comma-separated, or "all"), this machine's, and the device
    profile's; QuantizationError for an unknown class."""
    from edgemed.devices.profile import ISA_CLASSES, host_isa
    from edgemed.runtime.engines.providers import resolve_device

    classes = [host_isa()]
    if text:
        named = list(ISA_CLASSES) if text.strip() == "all" else [c.strip() for c in text.split(",") if c.strip()]
        unknown = sorted(set(named) - set(ISA_CLASSES))
        if unknown:
            raise QuantizationError(f"unknown instruction-set class(es) {unknown}; known: {', '.join(ISA_CLASSES)}")
        classes += named
    if device:
        profile_isa = resolve_device(device).isa
        if profile_isa in ISA_CLASSES:
            classes.append(profile_isa)
    return tuple(dict.fromkeys(classes))


def _static(pre: Path, out: Path, batches: list[dict[str, np.ndarray]], method: CalibrationMethod,
            scheme: QuantScheme) -> None:
    # The histogram calibrators print progress, and the quantiser logs (at WARNING) that a 1-D batch-norm weight
    # has no per-channel axis 1 (it then quantises it per tensor, which is right).
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ortq.quantize_static(str(pre), str(out), _Reader(batches), quant_format=ortq.QuantFormat.QDQ,
                                 per_channel=True, calibrate_method=_ORT_METHODS[method], **_SCHEMES[scheme])
    finally:
        root.setLevel(level)


def _static_by_scheme(pre: Path, out: Path, batches: list[dict[str, np.ndarray]], method: CalibrationMethod,
                      scheme: QuantScheme, isa_classes: tuple[str, ...], validation: Labelled, spec: ModelSpec,
                      max_drop: float, work: Path) -> dict[str, Any]:
    """Static int8 with `scheme`, or (auto) the first scheme whose results hold on every target instruction-set
    class this machine can run (`edgemed.export.isa`): the host's gate, then each other class's logits within
    `ISA_ATOL` of the host's and its labels unchanged. What was tried, and each class's deviation, is returned."""
    from edgemed.devices.profile import host_isa
    from edgemed.export.isa import logits_on, reachable

    host = host_isa()
    targets = tuple(dict.fromkeys(isa_classes or (host,)))
    why_not = reachable([c for c in targets if c != host])
    order = [scheme] if scheme is not QuantScheme.AUTO else [QuantScheme.U8S8, QuantScheme.U8S8_REDUCED,
                                                             QuantScheme.U8U8]
    subset = validation.take(slice(0, ISA_SAMPLES))
    feeds = subset.feeds(0, len(subset.y), spec) if spec.streaming is None else None
    fp32_logits = _logits(_session(pre, 2), subset, spec)
    tried: list[dict[str, Any]] = []
    for candidate in order:
        entry: dict[str, Any] = {"scheme": candidate.value, "classes": {}}
        tried.append(entry)
        if (scheme is QuantScheme.AUTO and candidate is QuantScheme.U8S8 and "x86-avx2" in targets
                and why_not.get("x86-avx2")):
            entry["result"] = "skipped: saturates on x86 without VNNI, which cannot be checked here"
            continue
        path = work / f"static-{candidate.value}.onnx"
        _static(pre, path, batches, method, candidate)
        host_logits = _logits(_session(path, 2), subset, spec)
        entry["classes"][host] = {"checked": True, "max_abs_vs_host": 0.0,
                                  "max_abs_vs_fp32": float(np.abs(host_logits - fp32_logits).max())}
        ok = True
        for cls in targets:
            if cls == host:
                continue
            if why_not.get(cls) or feeds is None:
                entry["classes"][cls] = {"checked": False, "why": why_not.get(cls) or "streaming models are "
                                         "checked on the host only"}
                continue
            got = logits_on(cls, path, feeds).astype(np.float64)
            dev = float(np.abs(got - host_logits).max())
            same = bool((got.argmax(1) == host_logits.argmax(1)).all())
            entry["classes"][cls] = {"checked": True, "max_abs_vs_host": dev, "labels_agree": same,
                                     "max_abs_vs_fp32": float(np.abs(got - fp32_logits).max())}
            ok = ok and dev <= ISA_ATOL and same
        entry["result"] = "holds" if ok else f"differs by more than {ISA_ATOL} on another class"
        if ok or scheme is not QuantScheme.AUTO:
            shutil.copyfile(path, out)
            return {"chosen": candidate.value, "targets": list(targets), "tried": tried}
    raise QuantizationError("no int8 scheme gives the same results on every target class: "
                            + "; ".join(f"{t['scheme']}: {t['result']}" for t in tried))


def quantize(fp32_path: Path, out: Path, mode: QuantMode, calibration: Labelled | None, validation: Labelled,
             method: CalibrationMethod = CalibrationMethod.MINMAX, max_drop: float = DEFAULT_MAX_DROP,
             force_gate: bool = False, overwrite: bool = False,
             recurrent_weights: RecurrentWeights = RecurrentWeights.FLOAT,
             engine: QuantEngine = QuantEngine.ONNXRUNTIME, scheme: QuantScheme = QuantScheme.AUTO,
             isa_classes: tuple[str, ...] = ()) -> QuantResult:
    """Quantise `fp32_path` into `out` if it keeps its accuracy (or `force_gate`); nothing is written otherwise.
    The input must pass its own integrity checks; an existing `out` is replaced only with `overwrite`."""
    check_writable(out)
    given = Path(fp32_path)
    check_output(out, overwrite, [given, sidecar_path(given)])
    check_output(sidecar_path(out), overwrite, [given, sidecar_path(given)], what="sidecar")
    with temporary_folder(out.parent, ".edgemed-quant-") as work:
        return _quantize(given, verified_copy(given, work), out, work, mode, calibration, validation, method,
                         max_drop, force_gate, overwrite, recurrent_weights, engine, scheme, isa_classes)


def _quantize(given: Path, fp32_path: Path, out: Path, work: Path, mode: QuantMode, calibration: Labelled | None,
              validation: Labelled, method: CalibrationMethod, max_drop: float, force_gate: bool, overwrite: bool,
              recurrent_weights: RecurrentWeights, engine: QuantEngine, scheme: QuantScheme,
              isa_classes: tuple[str, ...]) -> QuantResult:
    """`quantize` on `fp32_path`, the verified copy of `given` in the private folder `work`."""
    original = onnx.load(str(fp32_path))
    why = is_quantized(original)
    if why:
        raise QuantizationError(f"{given}: refusing to quantise again: {why}; start from the fp32 export")
    meta = get_metadata(original)
    if "spec" not in meta:
        raise QuantizationError(f"{given}: no edgemed metadata (spec, labels); export the model with edgemed")
    spec = ModelSpec.from_json(meta["spec"])
    if spec.streaming is not None and engine is QuantEngine.NNCF:
        raise QuantizationError(f"{given} is a streaming model; NNCF quantises batch exports only")
    if mode is QuantMode.STATIC and calibration is None:
        raise QuantizationError("static quantisation needs calibration data")
    if engine is QuantEngine.NNCF and mode is not QuantMode.STATIC:
        raise QuantizationError("NNCF quantises to static int8 only; use --mode static")
    ort.set_default_logger_severity(3)  # onnxruntime's notes on unused initialisers of the pre-processed graph
    pre = work / "pre.onnx"
    quant_pre_process(str(fp32_path), str(pre))
    model = onnx.load(str(pre))
    passes: dict[str, Any] = {"pads_fused_into_conv": fuse_pad_into_conv(model)}
    onnx.save(model, str(pre))
    passes["fp32_parity_max_abs"] = _prepared_parity(fp32_path, pre, validation, spec)
    raw = work / "quantized.onnx"
    if mode is QuantMode.DYNAMIC:
        ortq.quantize_dynamic(str(pre), str(raw), per_channel=True, weight_type=ortq.QuantType.QInt8)
    elif mode is QuantMode.STATIC and engine is QuantEngine.NNCF:
        passes["nncf"] = _nncf_quantize(pre, raw, spec, calibration, validation, max_drop)
    elif mode is QuantMode.STATIC:
        batches = (StreamingData(calibration, spec).calibration_feeds(pre) if spec.streaming is not None
                   else [calibration.feeds(s, s + 8, spec) for s in range(0, len(calibration.y), 8)])
        passes["scheme"] = _static_by_scheme(pre, raw, batches, method, scheme, isa_classes, validation, spec,
                                             max_drop, work)
    else:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(pre)), keep_io_types=True), str(raw))
    model = onnx.load(str(raw))
    if mode is not QuantMode.FP16 and recurrent_weights is RecurrentWeights.INT8:
        passes["recurrent_weight_bytes_saved"] = recurrent_weights_int8(model)
    onnx.save(model, str(raw))
    report = QuantReport(
        mode=mode.value if engine is QuantEngine.ONNXRUNTIME else f"{mode.value} (nncf)",
        method=method.value if mode is QuantMode.STATIC and engine is QuantEngine.ONNXRUNTIME else None,
        calibration=None if mode is not QuantMode.STATIC else {"source": calibration.source,
                                                                "samples": int(len(calibration.y))},
        graph_passes=passes, size_fp32=fp32_path.stat().st_size, size_quantized=raw.stat().st_size,
        op_types=dict(Counter(n.op_type for n in model.graph.node)), **_precision_of_ops(model),
        gate=_gate(spec, fp32_path, raw, validation),
        latency_us=_latency_ratio(fp32_path, raw, StreamingData(validation, spec).one_step()
                                  if spec.streaming is not None else validation.feeds(0, 1, spec)),
        max_drop_points=max_drop)
    if not report.passed:
        if not force_gate:
            g = report.gate
            raise QuantizationError(
                f"{mode.value} quantisation lost {g.macro_f1_drop_points:.2f} macro-F1 points (fp32 "
                f"{g.macro_f1[0]:.4f}, quantised {g.macro_f1[1]:.4f}) > --max-drop {max_drop}; nothing written "
                "(--force-gate writes it and records the failure)")
        report.verdict = "failed (forced)"
    kept = {k: v for k, v in meta.items() if k not in ("format_version", "integrity", "labels", "preprocessing")}
    set_metadata(model, {**kept, "quantization": report.to_dict()})
    model.producer_name = "edgemed"
    save_model(model, out, replace=overwrite)
    return QuantResult(out, report)


def report_json(report: QuantReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
