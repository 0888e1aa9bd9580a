"""The runtime's own cost: EdgeModel.predict and Streamer.push against the raw onnxruntime session on the same
model and input, one thread, batch 1, interleaved in one run.

Target (issue 13): at most 3 % over the raw backend for every model: the vitals GRU, the 12-lead CNN-GRU and the
streaming steps (vitals GRU chunks of 10 and 100 steps, 12-lead CNN-GRU one second of signal).
Usage: python benchmarks/runtime_overhead.py [--runs 2000] [--docs]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from edgemed.core.examples import array_feeds
from edgemed.runtime.model import EdgeModel

from common import ECG12, VITALS, export_untrained, interleaved, markdown_table, write_results

TARGET = 1.03


def _row(case: str, t: dict[str, np.ndarray], key: str) -> list[object]:
    raw, ours = np.median(t["raw"]), np.median(t[key])
    return [case, f"{raw:.1f}", f"{ours:.1f}", f"{100 * (ours / raw - 1):+.1f} %",
            "yes" if ours / raw <= TARGET else "NO"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--docs", action="store_true", help="write docs/results/runtime_overhead.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    rows = []
    for label, (name, config, length) in (("vitals GRU, 100 steps", VITALS), ("12-lead CNN-GRU, 10 s", ECG12)):
        model = EdgeModel(export_untrained(name, config, length, work / f"{name}.onnx"), threads=1)
        shape = [1] + [length if isinstance(d, str) else d for d in model.spec.signal.shape[1:]]
        x = rng.normal(size=shape).astype(np.float32)
        feeds = array_feeds(model.spec, x)
        runs = args.runs if name == "gru" else max(args.runs // 10, 100)
        t = interleaved({"raw": lambda f=feeds, m=model: m.session.run(None, f),
                         "predict": lambda m=model, x=x: m.predict(x)}, runs)
        rows.append(_row(f"{label}: predict", t, "predict"))
    for label, (name, config, length), step in (("vitals GRU stream, 10 steps", VITALS, 10),
                                                ("vitals GRU stream, 100 steps", VITALS, 100),
                                                ("12-lead CNN-GRU stream, 496 samples", ECG12, 496)):
        model = EdgeModel(export_untrained(name, config, length, work / f"{name}.{step}.stream.onnx", streaming=True),
                          threads=1)
        shape = [1] + [step if isinstance(d, str) else d for d in model.spec.signal.shape[1:]]
        chunk = rng.normal(size=shape).astype(np.float32)
        streamer = model.stream(chunk=step)
        feeds = {model.spec.signal.name: chunk, **streamer.state}
        names = list(streamer.state)

        def raw(m=model, f=feeds, n=names):
            logits, *state = m.session.run(None, f)
            f.update(zip(n, state, strict=True))  # a raw loop carries its state too

        t = interleaved({"raw": raw, "push": lambda s=streamer, c=chunk: s.push(c)},
                        args.runs if name == "gru" else max(args.runs // 4, 100))
        rows.append(_row(f"{label}: Streamer.push", t, "push"))
    table = markdown_table(["case", "raw onnxruntime p50 us", "edgemed p50 us", "overhead", "<= 3 %"], rows)
    print(table)
    if args.docs:
        write_results("runtime_overhead", "Runtime overhead over raw onnxruntime", table,
                      "Batch 1, one thread, untrained models of the measured-notes sizes; medians of interleaved "
                      "runs. edgemed checks every input (shape, dtype, NaN/Inf, magnitude against the training "
                      "range) and every output (finite logits) on each call.", per_class=True)


if __name__ == "__main__":
    main()
