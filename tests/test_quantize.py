"""Quantisation: modes, graph passes keep the function, accuracy gates, metadata, and bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgemed.cli.main import cli
from edgemed.core.errors import QuantizationError
from edgemed.export.graph_passes import fuse_pad_into_conv, recurrent_weights_int8
from edgemed.export.pipeline import export_target, target_from_checkpoint
from edgemed.export.quant_data import quantization_data
from edgemed.export.quant_report import format_report
from edgemed.export.quantize import QuantMode, RecurrentWeights, quantize
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.onnx.info import describe


@pytest.fixture(scope="module")
def ecg_onnx(checkpoints, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("q") / "ecg.onnx"
    export_target(target_from_checkpoint(checkpoints["cnn_gru"]), out)
    return out


def _data(path: Path):
    meta = describe(path).metadata
    return quantization_data(meta.spec, meta.provenance, None, None)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_graph_passes_keep_the_function(ecg_onnx, tmp_path):
    quant_pre_process(str(ecg_onnx), str(tmp_path / "pre.onnx"))
    model = onnx.load(str(tmp_path / "pre.onnx"))
    assert fuse_pad_into_conv(model) == 4  # one causal Pad per conv block
    assert "Pad" not in {n.op_type for n in model.graph.node}
    onnx.save(model, str(tmp_path / "fused.onnx"))
    x = np.random.default_rng(0).normal(size=(3, 2, 333)).astype(np.float32)
    np.testing.assert_allclose(_run(tmp_path / "fused.onnx", x), _run(ecg_onnx, x), atol=1e-6)
    saved = recurrent_weights_int8(model)
    onnx.save(model, str(tmp_path / "gru8.onnx"))
    assert saved > 0 and (tmp_path / "gru8.onnx").stat().st_size < (tmp_path / "fused.onnx").stat().st_size
    # int8 weights with a per-row scale: logits move by rounding only
    assert np.abs(_run(tmp_path / "gru8.onnx", x) - _run(ecg_onnx, x)).max() < 0.05


def test_static_quantisation_writes_a_gated_model(ecg_onnx, tmp_path):
    cal, val = _data(ecg_onnx)
    out = tmp_path / "static.onnx"
    result = quantize(ecg_onnx, out, QuantMode.STATIC, cal, val, max_drop=100).report
    report = result.to_dict()
    assert report["gate"] == "passed" and report["size_ratio"] < 0.8
    slower = dataclasses.replace(result, latency_us={"fp32_us": 100.0, "quantized_us": 110.0, "speedup": 100 / 110})
    assert "NOT faster" in format_report(slower) and "NOT faster" not in format_report(
        dataclasses.replace(result, latency_us={"fp32_us": 100.0, "quantized_us": 50.0, "speedup": 2.0}))
    assert {"Conv", "MaxPool"} <= set(report["int8_compute_ops"]) and report["float_compute_ops"] == ["GRU", "Gemm"]
    assert report["graph_passes"]["products_kept_float"] == 1  # the 32 x 3 head: int8 would only add time
    assert "recurrent_weight_bytes_saved" not in report["graph_passes"]  # float GRU weights: pre-packed, fastest
    small = quantize(ecg_onnx, tmp_path / "small.onnx", QuantMode.STATIC, cal, val, max_drop=100,
                     recurrent_weights=RecurrentWeights.INT8).report.to_dict()
    assert small["int8_weight_only_ops"] == ["GRU"] and small["size_ratio"] < report["size_ratio"]
    assert report["graph_passes"]["pads_fused_into_conv"] == 4
    assert report["graph_passes"]["fp32_parity_max_abs"] < 1e-5
    assert report["validation"]["samples"] == len(val.y) and report["calibration"]["samples"] == len(cal.y)
    assert set(report["per_class"]["sinus"]) == {"sensitivity", "specificity"}
    assert report["latency_batch1_1thread"]["speedup"] > 0
    meta = ort.InferenceSession(str(out)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["edgemed.quantization"])["mode"] == "static" and "edgemed.spec" in meta
    assert (tmp_path / "static.onnx.sha256").exists()
    graph = onnx.load(str(out)).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    assert all(producers[o.name] not in ("DequantizeLinear", "QuantizeLinear") for o in graph.output)  # float logits
    model = EdgeModel(out)  # the runtime takes it as any other model, sidecar verified
    x = np.random.default_rng(1).normal(size=(4, 2, 320)).astype(np.float32)
    fp32 = EdgeModel(ecg_onnx).predict(x).probabilities
    assert np.abs(model.predict(x).probabilities - fp32).max() < 0.1


def test_dynamic_and_fp16_modes(ecg_onnx, tmp_path):
    cal, val = _data(ecg_onnx)
    dyn = quantize(ecg_onnx, tmp_path / "dyn.onnx", QuantMode.DYNAMIC, None, val, max_drop=100).report.to_dict()
    assert "ConvInteger" in dyn["int8_compute_ops"] and dyn["calibration"] is None
    half = quantize(ecg_onnx, tmp_path / "half.onnx", QuantMode.FP16, None, val).report.to_dict()
    assert half["size_ratio"] < 0.6 and half["top1_agreement"] > 0.99
    sess = ort.InferenceSession(str(tmp_path / "half.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)" and sess.get_outputs()[0].type == "tensor(float)"


def test_failed_gate_writes_nothing_unless_forced(ecg_onnx, tmp_path):
    cal, val = _data(ecg_onnx)
    out = tmp_path / "q.onnx"
    with pytest.raises(QuantizationError, match="macro-F1 points .* nothing written"):
        quantize(ecg_onnx, out, QuantMode.STATIC, cal, val, max_drop=-100)  # demands a 100-point gain
    assert list(tmp_path.iterdir()) == []
    forced = quantize(ecg_onnx, out, QuantMode.STATIC, cal, val, max_drop=-100, force_gate=True).report
    report = forced.to_dict()
    assert report["gate"] == "failed (forced)"
    # Before giving up, the accuracy fallback left every int8 product float, one at a time: the file computes as
    # fp32 does and says so.
    fallback = report["graph_passes"]["accuracy_fallback"]
    products = fallback["products_int8_before"]
    assert products >= 2 and len(fallback["left_float"]) == products == len(fallback["steps"])
    assert fallback["drop_points_after"] == pytest.approx(0.0, abs=1e-9) and report["int8_compute_ops"] == []
    text = format_report(forced)  # the fallback says why nothing computes in int8, not the placement's rule
    assert f"left {products} of {products} int8 products float" in text and "nothing computes in int8" not in text
    x = val.x[:8].astype(np.float32)
    np.testing.assert_allclose(_run(out, x), _run(ecg_onnx, x), atol=1e-5, rtol=1e-4)
    meta = ort.InferenceSession(str(out)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["edgemed.quantization"])["gate"] == "failed (forced)"


def test_quantize_cli_report_and_json(ecg_onnx, tmp_path):
    result = CliRunner().invoke(cli, ["quantize", str(ecg_onnx), "--mode", "static", "--max-drop", "100",
                                      "-o", str(tmp_path / "s.onnx"), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "macro-F1 fp32" in result.output and "PASSED" in result.output and "int8 compute: Conv" in result.output
    assert json.loads((tmp_path / "r.json").read_text())["mode"] == "static"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--mode", "static", "--calibration", "synthetic-vitals"], "does not fit the model"),
        (["--mode", "static", "--calibration", "FEW"], "needs at least 16"),
        (["--mode", "int4"], "'int4' is not one of"),
        (["--mode", "static", "--max-drop", "-1"], "-1"),
    ],
)
def test_bad_quantize_input(ecg_onnx, tmp_path, args, message):
    few = tmp_path / "few.npz"
    np.savez(few, X=np.zeros((5, 2, 320), np.float32), y=np.arange(5),
             label_names=np.array(["sinus", "afib", "brady", "tachy", "pvc"]))
    args = [str(few) if a == "FEW" else a for a in args]
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(cli, ["quantize", str(ecg_onnx), *args, "-o", str(out / "q.onnx")])
    assert result.exit_code != 0 and message in result.output, result.output
    assert list(out.iterdir()) == []


def test_already_quantised_model_is_refused(ecg_onnx, tmp_path):
    cal, val = _data(ecg_onnx)
    once = tmp_path / "once.onnx"
    quantize(ecg_onnx, once, QuantMode.FP16, None, val)
    result = CliRunner().invoke(cli, ["quantize", str(once), "--mode", "static", "-o", str(tmp_path / "twice.onnx")])
    assert result.exit_code == 1 and "refusing to quantise again" in result.output
    assert not (tmp_path / "twice.onnx").exists()


@pytest.mark.parametrize("family", ["gru-stream", "cnn_gru-stream"])
def test_streaming_exports_quantise_through_the_same_gate(exported, family, tmp_path):
    from edgemed.export.quant_data import quantization_data
    from edgemed.export.quant_stream import StreamingData

    fp32 = EdgeModel(exported[family])
    cal, val = quantization_data(fp32.spec, fp32.metadata.provenance, None, None)
    result = quantize(exported[family], tmp_path / "s8.onnx", QuantMode.STATIC, cal, val, max_drop=100,
                      min_product_weights=0)  # the GRU's products are small: int8 only when asked
    report = result.report.to_dict()
    assert report["gate"] == "passed" and report["validation"]["samples"] == len(val.y)
    graph = onnx.load(str(result.path)).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    assert all(producers[o.name] != "DequantizeLinear" for o in graph.output)  # logits and state stay float
    int8 = EdgeModel(result.path)
    assert int8.spec.streaming is not None and int8.metadata.quantization["mode"] == "static"
    stream = StreamingData(val, fp32.spec)
    x = np.ascontiguousarray(np.take(val.x[:2], range(stream.steps * stream.chunk), axis=stream.axis))
    a = fp32.stream(chunk=stream.chunk, batch=2).push(x)[-1].probabilities
    b = int8.stream(chunk=stream.chunk, batch=2).push(x)[-1].probabilities
    assert np.abs(a - b).max() < 0.2  # the same stream, quantised: close, and gated on accuracy above


def test_int8_scheme_is_chosen_per_instruction_set_class(exported, tmp_path, monkeypatch):
    """Without a way to check x86 CPUs lacking VNNI, auto skips u8s8 (which saturates there) when that class is a
    target; with only this machine's class it keeps u8s8."""
    from edgemed.devices.profile import host_isa
    from edgemed.export import isa as isa_module
    from edgemed.export.quant_data import quantization_data
    from edgemed.export.quantize import QuantScheme, isa_targets

    fp32 = EdgeModel(exported["gru"])
    cal, val = quantization_data(fp32.spec, fp32.metadata.provenance, None, None)
    here = quantize(exported["gru"], tmp_path / "a.onnx", QuantMode.STATIC, cal, val, max_drop=100,
                    min_product_weights=0).report  # its products are small: int8 only when asked
    assert here.graph_passes["scheme"]["chosen"] == "u8s8" and here.graph_passes["scheme"]["targets"] == [host_isa()]
    monkeypatch.setattr(isa_module, "reachable", lambda classes: {c: "not here" for c in classes})
    others = tuple(c for c in ("x86-avx2", "aarch64") if c != host_isa())
    report = quantize(exported["gru"], tmp_path / "b.onnx", QuantMode.STATIC, cal, val, max_drop=100,
                      min_product_weights=0, isa_classes=(host_isa(), *others)).report
    scheme = report.graph_passes["scheme"]
    assert scheme["chosen"] == "u8s8-reduced" and scheme["tried"][0]["result"].startswith("skipped")
    assert all(not scheme["tried"][1]["classes"][c]["checked"] for c in others)
    assert isa_targets("all")[0] == host_isa() and len(isa_targets("all")) == 4
    monkeypatch.undo()
    emulable = {"x86-avx2", host_isa()} if host_isa().startswith("x86") else {host_isa()}
    for cls in {"x86-vnni", "x86-amx"} - emulable:  # no qemu implements VNNI or AMX: said, not pretended
        assert "cannot be emulated" in isa_module.reachable([cls])[cls]
    with pytest.raises(QuantizationError, match="unknown instruction-set"):
        isa_targets("sparc")
    assert QuantScheme("u8u8") is QuantScheme.U8U8


