"""`edgemed quantize`: int8 (dynamic or static QDQ) and fp16 models that prove they kept their accuracy.

Pipeline: onnxruntime's quantisation pre-processing (shape inference, constant folding), `Pad` fused into
`Conv`, then the mode; int8 modes may also store the recurrent weights as int8 (see graph_passes). Before anything
is written the quantised model is compared with the fp32 model on labelled validation data; a macro-F1 drop
over `max_drop` points fails unless forced, and the report goes to the caller and into the metadata.
`quantize_file` is the library entry the CLI parses for; `quantize` takes data already loaded.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
from onnxruntime import quantization as ortq
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgemed.core.atomic import check_output, sidecar_path, temporary_folder
from edgemed.core.errors import QuantizationError
from edgemed.core.spec import ModelSpec
from edgemed.export.graph_passes import (
    decision_nodes,
    fuse_pad_into_conv,
    recurrent_weights_int8,
    restore_float_inputs,
)
from edgemed.export.onnx_io import check_writable, get_metadata, save_model, set_metadata
from edgemed.export.quant_checks import (
    accuracy_gate,
    is_quantized,
    latency_ratio,
    logits_of,
    precision_of_ops,
    prepared_parity,
    session_for,
)
from edgemed.export.quant_data import DEFAULT_CALIBRATION_SAMPLES, Labelled
from edgemed.export.quant_engines import openvino_agreement
from edgemed.export.quant_fallback import static_fallback
from edgemed.export.quant_int8 import isa_targets, nncf_quantize, static_by_scheme
from edgemed.export.quant_options import (
    DEFAULT_MAX_DROP,
    MIN_PRODUCT_WEIGHTS,
    CalibrationMethod,
    QuantEngine,
    QuantMode,
    QuantOptions,
    QuantResult,
    QuantScheme,
    RecurrentWeights,
)
from edgemed.export.quant_placement import int8_nodes, small_products
from edgemed.export.quant_report import QuantReport
from edgemed.export.quant_stream import StreamingData
from edgemed.runtime.onnx.integrity import verified_copy

__all__ = ["DEFAULT_MAX_DROP", "MIN_PRODUCT_WEIGHTS", "CalibrationMethod", "QuantEngine", "QuantMode", "QuantResult",
           "QuantScheme", "RecurrentWeights", "isa_targets", "quantize", "quantize_file", "report_json"]


def quantize(fp32_path: Path, out: Path, mode: QuantMode, calibration: Labelled | None, validation: Labelled,
             method: CalibrationMethod = CalibrationMethod.MINMAX, max_drop: float = DEFAULT_MAX_DROP,
             force_gate: bool = False, overwrite: bool = False,
             recurrent_weights: RecurrentWeights = RecurrentWeights.FLOAT,
             engine: QuantEngine = QuantEngine.ONNXRUNTIME, scheme: QuantScheme = QuantScheme.AUTO,
             isa_classes: tuple[str, ...] = (), min_product_weights: int = MIN_PRODUCT_WEIGHTS) -> QuantResult:
    """Quantise `fp32_path` into `out` if it keeps its accuracy (or `force_gate`); nothing is written otherwise.
    The input must pass its own integrity checks; an existing `out` is replaced only with `overwrite`. In int8,
    matrix products with fewer than `min_product_weights` weights stay float (`quant_placement`; 0: none do)."""
    opts = QuantOptions(mode, method, max_drop, force_gate, recurrent_weights, engine, scheme, tuple(isa_classes),
                        min_product_weights)
    check_writable(out)
    given = Path(fp32_path)
    check_output(out, overwrite, [given, sidecar_path(given)])
    check_output(sidecar_path(out), overwrite, [given, sidecar_path(given)], what="sidecar")
    with temporary_folder(out.parent, ".edgemed-quant-") as work:
        fp32 = verified_copy(given, work)
        meta, spec = _source(given, fp32, opts, calibration)
        ort.set_default_logger_severity(3)  # onnxruntime's notes on unused initialisers of the pre-processed graph
        pre, passes, keep = _prepare(fp32, work, validation, spec)
        raw, model = _convert(pre, work, opts, calibration, validation, spec, passes, keep)
        report = _report(opts, calibration, validation, spec, fp32, raw, model, passes)
        kept = {k: v for k, v in meta.items() if k not in ("format_version", "integrity", "labels", "preprocessing")}
        set_metadata(model, {**kept, "quantization": report.to_dict()})
        model.producer_name = "edgemed"
        save_model(model, out, replace=overwrite)
    return QuantResult(out, report)


def _source(given: Path, fp32: Path, opts: QuantOptions, calibration: Labelled | None
            ) -> tuple[dict[str, str], ModelSpec]:
    """The verified copy's metadata and spec, refused when it cannot be quantised as asked."""
    original = onnx.load(str(fp32))
    why = is_quantized(original)
    if why:
        raise QuantizationError(f"{given}: refusing to quantise again: {why}; start from the fp32 export")
    meta = get_metadata(original)
    if "spec" not in meta:
        raise QuantizationError(f"{given}: no edgemed metadata (spec, labels); export the model with edgemed")
    spec = ModelSpec.from_json(meta["spec"])
    if spec.streaming is not None and opts.engine is QuantEngine.NNCF:
        raise QuantizationError(f"{given} is a streaming model; NNCF quantises batch exports only")
    if opts.mode is QuantMode.STATIC and calibration is None:
        raise QuantizationError("static quantisation needs calibration data")
    if opts.engine is QuantEngine.NNCF and opts.mode is not QuantMode.STATIC:
        raise QuantizationError("NNCF quantises to static int8 only; set `mode` static")
    return meta, spec


