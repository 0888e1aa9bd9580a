"""Every registered family through every stage, with numbers: parity max abs error of the export, streaming
parity, the int8 static gate, and runtime latency at batch 1 on one thread (p50 of interleaved runs).

Each family trains briefly on its own synthetic data, as the family test does (these are small models; the
numbers show the pipeline works and what it costs, not clinical accuracy).
Usage: python benchmarks/families.py [--epochs 3] [--runs 300] [--docs]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from edgemed.core.errors import ExportError
from edgemed.core.examples import example_inputs, example_sizes
from edgemed.export.pipeline import export_target, target_from_checkpoint
from edgemed.export.quant_data import quantization_data
from edgemed.export.quantize import QuantMode, quantize
from edgemed.runtime.model import EdgeModel
from edgemed.train.checkpoint import load_checkpoint
from edgemed.train.models import list_models
from edgemed.train.run import run_training
from edgemed.train.trainer import TrainConfig

from common import interleaved, markdown_table, write_results

RUNS = {  # (data, data options, model config): small models of each family on its synthetic data
    "gru": ("synthetic-vitals", {"samples": 400}, {}),
    "lstm": ("synthetic-vitals", {"samples": 400}, {}),
    "rnn": ("synthetic-vitals", {"samples": 400}, {}),
    "cnn_gru": ("synthetic-ecg", {"samples": 800, "leads": 2, "sampling_rate_hz": 125.0}, {"causal": True}),
    "cnn_lstm": ("synthetic-ecg", {"samples": 800, "leads": 2, "sampling_rate_hz": 125.0}, {"causal": True}),
    "cnn_gru_frames": ("synthetic-frames", {"samples": 600}, {}),
    "cnn2d": ("synthetic-fundus", {"samples": 800, "image_size": 64}, {}),
    "beat_cnn": ("synthetic-beats", {"samples": 60}, {}),
    "beat_ensemble": ("synthetic-beats", {"samples": 60},
                      {"trees": {"rounds": 20, "leaves": 8, "min_samples_leaf": 5}}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--docs", action="store_true", help="Also write docs/results/families.md.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    rows = []
    for name in list_models():
        data, options, config = RUNS[name]
        run = work / name
        run_training(name, data, run, train_cfg=TrainConfig(epochs=args.epochs, patience=args.epochs, progress=False),
                     model_overrides=config, data_options=options)
        ckpt = run / "model.pt"
        exported = export_target(target_from_checkpoint(ckpt), work / f"{name}.onnx")
        try:
            load_checkpoint(ckpt)[0].streaming_module()
            stream = export_target(target_from_checkpoint(ckpt, streaming=True), work / f"{name}.stream.onnx")
            stream_rows = [r for r in stream.parity.rows if r.case.startswith("stream")]
            streaming = f"{max(r.max_abs for r in stream_rows):.1e} ({len(stream_rows)} chunked runs)"
        except ExportError:
            streaming = "does not stream"
        runtime = EdgeModel(exported.path, threads=1)
        cal, val = quantization_data(runtime.spec, runtime.metadata.provenance, None, None)
        q = quantize(exported.path, work / f"{name}.int8.onnx", QuantMode.STATIC, cal, val, force_gate=True).report
        int8 = EdgeModel(work / f"{name}.int8.onnx", threads=1)
        feeds = example_inputs(runtime.spec, example_sizes(runtime.spec, 1), seed=1, mixed_lengths=False)
        x = feeds[runtime.spec.signal.name]
        context = {t.name: feeds[t.name] for t in runtime.spec.inputs if t.role == "context"}
        t = interleaved({"fp32": lambda m=runtime, x=x, c=context: m.predict(x, **c),
                         "int8": lambda m=int8, x=x, c=context: m.predict(x, **c)}, args.runs)
        shape = "x".join(str(s) for s in x.shape)
        rows.append([name, f"{exported.parity.to_dict()['max_abs']:.1e}", streaming,
                     f"{q.verdict}: macro-F1 {q.gate.macro_f1[0]:.3f} -> {q.gate.macro_f1[1]:.3f} "
                     f"({q.gate.macro_f1_drop_points:+.2f} pts drop), agreement {q.gate.top1_agreement:.1%}",
                     f"{np.median(t['fp32']):.0f} / {np.median(t['int8']):.0f} ({shape})"])
        print(" | ".join(str(c) for c in rows[-1]), flush=True)
    table = markdown_table(["family", "parity max abs (fp32)", "streaming parity max abs",
                            "int8 static gate (validation split)", "runtime p50 µs fp32 / int8 (batch 1, 1 thread)"],
                           rows)
    print(table)
    if args.docs:
        write_results("families", "Every family through every stage", table,
                      "Parity: the exported model against PyTorch at six or more shapes, atol 1e-5 / rtol 1e-4. "
                      "Streaming: chunk-by-chunk ONNX against whole-sequence PyTorch on every prefix. The int8 gate "
                      f"compares the quantised and fp32 models on the validation groups after {args.epochs} epochs "
                      "of training on synthetic data (max allowed drop 0.5 points; forced here to report every "
                      "family).")


if __name__ == "__main__":
    main()
