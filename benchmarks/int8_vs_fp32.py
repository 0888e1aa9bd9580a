"""Is the vitals GRU's int8 model slower than its fp32 one? EdgeModel.predict on both, batch 1 and 32, one thread,
interleaved (shuffled rounds), repeated, so a difference of a few percent stands out from the machine's noise.

Target (issues 13, 23): the int8 model no slower than fp32, on every CPU class.
Usage: python benchmarks/int8_vs_fp32.py [--runs 3000] [--docs]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from edgemed.export.quant_data import Labelled
from edgemed.export.quantize import MIN_PRODUCT_WEIGHTS, QuantMode, quantize
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.ops.timing import interleaved

from common import VITALS, export_untrained, markdown_table, write_results

NOTES = ("onnxruntime has no int8 GRU kernel, so the recurrent cell (almost all of the time) is float in both "
         "files, and the GRU's input projection is computed inside the GRU op (taking it out as an int8 MatMul would "
         "leave the op a 3H x 3H identity projection to do in float, more work than it saves). The only other "
         "product is the 64 x 2 head, whose quantise and dequantise steps cost more than its int8 product saves (the "
         "last column: every product in int8, `--min-product-weights 0`). By default products under 16,384 weights "
         "stay float (docs/commands/quantize.md), so this model's int8 file computes in float, as fp32 does: its "
         "ratio is the machine's noise around 1. `edgemed tune` measures both and keeps the faster.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--docs", action="store_true", help="write docs/results/int8_vs_fp32.md (this CPU's section)")
    args = parser.parse_args()
    name, config, length = VITALS
    work = Path(tempfile.mkdtemp())
    fp32 = export_untrained(name, config, length, work / "vitals.onnx")
    ref = EdgeModel(fp32, threads=1)
    x = np.random.default_rng(0).normal(size=[256, length, config["input_size"]]).astype(np.float32)
    y = np.concatenate([ref.predict(x[i : i + 32]).logits for i in range(0, len(x), 32)]).argmax(1)

    def int8(name: str, min_weights: int) -> EdgeModel:
        path = quantize(fp32, work / name, QuantMode.STATIC, Labelled(x[:64], y[:64], None, "random"),
                        Labelled(x, y, None, "random"), max_drop=100, force_gate=True, overwrite=True,
                        min_product_weights=min_weights).path
        return EdgeModel(path, threads=1)

    a, b, c = EdgeModel(fp32, threads=1), int8("vitals.int8.onnx", MIN_PRODUCT_WEIGHTS), int8("vitals.all.onnx", 0)
    rows = []
    for batch, runs in ((1, args.runs), (32, max(args.runs // 30, 20))):
        xb = x[:batch]
        for rep in range(args.repeats):
            t = interleaved({"fp32": lambda xb=xb: a.predict(xb), "int8": lambda xb=xb: b.predict(xb),
                             "all": lambda xb=xb: c.predict(xb)}, runs)
            f, q, every = (float(np.median(t[k])) for k in ("fp32", "int8", "all"))
            rows.append([batch, rep + 1, f"{f:.1f}", f"{q:.1f}", f"{q / f:.3f}", f"{every / f:.3f}"])
    table = markdown_table(["batch", "repeat", "fp32 p50 us", "int8 static p50 us", "int8 / fp32",
                            "every product int8 / fp32"], rows)
    print(table)
    if args.docs:
        write_results("int8_vs_fp32", "Vitals GRU: int8 static against fp32", table, NOTES, per_class=True)


if __name__ == "__main__":
    main()
