"""edgemed against its peers, in one interleaved run per case: PyTorch eager, raw onnxruntime, raw OpenVINO (fp32,
bf16, NNCF int8) and edgemed's best variant per backend (EdgeModel with every check on), for the vitals GRU, the
12-lead CNN-GRU and the streaming steps, at batch 1 and 32, one thread; then cold start and resident memory of each
engine in fresh processes.

edgemed's variants are the ones `edgemed tune` would consider, kept only when they pass the gates here: float
variants within 1e-4 + 1e-3 x |logit| of the fp32 model, int8 ones with at least 98 % top-1 agreement on 256
random inputs (the models are untrained: latency does not depend on the weights, accuracy gates need trained
models and run in `edgemed tune`). Needs the export and openvino extras.
Usage: python benchmarks/peers.py [--runs 300] [--quick] [--docs]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgemed.core.examples import array_feeds

from common import ECG12, VITALS, export_untrained, interleaved, markdown_table, write_results

NOTES = ("The vitals GRU's `int8 static` file computes in float: its only matrix product is the 64 x 2 head, and "
         "products under 16,384 weights stay float, where int8 costs more than it saves (docs/commands/quantize.md). "
         "Its rows and the `edgemed onnxruntime fp32` rows time the same computation. On the AMD EPYC the int8 row "
         "came out 2.5-5.5 % slower at batch 1 in each of four runs, where alone `benchmarks/int8_vs_fp32.py` puts "
         "the two files at 0.999-1.001; on the Intel Xeon @ 2.80GHz the two rows are equal. The raw and edgemed fp32 "
         "rows share one onnxruntime session and every other row has its own, which favours the shared one a little "
         "(an ad-hoc interleave of the same fp32 file on its own session: +0.3 to +0.8 %); the rest of the AMD gap is "
         "not explained. The `vs raw onnxruntime` column of this page is not edgemed's overhead: "
         "`benchmarks/runtime_overhead.py` measures that with two engines, not nine, interleaved.")

COLD = """
import json, sys, time
t0 = time.perf_counter()
engine, path, shape = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
import numpy as np
x = np.zeros(shape, np.float32)
if engine == "edgemed":
    from edgemed.runtime.model import EdgeModel
    m = EdgeModel(path, threads=1)
    run = lambda: m.predict(x)
elif engine == "onnxruntime":
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = 1
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    feeds = {i.name: (x if i.name == "x" else np.full(shape[0], shape[1], np.int64)) for i in s.get_inputs()}
    run = lambda: s.run(None, feeds)
else:
    import openvino as ov
    c = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": 1})
    r = c.create_infer_request()
    feeds = {i.get_any_name(): (x if i.get_any_name() == "x" else np.full(shape[0], shape[1], np.int64))
             for i in c.inputs}
    run = lambda: r.infer(feeds)
