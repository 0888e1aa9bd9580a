"""The typed report of `edgemed quantize`: what was done, what it cost in accuracy, and the gate's verdict.
`to_dict` is the JSON written by `--json` and stored as `edgemed.quantization` in the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Gate:
    """The quantised model against the fp32 one on labelled validation data (never the calibration data)."""

    source: str
    samples: int
    max_abs_logit_diff: float
    max_rel_logit_diff: float
    top1_agreement: float
    macro_f1: tuple[float | None, float | None]  # (fp32, quantised)
    accuracy: tuple[float | None, float | None]
    per_class: dict[str, dict[str, tuple[float | None, float | None]]]  # class -> metric -> (fp32, quantised)

    @property
    def macro_f1_drop_points(self) -> float:
        return 100.0 * ((self.macro_f1[0] or 0.0) - (self.macro_f1[1] or 0.0))


@dataclass
class QuantReport:
    mode: str
    method: str | None
    calibration: dict[str, Any] | None
    graph_passes: dict[str, Any]
    size_fp32: int
    size_quantized: int
    op_types: dict[str, int]
    int8_compute_ops: list[str]
    int8_weight_only_ops: list[str]
    float_compute_ops: list[str]
    gate: Gate
    latency_us: dict[str, float]  # fp32_us, quantized_us, speedup (batch 1, one thread)
    max_drop_points: float
    verdict: str = "passed"  # "passed", "failed" or "failed (forced)"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size_ratio(self) -> float:
        return self.size_quantized / self.size_fp32

    @property
    def passed(self) -> bool:
        return self.gate.macro_f1_drop_points <= self.max_drop_points

    def to_dict(self) -> dict[str, Any]:
        g = self.gate
        pair = ("fp32", "quantized")
        return {
            "mode": self.mode, "method": self.method, "calibration": self.calibration,
            "graph_passes": self.graph_passes,
            "size_bytes": {"fp32": self.size_fp32, "quantized": self.size_quantized}, "size_ratio": self.size_ratio,
            "op_types": self.op_types, "int8_compute_ops": self.int8_compute_ops,
            "int8_weight_only_ops": self.int8_weight_only_ops, "float_compute_ops": self.float_compute_ops,
            "validation": {"source": g.source, "samples": g.samples}, "max_abs_logit_diff": g.max_abs_logit_diff,
            "max_rel_logit_diff": g.max_rel_logit_diff, "top1_agreement": g.top1_agreement,
            "macro_f1": dict(zip(pair, g.macro_f1, strict=True)), "macro_f1_drop_points": g.macro_f1_drop_points,
            "accuracy": dict(zip(pair, g.accuracy, strict=True)),
            "per_class": {c: {m: dict(zip(pair, v, strict=True)) for m, v in ms.items()}
                          for c, ms in g.per_class.items()},
            "latency_batch1_1thread": self.latency_us, "max_drop_points": self.max_drop_points, "gate": self.verdict,
            **self.extra,
        }


def _engine_lines(report: QuantReport) -> list[str]:
    """A line when OpenVINO gives other results than onnxruntime on the file (`quant_engines`)."""
    ov = report.extra.get("engines", {}).get("openvino", {})
    if ov.get("agrees") is not False:
        return []
    what = (ov["why"] if "why" in ov else f"other results than onnxruntime: max abs logit difference "
            f"{ov['max_abs_vs_onnxruntime']:.3g}, {ov['labels_changed']} labels changed")
    return [f"OpenVINO: {what}; the openvino backend refuses this file (run it on onnxruntime)"]


def _fallback_lines(report: QuantReport) -> list[str]:
    """A line when products were left float for the gate (`quant_fallback`)."""
    fb = report.graph_passes.get("accuracy_fallback")
    if not fb:
        return []
    left = fb["left_float"]
    return [f"accuracy fallback: all-int8 lost {fb['drop_points_before']:.2f} macro-F1 points; left {len(left)} of "
            f"{fb['products_int8_before']} int8 products float ({', '.join(left)}): {fb['drop_points_after']:.2f}"]


def format_report(report: QuantReport) -> str:
    lat, g = report.latency_us, report.gate
    lines = [
        f"mode {report.mode}" + (f" ({report.method or 'its own'} calibration on {report.calibration['samples']} "
                                 "samples)" if report.calibration else ""),
        f"size {report.size_fp32:,} -> {report.size_quantized:,} bytes ({report.size_ratio:.2f}x); int8 compute: "
        f"{', '.join(report.int8_compute_ops) or 'none'}; int8 weights only: "
        f"{', '.join(report.int8_weight_only_ops) or 'none'}; float: {', '.join(report.float_compute_ops) or 'none'}",
        *(["nothing computes in int8: no operator here does enough work to pay for its quantise and dequantise "
           f"steps ({report.graph_passes['products_kept_float']} matrix products kept float; "
           "`min_product_weights` 0 quantises them anyway)"]
          if not report.int8_compute_ops and report.graph_passes.get("products_kept_float")
          and "accuracy_fallback" not in report.graph_passes else []),  # else the fallback's line says why
        f"latency batch 1, 1 thread: fp32 {lat['fp32_us'] / 1000:.3f} ms, quantised "
        f"{lat['quantized_us'] / 1000:.3f} ms ({lat['speedup']:.2f}x)"
        + ("; NOT faster on this machine (too little of the model runs in int8 to pay for its quantise and "
           "dequantise steps): `edgemed tune` keeps fp32 unless int8 is at least 5 % faster"
           if lat["speedup"] < 1.0 else ""),
        *_engine_lines(report),
        *_fallback_lines(report),
        f"validation {g.samples} samples: top-1 agreement {g.top1_agreement:.2%}, max abs logit diff "
        f"{g.max_abs_logit_diff:.3g}",
        f"macro-F1 fp32 {g.macro_f1[0]:.4f} -> {g.macro_f1[1]:.4f} (drop {g.macro_f1_drop_points:.2f} points, "
        f"allowed {report.max_drop_points}): {report.verdict.upper()}",
        f"{'class':<14}{'sens fp32':>10}{'sens q':>9}{'spec fp32':>11}{'spec q':>9}",
    ]

    def f(v: float | None) -> str:
        return "    -" if v is None else f"{v:.3f}"

    for name, c in g.per_class.items():
        lines.append(f"{name:<14}{f(c['sensitivity'][0]):>10}{f(c['sensitivity'][1]):>9}"
                     f"{f(c['specificity'][0]):>11}{f(c['specificity'][1]):>9}")
    return "\n".join(lines)
