"""Write the demo's report (Markdown): training curves, confusion matrix, parity, quantisation, latency.

Usage: python scripts/demo_report.py RUN_DIR   (the folder `make demo` fills: train/, model.onnx,
model.int8.onnx, profile.json, latency.png). Reads only what earlier steps wrote; writes RUN_DIR/report.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgemed.core.atomic import write_bytes_atomic
from edgemed.runtime.onnx.info import describe


def fmt(v: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if v is None else pattern.format(v)


def main() -> None:
    run = Path(sys.argv[1])
    metrics = json.loads((run / "train" / "metrics.json").read_text())
    fp32 = describe(run / "model.onnx").to_dict()
    int8 = describe(run / "model.int8.onnx").to_dict()
    prof = json.loads((run / "profile.json").read_text())
    val = metrics["validation"]
    labels = val["labels"]
    arch, source = fp32["edgemed"]["spec"]["architecture"], fp32["edgemed"]["provenance"]["data_source"]
    out = ["# edgemed demo report", "",
           f"Model `{arch}` trained on {source}; "
           f"validation macro-F1 {val['macro_f1']:.4f}, accuracy {val['accuracy']:.4f} (best epoch "
           f"{metrics['best_epoch']}, {metrics['seconds_per_epoch']:.1f} s per epoch).", "",
           "## Training", "", "![training curves](train/training.png)", "",
           "## Confusion matrix (validation; rows true, columns predicted)", "",
           "| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, row in zip(labels, val["confusion_matrix"], strict=True):
        out.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    out += ["", "| class | sensitivity | specificity | PPV | F1 | AUROC |", "|---|---|---|---|---|---|"]
    for name, c in val["per_class"].items():
        out.append(f"| {name} | {fmt(c['sensitivity'])} | {fmt(c['specificity'])} | {fmt(c['ppv'])} | "
                   f"{fmt(c['f1'])} | {fmt(c['auroc'])} |")
    parity = fp32["edgemed"]["parity"]
    exporter = fp32["edgemed"]["exporter"]
    out += ["", "## Export parity (PyTorch vs onnxruntime)", "",
            f"Exporter {exporter['name']} (opset {exporter['opset']}): {exporter['reason']}. "
            f"Tolerance atol {parity['atol']}, rtol {parity['rtol']}: {'PASS' if parity['passed'] else 'FAIL'}.", "",
            "| case | source | shape | output | max abs | max rel |", "|---|---|---|---|---|---|"]
    for r in parity["rows"]:
        out.append(f"| {r['case']} | {r['source']} | {r['shape']} | {r['output']} | {r['max_abs']:.2e} | "
                   f"{r['max_rel']:.2e} |")
    q = int8["edgemed"]["quantization"]
    lat = q["latency_batch1_1thread"]
    out += ["", "## Quantisation (fp32 vs int8 static)", "",
            "| | fp32 | int8 |", "|---|---|---|",
            f"| size (bytes) | {q['size_bytes']['fp32']:,} | {q['size_bytes']['quantized']:,} |",
            f"| latency, batch 1, 1 thread (ms) | {lat['fp32_us'] / 1000:.3f} | {lat['quantized_us'] / 1000:.3f} |",
            f"| macro-F1 on {q['validation']['samples']} validation samples | {q['macro_f1']['fp32']:.4f} | "
            f"{q['macro_f1']['quantized']:.4f} |", "",
            f"Top-1 agreement {q['top1_agreement']:.2%}; gate ({q['max_drop_points']} points): {q['gate']}. "
            f"int8 compute: {', '.join(q['int8_compute_ops'])}; int8 weights only: "
            f"{', '.join(q['int8_weight_only_ops']) or 'none'}.", "",
            "| class | sensitivity fp32 | int8 | specificity fp32 | int8 |", "|---|---|---|---|---|"]
    for name, c in q["per_class"].items():
        out.append(f"| {name} | {fmt(c['sensitivity']['fp32'])} | {fmt(c['sensitivity']['quantized'])} | "
                   f"{fmt(c['specificity']['fp32'])} | {fmt(c['specificity']['quantized'])} |")
    dev = prof["device"]
    out += ["", f"## Latency on `{dev['name']}` (budget {dev['latency_budget_ms']} ms)", ""]
    if prof["emulation"]:
        out += [f"Note: {prof['emulation']}.", ""]
    cs = prof["cold_start"]
    if cs and "error" not in cs:
        out += [f"Cold start {cs['total_ms']:.0f} ms: import {cs['import_ms']:.0f}, session {cs['session_ms']:.0f}, "
                f"first inference {cs['first_inference_ms']:.0f} ms.", ""]
    out += ["| variant | mean | p50 | p90 | p99 | p99.9 | max | per second | over budget | p50 vs fp32 |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, v in prof["variants"].items():
        s = v["latency_us"]
        out.append(f"| {name} | {s['mean'] / 1000:.2f} ms | {s['p50'] / 1000:.2f} | {s['p90'] / 1000:.2f} | "
                   f"{s['p99'] / 1000:.2f} | {s['p99_9'] / 1000:.2f} | {s['max'] / 1000:.2f} | "
                   f"{v['throughput_per_s']:.0f} | {v['budget_miss_share']:.1%} | {v['p50_ratio_vs_first']:.2f} |")
    out += ["", f"Peak RSS {prof['peak_rss_mb']:.0f} MB (budget {prof['memory_budget_mb']} MB).", "",
            "![latency histogram and CDF](latency.png)", ""]
    write_bytes_atomic(run / "report.md", "\n".join(out), replace=True)
    print(f"wrote {run / 'report.md'}")


if __name__ == "__main__":
    main()