run()
ms = (time.perf_counter() - t0) * 1000
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) / 1024
print(json.dumps({"ms": ms, "rss_mb": rss}))
"""


def _ov_compiled(path: Path, precision: str):
    import openvino as ov

    hint = {"fp32": "f32", "bf16": "bf16"}[precision]
    return ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1,
                                                        "INFERENCE_PRECISION_HINT": hint})


def _nncf_int8(path: Path, feeds: list[dict[str, np.ndarray]], out: Path) -> Path:
    import nncf
    import onnx

    quantized = nncf.quantize(onnx.load(str(path)), nncf.Dataset(feeds), subset_size=len(feeds))
    onnx.save(quantized, str(out))
    return out


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def batch_case(label: str, name: str, config: dict, length: int, batch: int, runs: int, work: Path,
               ov_ok: bool) -> tuple[list[list[object]], dict]:
    import torch

    from edgemed.export.quant_data import Labelled
    from edgemed.export.quantize import QuantMode, quantize
    from edgemed.runtime.deploy.acceptance import FLOAT_ATOL, FLOAT_RTOL
    from edgemed.runtime.model import EdgeModel
    from edgemed.train.models import create_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    module = create_model(name, **config).eval()
    fp32 = export_untrained(name, config, length, work / f"{name}.onnx")
    if ov_ok and name == "gru":  # OpenVINO needs the gather readout (it mis-handles sequence_lens)
        gather = work / f"{name}.gather.onnx"
        from edgemed.export.pipeline import export_target, target_from_model

        export_target(target_from_model(module, False, length=length), gather, force=True, readout="gather")
    else:
        gather = fp32
    ref = EdgeModel(fp32, threads=1)
    rng = np.random.default_rng(0)
    shape = [batch] + [length if isinstance(d, str) else d for d in ref.spec.signal.shape[1:]]
    x = rng.normal(size=shape).astype(np.float32)
    feeds = array_feeds(ref.spec, x)
    check = rng.normal(size=[256, *shape[1:]]).astype(np.float32) if name == "gru" else \
        rng.normal(size=[32, *shape[1:]]).astype(np.float32)
    check_logits = np.concatenate([ref.predict(check[i : i + 32]).logits for i in range(0, len(check), 32)])
    y = check_logits.argmax(1)
    cal = Labelled(check[:64], y[:64], None, "random")
    val = Labelled(check, y, None, "random")
    static = quantize(fp32, work / f"{name}.static.onnx", QuantMode.STATIC, cal, val, max_drop=100,
                      force_gate=True, overwrite=True).path
    # edgemed's fp32 row and the raw row share one session (`ref`): the difference is edgemed's own work alone
    ours = {"edgemed onnxruntime fp32": ref,
            "edgemed onnxruntime int8 static": EdgeModel(static, threads=1)}
    raw_ov, gates = {}, {}
    if ov_ok:
        # Calibration batches of 8 from the samples there are (an empty batch aborts onnxruntime's GRU).
        calibration = [array_feeds(ref.spec, check[i : i + 8]) for i in range(0, min(64, len(check)), 8)]
        nncf_file = _nncf_int8(gather, calibration, work / f"{name}.nncf.onnx")
        from edgemed.runtime.engines.openvino import supports_bf16

        bf16 = supports_bf16()  # without it OpenVINO would run the bf16 hint as fp32, and edgemed refuses it
        raw_ov = {"raw OpenVINO fp32": _ov_compiled(gather, "fp32"),
                  **({"raw OpenVINO bf16": _ov_compiled(gather, "bf16")} if bf16 else {}),
                  "raw OpenVINO NNCF int8": _ov_compiled(nncf_file, "fp32")}
        ours["edgemed OpenVINO fp32"] = EdgeModel(gather, threads=1, backend="openvino")
        if bf16:
            ours["edgemed OpenVINO bf16"] = EdgeModel(gather, threads=1, backend="openvino", precision="bf16")
        if name != "gru":  # the int8 file on OpenVINO (its Q/DQ pairs run as int8), the float rest fp32 or bf16
            ours["edgemed OpenVINO int8 static"] = EdgeModel(static, threads=1, backend="openvino")
            if bf16:
                ours["edgemed OpenVINO int8 static + bf16"] = EdgeModel(static, threads=1, backend="openvino",
                                                                        precision="bf16")
    for key, model in ours.items():
        got = np.concatenate([model.predict(check[i : i + 32]).logits for i in range(0, len(check), 32)])
        exact = "fp32" in key
        ok = (np.allclose(got, check_logits, atol=FLOAT_ATOL, rtol=FLOAT_RTOL) if exact
              else _agreement(got, check_logits) >= 0.98)
        gates[key] = {"passed": bool(ok), "max_abs": float(np.abs(got - check_logits).max()),
                      "agreement": _agreement(got, check_logits)}
    ours = {k: v for k, v in ours.items() if gates[k]["passed"]}
    session = ref.session
    xt = torch.from_numpy(x)
    lt = torch.from_numpy(feeds["lengths"]) if "lengths" in feeds else None
    calls = {"PyTorch eager": (lambda: module(xt, lt)) if lt is not None else (lambda: module(xt)),
             "raw onnxruntime fp32": lambda: session.run(None, feeds)}
    for key, compiled in raw_ov.items():
        request = compiled.create_infer_request()
        calls[key] = lambda r=request: r.infer(feeds)
    for key, model in ours.items():
        calls[key] = lambda m=model: m.predict(x)
    with torch.inference_mode():
        t = interleaved(calls, runs, warmup=5)
    base = np.median(t["raw onnxruntime fp32"])
    rows = [[label, batch, key, f"{np.median(v):.1f}", f"{np.percentile(v, 90):.1f}", f"{np.median(v) / base:.3f}"]
            for key, v in sorted(t.items(), key=lambda kv: np.median(kv[1]))]
    return rows, {"gates": gates, "files": {"fp32": str(fp32), "gather": str(gather)}}


def stream_case(label: str, name: str, config: dict, length: int, step: int, runs: int, work: Path,
                ov_ok: bool) -> list[list[object]]:
    from edgemed.runtime.model import EdgeModel

    path = export_untrained(name, config, length, work / f"{name}.{step}.stream.onnx", streaming=True)
    model = EdgeModel(path, threads=1)
    shape = [1] + [step if isinstance(d, str) else d for d in model.spec.signal.shape[1:]]
    chunk = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    streamer = model.stream(chunk=step)
    feeds = {model.spec.signal.name: chunk, **streamer.state}
    names = list(streamer.state)

    def raw():
        _, *state = model.session.run(None, feeds)
        feeds.update(zip(names, state, strict=True))

    calls = {"raw onnxruntime (state fed back)": raw, "edgemed onnxruntime Streamer": lambda: streamer.push(chunk)}
    if ov_ok:
        from edgemed.runtime.engines.openvino import OpenVINOEngine

        stateful = OpenVINOEngine(path.read_bytes(), 1).stateful(model.spec)
        calls["raw OpenVINO stateful"] = lambda: stateful.run(chunk)
        ov_stream = EdgeModel(path, threads=1, backend="openvino").stream(chunk=step)
        calls["edgemed OpenVINO Streamer (stateful)"] = lambda: ov_stream.push(chunk)
    t = interleaved(calls, runs, warmup=10)
    base = np.median(t["raw onnxruntime (state fed back)"])
    return [[label, 1, key, f"{np.median(v):.1f}", f"{np.percentile(v, 90):.1f}", f"{np.median(v) / base:.3f}"]
            for key, v in sorted(t.items(), key=lambda kv: np.median(kv[1]))]


def compile_edgemed() -> None:
    """Byte-compile edgemed's runtime modules, as `pip install` does for a wheel (and as onnxruntime's and
    OpenVINO's are): an editable checkout with PYTHONDONTWRITEBYTECODE set would otherwise recompile them in every
    fresh process and charge that to edgemed's cold start."""
    import compileall
    import importlib.util

    for name in ("core", "runtime", "devices"):
        for folder in importlib.util.find_spec(f"edgemed.{name}").submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def cold(engine: str, path: str, shape: list[int]) -> dict:
    proc = subprocess.run([sys.executable, "-c", COLD, engine, path, json.dumps(shape)], capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="CI size: the vitals GRU at batch 1, few runs")
    parser.add_argument("--cold-runs", type=int, default=7, help="fresh processes per engine for cold start")
    parser.add_argument("--docs", action="store_true", help="write docs/results/peers.md")
    args = parser.parse_args()
    try:
        import openvino  # noqa: F401

        ov_ok = True
    except ImportError:
        ov_ok = False
        print("OpenVINO not installed: its rows are left out (pip install 'edgemed[openvino]')")
    work = Path(tempfile.mkdtemp())
    rows, details = [], {}
    cases = [("vitals GRU, 100 steps", VITALS, (1,) if args.quick else (1, 32))]
    if not args.quick:
        cases.append(("12-lead CNN-GRU, 10 s", ECG12, (1, 32)))
    for label, (name, config, length), batches in cases:
        for batch in batches:
            runs = args.runs if name == "gru" else max(args.runs // (10 if batch == 1 else 30), 10)
            r, d = batch_case(label, name, config, length, batch, runs, work, ov_ok)
            rows += r
            details[f"{label}, batch {batch}"] = d
            print(markdown_table(["model", "batch", "engine", "p50 us", "p90 us", "vs raw onnxruntime"], r),
                  flush=True)
    streams = [("vitals GRU stream, 10 steps", VITALS, 10)]
    if not args.quick:
        streams += [("vitals GRU stream, 100 steps", VITALS, 100), ("12-lead CNN-GRU stream, 496 samples", ECG12, 496)]
    for label, (name, config, length), step in streams:
        r = stream_case(label, name, config, length, step, args.runs, work, ov_ok)
        rows += r
        print(markdown_table(["model", "batch", "engine", "p50 us", "p90 us", "vs raw onnxruntime"], r), flush=True)
    table = markdown_table(["model", "batch", "engine", "p50 us", "p90 us", "vs raw onnxruntime"], rows)
    cold_rows = []
    first = details[next(iter(details))]["files"]
    shape = [1, 100, VITALS[1]["input_size"]]
    engines = (("edgemed", first["fp32"]), ("onnxruntime", first["fp32"]),
               *((("openvino", first["gather"]),) if ov_ok else ()))
    compile_edgemed()
    starts: dict[str, list[dict]] = {engine: [] for engine, _ in engines}
    for _ in range(args.cold_runs):  # fresh processes, interleaved: the machine's drift hits every engine alike
        for engine, path in engines:
            starts[engine].append(cold(engine, path, shape))
    for engine, results in starts.items():
        good = [c for c in results if "error" not in c]
        error = next((c["error"] for c in results if "error" in c), "")
        ms = np.median([c["ms"] for c in good]) if good else float("nan")
        mb = np.median([c["rss_mb"] for c in good]) if good else float("nan")
        cold_rows.append([engine, f"{ms:.0f}", f"{mb:.0f}", error])
    cold_table = markdown_table(["engine (vitals GRU)", "cold start to first result ms (median)", "resident MB",
                                 "note"], cold_rows)
    print(cold_table)
    gates = "\n".join(f"- {case}: " + "; ".join(f"{k}: {'passed' if g['passed'] else 'REJECTED'} (max abs "
                                                 f"{g['max_abs']:.1e}, agreement {g['agreement']:.3f})"
                                                 for k, g in d["gates"].items()) for case, d in details.items())
    print(gates)
    if args.docs:
        write_results("peers", "edgemed against PyTorch, onnxruntime and OpenVINO", f"{table}\n\n{cold_table}\n\n"
                      f"Gates of edgemed's variants (only those passing are timed):\n\n{gates}", NOTES, per_class=True)


if __name__ == "__main__":
    main()
