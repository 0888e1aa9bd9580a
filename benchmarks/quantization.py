"""Quantisation benchmark: fp32 against int8 static, int8 dynamic and fp16, in one run.

Targets (issue 5), batch 1 on one thread: the 12-lead CNN-GRU (10 s at 500 Hz) int8 static at least 3x faster
than fp32 onnxruntime and at most 0.3x its size; macro-F1 loss at most 0.5 points on real MIT-BIH beats.
Latency and size use the seeded, untrained 12-lead model of shared/notes (weights do not change either),
calibrated on synthetic 12-lead ECG. Accuracy uses the MIT-BIH model trained by
  edgemed train --model cnn_gru --data ../shared/data/mitdb --sampling-rate 180 -c causal=true \
      --epochs 12 --batch-size 128 --patience 4 --out runs/mitdb-cnn-gru
  edgemed export runs/mitdb-cnn-gru/model.pt
Usage: python benchmarks/quantization.py [--runs 100] [--mitdb runs/mitdb-cnn-gru/model.onnx]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from edgemed.export.quant_data import Labelled, quantization_data
from edgemed.export.quantize import QuantMode, quantize
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.onnx.info import describe
from edgemed.train.data import load_data

from common import ECG12, HEADER, export_untrained, interleaved, row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--mitdb", type=Path, default=Path("runs/mitdb-cnn-gru/model.onnx"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    fp32 = export_untrained(*ECG12, work / "ecg12.onnx")
    ecg = load_data("synthetic-ecg", samples=160, leads=12, sampling_rate_hz=500.0, seed=3)
    cal = Labelled(ecg.X[:128], ecg.y[:128], None, "synthetic 12-lead ECG")
    val = Labelled(ecg.X[128:], ecg.y[128:], None, "synthetic 12-lead ECG")
    paths = {"fp32": fp32}
    sizes = {"fp32": fp32.stat().st_size}
    for mode in QuantMode:
        out = work / f"ecg12.{mode.value}.onnx"
        quantize(fp32, out, mode, cal if mode is QuantMode.STATIC else None, val, force_gate=True, overwrite=True)
        paths[mode.value], sizes[mode.value] = out, out.stat().st_size
    models = {k: EdgeModel(p, threads=1) for k, p in paths.items()}
    x = ecg.X[128:129]
    times = interleaved({k: (lambda m=m: m.predict(x)) for k, m in models.items()}, args.runs, warmup=5)
    print("12-lead CNN-GRU, 10 s at 500 Hz, batch 1, 1 thread (edgemed runtime)")
    print(HEADER + "  size ratio")
    for k, t in times.items():
        print(row(k, t, times["fp32"] if k != "fp32" else None) + f"  {sizes[k] / sizes['fp32']:10.3f}")
    speed = np.median(times["fp32"]) / np.median(times["static"])
    print(f"int8 static: {speed:.2f}x faster than fp32 (target >= 3x), size {sizes['static'] / sizes['fp32']:.3f}x "
          f"(target <= 0.3x)")
    if not args.mitdb.exists():
        print(f"\n{args.mitdb} not found: train and export it (commands in this file's docstring) for accuracy")
        return
    meta = describe(args.mitdb).metadata
    cal, val = quantization_data(meta.spec, meta.provenance, None, None)
    print(f"\nMIT-BIH beats ({args.mitdb}): calibration {len(cal.y)} training beats, gate on {len(val.y)} "
          "held-out beats")
    print(f"{'mode':<10}{'macro-F1 fp32':>14}{'quantised':>11}{'drop (pts)':>12}{'top-1 agree':>13}{'size':>7}")
    for mode in QuantMode:
        r = quantize(args.mitdb, work / f"mitdb.{mode.value}.onnx", mode, cal, val, force_gate=True).report.to_dict()
        print(f"{mode.value:<10}{r['macro_f1']['fp32']:>14.4f}{r['macro_f1']['quantized']:>11.4f}"
              f"{r['macro_f1_drop_points']:>12.2f}{r['top1_agreement']:>13.2%}{r['size_ratio']:>7.2f}")


if __name__ == "__main__":
    main()
