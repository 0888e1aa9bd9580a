"""Runtime overhead: edgemed's predict and streaming step against raw onnxruntime, one thread, batch 1.

Targets (issue 4): predict adds at most 5 % over `InferenceSession.run` on the same model and input; one
streaming step of a one-second chunk of 12-lead 500 Hz ECG has p99 at most 1 ms. Everything is measured
interleaved in one run. Usage: python benchmarks/runtime_overhead.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from edgemed.core.examples import array_feeds
from edgemed.runtime.model import EdgeModel

from common import ECG12, HEADER, VITALS, export_untrained, interleaved, row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    print(HEADER)
    for label, (name, config, length) in (("vitals GRU, 100 steps", VITALS), ("12-lead CNN-GRU, 10 s", ECG12)):
        model = EdgeModel(export_untrained(name, config, length, work / f"{name}.onnx"), threads=1)
        shape = [1] + [length if isinstance(d, str) else d for d in model.spec.signal.shape[1:]]
        x = rng.normal(size=shape).astype(np.float32)
        feeds = array_feeds(model.spec, x)
        runs = args.runs if name == "gru" else max(args.runs // 10, 100)
        t = interleaved({"raw": lambda f=feeds, m=model: m.session.run(None, f),
                         "predict": lambda m=model, x=x: m.predict(x),
                         "probs": lambda m=model, x=x: m.predict(x).probabilities}, runs)
        print(row(f"{label}: raw InferenceSession.run", t["raw"]))
        print(row(f"{label}: EdgeModel.predict", t["predict"], t["raw"]))
        print(row(f"{label}: predict + probabilities", t["probs"], t["raw"]))
    stream_model = EdgeModel(export_untrained(*ECG12, work / "ecg.stream.onnx", streaming=True), threads=1)
    step = 500 // 16 * 16  # the largest allowed chunk within one second at 500 Hz
    chunk = rng.normal(size=(1, 12, step)).astype(np.float32)
    streamer = stream_model.stream(chunk=step)
    feeds = {stream_model.spec.signal.name: chunk, **streamer.state}
    t = interleaved({"raw": lambda: stream_model.session.run(None, feeds), "push": lambda: streamer.push(chunk)},
                    args.runs)
    print(row(f"stream step, 12-lead {step} samples: raw run", t["raw"]))
    print(row(f"stream step, 12-lead {step} samples: Streamer.push", t["push"], t["raw"]))
    print(f"streaming p99 {np.percentile(t['push'], 99) / 1000:.3f} ms (target <= 1 ms)")


if __name__ == "__main__":
    main()