def _prepare(fp32: Path, work: Path, validation: Labelled, spec: ModelSpec
             ) -> tuple[Path, dict[str, Any], list[str]]:
    """onnxruntime's pre-processing and the Pad-into-Conv fusion, proven at fp32 tolerance before quantising; also
    the names of the nodes every mode keeps in float (`decision_nodes`)."""
    pre = work / "pre.onnx"
    quant_pre_process(str(fp32), str(pre))
    model = onnx.load(str(pre))
    passes: dict[str, Any] = {"pads_fused_into_conv": fuse_pad_into_conv(model)}
    keep = decision_nodes(model)  # names unnamed nodes too, saved below for the quantisers to find
    passes["kept_float_for_decisions"] = len(keep)
    onnx.save(model, str(pre))
    passes["fp32_parity_max_abs"] = prepared_parity(fp32, pre, validation, spec)
    return pre, passes, keep


def _convert(pre: Path, work: Path, opts: QuantOptions, calibration: Labelled | None, validation: Labelled,
             spec: ModelSpec, passes: dict[str, Any], keep: list[str]) -> tuple[Path, onnx.ModelProto]:
    """The quantised graph, by mode and engine (what each pass did goes into `passes`); the `keep` nodes stay
    float."""
    raw = work / "quantized.onnx"
    if opts.mode is not QuantMode.FP16:  # int8 modes also keep float the products too small to pay
        prepared = onnx.load(str(pre))
        small = small_products(prepared, opts.min_product_weights)
        passes["products_kept_float"] = len(small)
        keep = sorted(set(keep) | set(small))
    if opts.mode is QuantMode.DYNAMIC:
        ortq.quantize_dynamic(str(pre), str(raw), per_channel=True, weight_type=ortq.QuantType.QInt8,
                              nodes_to_exclude=keep)
    elif opts.engine is QuantEngine.NNCF:
        passes["nncf"] = nncf_quantize(pre, raw, spec, calibration, validation, opts.max_drop, keep)
    elif opts.mode is QuantMode.STATIC:
        quantise = int8_nodes(prepared, keep, opts.min_product_weights)
        passes["int8_nodes"] = len(quantise)
        if not quantise:  # nothing here pays in int8 (a recurrent model's small head): the prepared float graph
            shutil.copyfile(pre, raw)
        else:
            batches = (StreamingData(calibration, spec).calibration_feeds(pre) if spec.streaming is not None
                       else [calibration.feeds(s, s + 8, spec) for s in range(0, len(calibration.y), 8)])
            passes["scheme"] = static_by_scheme(pre, raw, batches, opts.method, opts.scheme, opts.isa_classes,
                                                validation, spec, opts.max_drop, work, keep, quantise)
            fallback = static_fallback(pre, raw, prepared, keep, batches, opts, passes["scheme"], validation, spec,
                                       work)
            if fallback:
                passes["scheme"] = fallback.pop("scheme")  # the kept file's own checks on the target classes
                passes["int8_nodes"] = fallback.pop("int8_nodes")
                passes["accuracy_fallback"] = fallback
    else:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(pre)), keep_io_types=True, node_block_list=keep),
                  str(raw))
    model = onnx.load(str(raw))
    if "scheme" not in passes:  # onnxruntime's static int8 restored them in each scheme it tried (its report)
        passes["float_inputs_restored"] = restore_float_inputs(model, keep)
    if opts.mode is not QuantMode.FP16 and opts.recurrent_weights is RecurrentWeights.INT8:
        passes["recurrent_weight_bytes_saved"] = recurrent_weights_int8(model)
    onnx.save(model, str(raw))
    return raw, model


