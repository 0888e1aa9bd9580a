"""Where int8 goes: products too small to pay stay float, pass-through operators only next to int8 computation,
arithmetic with no int8 kernel never; a model where nothing pays is written in float and says so."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgemed.export.quant_placement import MIN_PRODUCT_WEIGHTS, int8_nodes, small_products
from edgemed.export.quant_report import format_report
from edgemed.export.quantize import QuantMode, quantize
from edgemed.runtime.model import EdgeModel


def _const(name: str, shape: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.full(shape, 0.1, np.float32), name)


def _graph() -> onnx.ModelProto:
    """Conv -> Relu -> MaxPool -> Flatten -> big Gemm -> LogSoftmax, a small Gemm beside it, and float arithmetic
    that combines both heads (an ensemble's average): Div, Sub, and an Add far from any int8 computation."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2], strides=[2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "big"], ["g"], name="big_gemm", transB=1),
        helper.make_node("Gemm", ["f", "small"], ["h"], name="small_gemm", transB=1),
        helper.make_node("LogSoftmax", ["g"], ["lg"], name="logsoftmax", axis=1),
        helper.make_node("Div", ["h", "two"], ["d"], name="div"),
        helper.make_node("Sub", ["lg", "d"], ["s"], name="sub"),
        helper.make_node("Add", ["s", "two"], ["y"], name="far_add"),
    ]
    inits = [_const("w", [8, 4, 3]), _const("big", [128, 248]), _const("small", [1, 248]), _const("two", [1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 128])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_small_products_and_the_int8_placement():
    model = _graph()
    assert small_products(model) == ["small_gemm"]  # 248 weights, under 16,384; big_gemm has 31,744
    assert small_products(model, 0) == []
    assert int8_nodes(model, keep=[]) == ["big_gemm", "conv", "flat", "pool", "relu"]
    assert int8_nodes(model, keep=["conv"]) == ["big_gemm", "flat", "pool", "relu"]  # kept nodes never are
    assert "small_gemm" in int8_nodes(model, keep=[], min_weights=0)  # 0: every product
    assert MIN_PRODUCT_WEIGHTS == 16384


def test_a_model_where_nothing_pays_is_written_in_float(exported, tmp_path):
    """The vitals GRU: only its small head could be int8, where it only added time; by default the file computes
    in float (logits equal to fp32's), the report says why, and --min-product-weights 0 quantises the head."""
    from edgemed.export.quant_data import quantization_data

    fp32 = EdgeModel(exported["gru"])
    cal, val = quantization_data(fp32.spec, fp32.metadata.provenance, None, None)
    result = quantize(exported["gru"], tmp_path / "a.onnx", QuantMode.STATIC, cal, val, max_drop=100)
    report = result.report
    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert not ops & {"QuantizeLinear", "DequantizeLinear"} and report.int8_compute_ops == []
    assert report.graph_passes["products_kept_float"] >= 1 and "scheme" not in report.graph_passes
    assert "nothing computes in int8" in format_report(report)
    x = val.x[:8]
    lengths = None if val.lengths is None else val.lengths[:8]
    np.testing.assert_allclose(EdgeModel(result.path).predict(x, lengths=lengths).logits,
                               fp32.predict(x, lengths=lengths).logits, atol=1e-5, rtol=1e-4)
    forced = quantize(exported["gru"], tmp_path / "b.onnx", QuantMode.STATIC, cal, val, max_drop=100,
                      min_product_weights=0).report
    assert forced.int8_compute_ops and "nothing computes" not in format_report(forced)


def test_placement_runs_on_onnxruntime(tmp_path):
    """The placed graph quantises and runs: the big product in int8, the small one (fed the unrounded value, as
    the pipeline does for every kept node) and the arithmetic in float."""
    from onnxruntime import quantization as ortq

    from edgemed.export.graph_passes import restore_float_inputs

    model = _graph()
    onnx.save(model, str(tmp_path / "f.onnx"))
    rng = np.random.default_rng(0)

    class Reader(ortq.CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": rng.normal(size=[4, 4, 64]).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    ortq.quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(),
                         quant_format=ortq.QuantFormat.QDQ, nodes_to_quantize=int8_nodes(model, []))
    quantised = onnx.load(str(tmp_path / "q.onnx"))
    assert restore_float_inputs(quantised, small_products(model)) == 1  # the Flatten output both products read
    onnx.save(quantised, str(tmp_path / "q.onnx"))
    graph = quantised.graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized = {i for n in graph.node if n.op_type == "QuantizeLinear" for i in n.input}
    fed = {n.name: any(i in dequantized for i in n.input) for n in graph.node}
    rounded = {n.name: any(o in quantized for o in n.output) for n in graph.node}
    assert fed["big_gemm"] and fed["conv"] and rounded["conv"] and rounded["pool"]
    assert not any(fed[n] or rounded[n] for n in ("small_gemm", "div", "sub", "far_add"))
    assert not rounded["logsoftmax"]  # float, reading the int8 product's dequantised output
    x = rng.normal(size=[2, 4, 64]).astype(np.float32)
    a = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    b = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert a.shape == b.shape and np.isfinite(b).all()


def test_openvino_is_checked_and_a_disagreeing_file_refused_there(exported, tmp_path):
    """Every int8 file runs on OpenVINO too at quantise time; a file whose record says OpenVINO gives other
    results than onnxruntime (where its gate was measured) is refused on the openvino backend, with the reason."""
    import json

    import pytest

    from edgemed.core.errors import ModelLoadError
    from edgemed.export.onnx_io import get_metadata, save_model, set_metadata
    from edgemed.export.quant_data import quantization_data
    from edgemed.runtime.engines import openvino

    if not openvino.available():
        pytest.skip("needs OpenVINO")
    fp32 = EdgeModel(exported["gru"])
    cal, val = quantization_data(fp32.spec, fp32.metadata.provenance, None, None)
    result = quantize(exported["gru"], tmp_path / "q.onnx", QuantMode.STATIC, cal, val, max_drop=100,
                      min_product_weights=0)
    record = result.report.to_dict()["engines"]["openvino"]
    assert record["checked"] and record["samples"] == len(val.y) and record["labels_changed"] == 0, record
    assert record["agrees"] and np.isfinite(record["max_abs_vs_onnxruntime"])
    assert EdgeModel(result.path, backend="openvino").backend == "openvino"
    model = onnx.load(str(result.path))
    meta = get_metadata(model)
    quantization = json.loads(meta["quantization"])
    quantization["engines"]["openvino"] = {**record, "agrees": False, "max_abs_vs_onnxruntime": 2.5}
    set_metadata(model, {k: v for k, v in meta.items() if k != "integrity"} | {"quantization": quantization})
    save_model(model, tmp_path / "disagrees.onnx")
    with pytest.raises(ModelLoadError, match="other results on openvino than on onnxruntime.*2.5"):
        EdgeModel(tmp_path / "disagrees.onnx", backend="openvino")
    assert EdgeModel(tmp_path / "disagrees.onnx").backend == "onnxruntime"


def test_reductions_after_int8_pooling_are_placed_with_it():
    """OpenVINO moves dequantisation through max and mean reductions: left float after an int8 pooling they fed a
    concatenation of dequantised and float values it computed wrongly, so they join the int8 region."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2], strides=[2]),
             helper.make_node("ReduceMean", ["p"], ["m"], name="mean", axes=[2], keepdims=0),
             helper.make_node("Concat", ["m", "rr"], ["cat"], name="cat", axis=1),
             helper.make_node("Gemm", ["cat", "head"], ["y"], name="head", transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4, 64]),
                                           helper.make_tensor_value_info("rr", TensorProto.FLOAT, ["b", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 5])],
                              [_const("w", [8, 4, 3]), _const("head", [5, 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert int8_nodes(model, keep=[]) == ["cat", "conv", "mean", "pool"]  # the small head stays float
