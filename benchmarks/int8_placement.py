"""Where int8 pays: one Gemm of each size alone in float and in int8 QDQ, then `make mitdb`'s beat model in fp32,
in edgemed's int8 (export/quant_placement.py) and in onnxruntime's own placement (every operator its quantiser
takes; the trees' decisions kept float, as edgemed always keeps them), all interleaved, one thread.

The first table is why products under 16,384 weights stay float; the second what the placement does to a model.
Usage: python benchmarks/int8_placement.py [--runs 2000] [--model runs/mitdb/model.onnx] [--docs]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime import quantization as ortq

from edgemed.export.quantize import QuantMode, quantize
from edgemed.runtime.onnx.info import describe

from common import ROOT, interleaved, markdown_table, write_results

SIZES = ((64, 2), (64, 16), (64, 64), (128, 128), (256, 256), (512, 512), (1024, 1024))


class _Reader(ortq.CalibrationDataReader):
    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.it, None)


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _gemm(k: int, n: int, path: Path, rng: np.random.Generator) -> None:
    weight = numpy_helper.from_array((rng.normal(size=[n, k]) * 0.1).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], "gemm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", n])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def gemm_rows(work: Path, runs: int) -> list[list[object]]:
    rng = np.random.default_rng(0)
    rows = []
    for k, n in SIZES:
        fp32, int8 = work / f"g{k}x{n}.onnx", work / f"g{k}x{n}.int8.onnx"
        _gemm(k, n, fp32, rng)
        feeds = [{"x": rng.normal(size=[8, k]).astype(np.float32)} for _ in range(4)]
        ortq.quantize_static(str(fp32), str(int8), _Reader(feeds), quant_format=ortq.QuantFormat.QDQ,
                             per_channel=True)
        a, b = _session(fp32), _session(int8)
        cells: list[object] = [f"{k} x {n}", k * n]
        for batch in (1, 32):
            x = {"x": rng.normal(size=[batch, k]).astype(np.float32)}
            t = interleaved({"fp32": lambda x=x, a=a: a.run(None, x), "int8": lambda x=x, b=b: b.run(None, x)}, runs)
            f, q = float(np.median(t["fp32"])), float(np.median(t["int8"]))
            cells += [f"{f:.2f}", f"{q:.2f}", f"{q / f:.2f}"]
        rows.append(cells)
    return rows


def model_rows(model: Path, work: Path, runs: int) -> list[list[object]]:
    """The model in fp32, edgemed's int8 and onnxruntime's own placement, interleaved at batch 1 and 32."""
    from edgemed.export import quant_placement
    from edgemed.export import quantize as quantize_module
    from edgemed.export.quant_data import quantization_data

    meta = describe(model).metadata
    cal, val = quantization_data(meta.spec, meta.provenance, None, None)
    ours = quantize(model, work / "edgemed.onnx", QuantMode.STATIC, cal, val, force_gate=True, overwrite=True)
    every = quantize_module.int8_nodes
    quantize_module.int8_nodes = lambda m, keep, w=0: [n.name for n in m.graph.node if n.name not in keep]
    quantize_module.small_products = lambda m, w=0: []
    try:  # every node but the decisions: onnxruntime's quantiser takes those of its operator types
        theirs = quantize(model, work / "ort.onnx", QuantMode.STATIC, cal, val, force_gate=True, overwrite=True)
    finally:
        quantize_module.int8_nodes, quantize_module.small_products = every, quant_placement.small_products
    sessions = {"fp32": _session(model), "edgemed": _session(ours.path), "onnxruntime": _session(theirs.path)}
    rows = []
    for batch, n in ((1, runs), (32, max(runs // 10, 20))):
        feeds = val.feeds(0, batch, meta.spec)
        t = interleaved({k: (lambda s=s, f=feeds: s.run(None, f)) for k, s in sessions.items()}, n)
        med = {k: float(np.median(v)) for k, v in t.items()}
        rows.append([batch, f"{med['fp32']:.1f}", f"{med['onnxruntime']:.1f}", f"{med['edgemed']:.1f}",
                     f"{med['onnxruntime'] / med['fp32']:.3f}", f"{med['edgemed'] / med['fp32']:.3f}"])
    for name, result in (("onnxruntime", theirs), ("edgemed", ours)):
        g = result.report.gate
        rows.append([f"gate: {name}", "", "", "", f"top-1 {g.top1_agreement:.2%}",
                     f"max abs logit {g.max_abs_logit_diff:.2f}, macro-F1 {g.macro_f1[1]:.4f} "
                     f"(fp32 {g.macro_f1[0]:.4f})"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "mitdb" / "model.onnx")
    parser.add_argument("--docs", action="store_true", help="write docs/results/int8_placement.md (this CPU's)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    gemms = markdown_table(["Gemm (k x n)", "weights", "fp32 us, batch 1", "int8 us", "int8 / fp32",
                            "fp32 us, batch 32", "int8 us", "int8 / fp32"], gemm_rows(work, args.runs))
    print(gemms, flush=True)
    body = gemms
    if args.model.exists():
        model = markdown_table(["batch", "fp32 p50 us", "onnxruntime's placement", "edgemed's placement",
                                "onnxruntime's / fp32", "edgemed's / fp32"], model_rows(args.model, work, args.runs))
        print(model)
        body += f"\n\n`{args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}`:\n\n{model}"
    if args.docs:
        write_results("int8_placement", "Where int8 pays", body,
                      "One thread, interleaved rounds, medians. Gemm rows: one Gemm alone, int8 QDQ (u8 activations, "
                      "s8 per-channel weights) against float. Model rows: the same calibration and validation data "
                      "for both placements (the model's recorded split); the gate rows compare each with fp32 on "
                      "the validation records.", per_class=True)


if __name__ == "__main__":
    main()