def _report(opts: QuantOptions, calibration: Labelled | None, validation: Labelled, spec: ModelSpec, fp32: Path,
            raw: Path, model: onnx.ModelProto, passes: dict[str, Any]) -> QuantReport:
    """The report, with the accuracy gate passed (or forced, and recorded as such)."""
    onnxruntime_static = opts.mode is QuantMode.STATIC and opts.engine is QuantEngine.ONNXRUNTIME
    q_logits = logits_of(session_for(raw, 2), validation, spec)  # the gate's, and OpenVINO's reference
    report = QuantReport(
        mode=opts.mode.value if opts.engine is QuantEngine.ONNXRUNTIME else f"{opts.mode.value} (nncf)",
        method=opts.method.value if onnxruntime_static else None,
        calibration=None if opts.mode is not QuantMode.STATIC else {"source": calibration.source,
                                                                     "samples": int(len(calibration.y))},
        graph_passes=passes, size_fp32=fp32.stat().st_size, size_quantized=raw.stat().st_size,
        op_types=dict(Counter(n.op_type for n in model.graph.node)), **precision_of_ops(model),
        gate=accuracy_gate(spec, fp32, q_logits, validation),
        latency_us=latency_ratio(fp32, raw, StreamingData(validation, spec).one_step()
                                 if spec.streaming is not None else validation.feeds(0, 1, spec)),
        max_drop_points=opts.max_drop)
    if opts.mode is not QuantMode.FP16:
        report.extra["engines"] = {"openvino": openvino_agreement(raw, validation, spec, q_logits)}
    if not report.passed:
        if not opts.force_gate:
            g = report.gate
            raise QuantizationError(
                f"{opts.mode.value} quantisation lost {g.macro_f1_drop_points:.2f} macro-F1 points (fp32 "
                f"{g.macro_f1[0]:.4f}, quantised {g.macro_f1[1]:.4f}) > `max_drop` {opts.max_drop}; nothing "
                "written (`force_gate` writes it and records the failure)")
        report.verdict = "failed (forced)"
    return report


def quantize_file(model: Path, mode: QuantMode, *, calibration: str | None = None, validation: str | None = None,
                  calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES, output: Path | None = None,
                  json_path: Path | None = None, force: bool = False, isa: str | None = None,
                  device: str | None = None, **options: Any) -> QuantResult:
    """`edgemed quantize` as a library call: verify `model` strictly, read its data (the recorded training split
    for calibration and validation groups for the gate, unless `calibration`/`validation` name other data), check
    every output up front, quantise (`options`: method, max_drop, force_gate, engine, scheme, recurrent_weights),
    and write the report as JSON to `json_path` when given."""
    from edgemed.core.atomic import check_outputs, write_bytes_atomic
    from edgemed.export.quant_data import quantization_data
    from edgemed.runtime.onnx.info import describe
    from edgemed.runtime.onnx.integrity import verify_file

    verify_file(model)  # a model failing its own checks is refused before its provenance names data to load
    meta = describe(model).metadata
    if meta.spec is None:
        raise QuantizationError(f"{model}: no edgemed spec; quantize takes models exported by edgemed")
    output = Path(output) if output else model.with_suffix(f".{mode.value}.onnx")
    data_paths = [Path(d) for d in (calibration, validation) if d and Path(d).exists()]
    check_outputs({"`output`": output, "its sidecar": sidecar_path(output), "`json`": json_path}, force,
                  [model, sidecar_path(model), *data_paths])
    cal, val = quantization_data(meta.spec, meta.provenance, calibration, validation, calibration_samples)
    result = quantize(model, output, mode, cal, val, overwrite=force, isa_classes=isa_targets(isa, device),
                      **options)
    if json_path:
        write_bytes_atomic(json_path, report_json(result.report), replace=force)
    return result


def report_json(report: QuantReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
