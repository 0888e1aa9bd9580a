"""Comparative latency: PyTorch eager, raw onnxruntime and the edgemed runtime (fp32, int8 static, fp16).

For the vitals GRU (2x64, 100 steps, 8 features) and the 12-lead CNN-GRU (10 s at 500 Hz) of shared/notes, at
batch 1 and 32, plus one streaming step of the 12-lead model; every variant of a case interleaved in one run,
PyTorch in inference mode with the same thread count. Targets (issue 6, batch 1, one thread): edgemed at least
10x PyTorch eager for the vitals GRU; for the CNN-GRU at least 3x with fp32 and 10x with its best variant; never
more than 5 % slower than raw onnxruntime on the same model.
Usage: python benchmarks/latency.py [--runs 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgemed.core.examples import array_feeds
from edgemed.export.quant_data import Labelled
from edgemed.export.quantize import QuantMode, quantize
from edgemed.runtime.model import EdgeModel
from edgemed.train.models import create_model

from common import ECG12, HEADER, VITALS, export_untrained, interleaved, row


def variants(name: str, config: dict, length: int, work: Path) -> dict[str, Path]:
    fp32 = export_untrained(name, config, length, work / f"{name}.onnx")
    model = EdgeModel(fp32)
    rng = np.random.default_rng(0)
    shape = [48] + [length if isinstance(d, str) else d for d in model.spec.signal.shape[1:]]
    x = rng.normal(size=shape).astype(np.float32)
    y = np.arange(48) % len(model.labels)
    cal, val = Labelled(x[:32], y[:32], None, "random"), Labelled(x[32:], y[32:], None, "random")
    out = {"fp32": fp32}
    for mode in (QuantMode.STATIC, QuantMode.FP16):
        path = work / f"{name}.{mode.value}.onnx"
        quantize(fp32, path, mode, cal if mode is QuantMode.STATIC else None, val, force_gate=True, overwrite=True)
        out[mode.value] = path
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp())
    print(HEADER)
    for label, (name, config, length) in (("vitals GRU", VITALS), ("12-lead CNN-GRU", ECG12)):
        paths = variants(name, config, length, work)
        torch.manual_seed(0)
        eager = create_model(name, **config).eval()
        models = {k: EdgeModel(p, threads=args.threads) for k, p in paths.items()}
        for batch in (1, 32):
            spec = models["fp32"].spec
            shape = [batch] + [length if isinstance(d, str) else d for d in spec.signal.shape[1:]]
            x = np.random.default_rng(batch).normal(size=shape).astype(np.float32)
            feeds = array_feeds(spec, x)
            xt = torch.from_numpy(x)

            def run_eager(xt=xt, eager=eager):
                with torch.inference_mode():
                    eager(xt)

            fns = {"pytorch eager": run_eager,
                   "raw onnxruntime fp32": lambda m=models["fp32"], f=feeds: m.session.run(None, f)}
            fns.update({f"edgemed {k}": (lambda m=m, x=x: m.predict(x)) for k, m in models.items()})
            runs = args.runs if name == "gru" and batch == 1 else max(args.runs // (10 if batch == 1 else 40), 10)
            t = interleaved(fns, runs, warmup=3)
            ref = t["pytorch eager"]
            for key, times in t.items():
                print(row(f"{label} b{batch}: {key}", times, ref if key != "pytorch eager" else None))
            best = min((k for k in t if k.startswith("edgemed")), key=lambda k: np.median(t[k]))
            print(f"  -> edgemed fp32 {np.median(ref) / np.median(t['edgemed fp32']):.1f}x eager; best ({best}) "
                  f"{np.median(ref) / np.median(t[best]):.1f}x eager; edgemed fp32 / raw ORT "
                  f"{np.median(t['edgemed fp32']) / np.median(t['raw onnxruntime fp32']):.3f}")
    stream = EdgeModel(export_untrained(*ECG12, work / "s.onnx", streaming=True), threads=args.threads)
    chunk = np.random.default_rng(0).normal(size=(1, 12, 496)).astype(np.float32)
    streamer = stream.stream(chunk=496)
    t = interleaved({"raw": lambda: stream.session.run(None, {stream.spec.signal.name: chunk, **streamer.state}),
                     "push": lambda: streamer.push(chunk)}, args.runs)
    print(row("stream step 12-lead 496: raw onnxruntime", t["raw"]))
    print(row("stream step 12-lead 496: edgemed Streamer", t["push"], t["raw"]))


if __name__ == "__main__":
    main()