@pytest.mark.skipif(not __import__("shutil").which("qemu-x86_64-static"), reason="needs qemu-user-static")
def test_int8_results_on_an_x86_cpu_without_vnni_are_measured(exported, tmp_path):
    from edgemed.export.isa import logits_on

    fp32 = EdgeModel(exported["gru"])
    x = np.random.default_rng(0).normal(size=(8, 12, fp32.spec.signal.shape[2])).astype(np.float32)
    feeds = {"x": x, "lengths": np.full(8, 12, np.int64)}
    emulated = logits_on("x86-avx2", exported["gru"], feeds)
    np.testing.assert_allclose(emulated, fp32.predict(x).logits, atol=1e-5)  # fp32 is the same everywhere


def test_bundle_refuses_int8_not_checked_on_the_device_class(exported, tmp_path):
    from click.testing import CliRunner

    from edgemed.cli.main import cli
    from edgemed.devices.profile import host_isa
    from edgemed.export.quant_data import quantization_data

    fp32 = EdgeModel(exported["gru"])
    cal, val = quantization_data(fp32.spec, fp32.metadata.provenance, None, None)
    quantize(exported["gru"], tmp_path / "q.onnx", QuantMode.STATIC, cal, val, max_drop=100, min_product_weights=0)
    other = "raspberry-pi-5" if host_isa() != "aarch64" else "bedside-x86"
    res = CliRunner().invoke(cli, ["bundle", str(tmp_path / "q.onnx"), "--device", other, "-o", str(tmp_path / "b")])
    assert res.exit_code == 1 and "quantise it again with --device" in res.output
