"""Is the vitals GRU's int8 model slower than its fp32 one? EdgeModel.predict on both, batch 1, one thread,
interleaved (shuffled rounds), repeated, so a difference of a few percent stands out from the machine's noise.

Target (issue 13): the int8 model no slower than fp32. Usage: python benchmarks/int8_vs_fp32.py [--runs 3000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from edgemed.export.quant_data import Labelled
from edgemed.export.quantize import QuantMode, quantize
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.ops.timing import interleaved

from common import VITALS, export_untrained, markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    name, config, length = VITALS
    work = Path(tempfile.mkdtemp())
    fp32 = export_untrained(name, config, length, work / "vitals.onnx")
    ref = EdgeModel(fp32, threads=1)
    x = np.random.default_rng(0).normal(size=[256, length, config["input_size"]]).astype(np.float32)
    y = np.concatenate([ref.predict(x[i : i + 32]).logits for i in range(0, len(x), 32)]).argmax(1)
    int8 = quantize(fp32, work / "vitals.int8.onnx", QuantMode.STATIC, Labelled(x[:64], y[:64], None, "random"),
                    Labelled(x, y, None, "random"), max_drop=100, force_gate=True, overwrite=True).path
    a, b, one = EdgeModel(fp32, threads=1), EdgeModel(int8, threads=1), x[:1]
    rows = []
    for rep in range(args.repeats):
        t = interleaved({"fp32": lambda: a.predict(one), "int8": lambda: b.predict(one)}, args.runs)
        f, q = float(np.median(t["fp32"])), float(np.median(t["int8"]))
        rows.append([rep + 1, f"{f:.1f}", f"{q:.1f}", f"{q / f:.3f}"])
    print(markdown_table(["repeat", "fp32 p50 us", "int8 p50 us", "int8 / fp32"], rows))


if __name__ == "__main__":
    main()
