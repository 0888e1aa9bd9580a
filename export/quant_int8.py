"""Static int8: onnxruntime's QDQ quantiser with a calibration reader over any iterable of input dicts, the
scheme that holds on every target instruction-set class, and NNCF's accuracy-controlled alternative."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime import quantization as ortq

from edgemed.core.calibration import softmax
from edgemed.core.errors import QuantizationError
from edgemed.core.metrics import classification_report
from edgemed.core.spec import ModelSpec
from edgemed.export.graph_passes import float_graph_outputs, restore_float_inputs
from edgemed.export.quant_checks import logits_of, session_for
from edgemed.export.quant_data import Labelled
from edgemed.export.quant_options import ISA_ATOL, ISA_SAMPLES, ORT_METHODS, SCHEMES, CalibrationMethod, QuantScheme
from edgemed.runtime.engines.onnxruntime import TimedSession
from edgemed.runtime.engines.providers import session_options


class _Reader(ortq.CalibrationDataReader):
    """onnxruntime's calibration interface over any iterable of input dicts."""

    def __init__(self, batches: Iterable[dict[str, np.ndarray]]) -> None:
        self._it = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _static(pre: Path, out: Path, batches: list[dict[str, np.ndarray]], method: CalibrationMethod,
            scheme: QuantScheme, keep: list[str], quantise: list[str]) -> int:
    """Static QDQ int8 of the `quantise` nodes (not none: onnxruntime reads an empty list as every node) of `pre`
    into `out`, outputs in float, the `keep` nodes in float and fed unrounded values; returns how many of their
    inputs were restored."""
    # The histogram calibrators print progress, and the quantiser logs (at WARNING) that a 1-D batch-norm weight
    # has no per-channel axis 1 (it then quantises it per tensor, which is right).
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ortq.quantize_static(str(pre), str(out), _Reader(batches), quant_format=ortq.QuantFormat.QDQ,
                                 per_channel=True, calibrate_method=ORT_METHODS[method], nodes_to_quantize=quantise,
                                 nodes_to_exclude=keep, **SCHEMES[scheme])
    finally:
        root.setLevel(level)
    model = onnx.load(str(out))
    freed, restored = float_graph_outputs(model), restore_float_inputs(model, keep)
    if freed or restored:
        onnx.save(model, str(out))
    return restored


def static_by_scheme(pre: Path, out: Path, batches: list[dict[str, np.ndarray]], method: CalibrationMethod,
                      scheme: QuantScheme, isa_classes: tuple[str, ...], validation: Labelled, spec: ModelSpec,
                      max_drop: float, work: Path, keep: list[str], quantise: list[str]) -> dict[str, Any]:
    """Static int8 of the `quantise` nodes with `scheme`, or (auto) the first scheme whose results hold on every
    target instruction-set class this machine can run (`edgemed.export.isa`): the host's gate, then each other
    class's logits within `ISA_ATOL` of the host's and its labels unchanged. What was tried, and each class's
    deviation, is returned."""
    from edgemed.devices.profile import host_isa
    from edgemed.export.isa import logits_on, reachable

    host = host_isa()
    targets = tuple(dict.fromkeys(isa_classes or (host,)))
    why_not = reachable([c for c in targets if c != host])
    order = [scheme] if scheme is not QuantScheme.AUTO else [QuantScheme.U8S8, QuantScheme.U8S8_REDUCED,
                                                             QuantScheme.U8U8]
    subset = validation.take(slice(0, ISA_SAMPLES))
    feeds = subset.feeds(0, len(subset.y), spec) if spec.streaming is None else None
    fp32_logits = logits_of(session_for(pre, 2), subset, spec)
    tried: list[dict[str, Any]] = []
    for candidate in order:
        entry: dict[str, Any] = {"scheme": candidate.value, "classes": {}}
        tried.append(entry)
        if (scheme is QuantScheme.AUTO and candidate is QuantScheme.U8S8 and "x86-avx2" in targets
                and why_not.get("x86-avx2")):
            entry["result"] = "skipped: saturates on x86 without VNNI, which cannot be checked here"
            continue
        path = work / f"static-{candidate.value}.onnx"
        entry["float_inputs_restored"] = _static(pre, path, batches, method, candidate, keep, quantise)
        host_logits = logits_of(session_for(path, 2), subset, spec)
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


def nncf_quantize(pre: Path, out: Path, spec: ModelSpec, calibration: Labelled, validation: Labelled,
                   max_drop: float, keep: list[str]) -> dict[str, Any]:
    """NNCF's accuracy-controlled int8 on the prepared ONNX graph: macro-F1 on the validation data (scored with
    onnxruntime) may drop by at most `max_drop` points, layers reverted to float until it does; the `keep` nodes
    stay float."""
    try:
        import nncf
    except ImportError as exc:
        raise QuantizationError("`engine` nncf needs NNCF: pip install 'edgemed[openvino]'") from exc
    import logging

    logging.getLogger("nncf").setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    model = onnx.load(str(pre))
    batches = [calibration.feeds(s, s + 8, spec) for s in range(0, len(calibration.y), 8)]
    cal = nncf.Dataset(batches)
    items = [(validation.feeds(s, s + 64, spec), validation.y[s : s + 64]) for s in range(0, len(validation.y), 64)]

    def macro_f1(candidate: onnx.ModelProto, data: Iterable[tuple[dict[str, np.ndarray], np.ndarray]]) -> float:
        sess = TimedSession(ort.InferenceSession(candidate.SerializeToString(), session_options(2, spinning=False),
                                                 providers=["CPUExecutionProvider"]))
        batches = list(data)
        logits = np.concatenate([sess.run(None, f)[0] for f, _ in batches])
        truth = np.concatenate([y for _, y in batches])
        return float(classification_report(truth, softmax(logits.astype(np.float64)), spec.labels)["macro_f1"])

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        quantized = nncf.quantize_with_accuracy_control(
            model, cal, nncf.Dataset(items, lambda item: item[0]), validation_fn=macro_f1,
            max_drop=max_drop / 100, drop_type=nncf.DropType.ABSOLUTE, subset_size=min(300, len(batches)),
            ignored_scope=nncf.IgnoredScope(names=keep, validate=False))
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
