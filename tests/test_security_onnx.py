"""Attack suite, round 2: crafted ONNX files (issue 19, classes 2, 3 and 4). What `info` and the digests see must
be what the engine runs; weights outside the file and graphs that expand without end are refused before any
engine sees them."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgemed.cli.main import cli
from edgemed.core.atomic import sidecar_path
from edgemed.core.digest import file_sha256
from edgemed.core.errors import EdgemedError, LimitError, ModelLoadError
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.onnx.info import describe


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _with_sidecar(path, data: bytes):
    path.write_bytes(data)
    sidecar_path(path).write_text(f"{file_sha256(path)}  {path.name}\n")
    return path


def _refused(path, match: str, error=EdgemedError):
    with pytest.raises(error, match=match):
        EdgeModel(path)
    with pytest.raises(error, match=match):
        describe(path)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code != 0 and "Traceback" not in result.output and match.split("|")[0] in result.output


def test_a_second_graph_field_is_refused(exported, tmp_path):
    """protobuf merges a second `graph` field into the first: onnxruntime would run nodes info never shows."""
    model = onnx.load(exported["gru"])
    hidden = onnx.GraphProto()
    hidden.node.add().CopyFrom(helper.make_node("Neg", ["logits"], ["logits"]))
    data = exported["gru"].read_bytes() + _field(7, hidden.SerializeToString())
    _refused(_with_sidecar(tmp_path / "twin.onnx", data), "given twice")
    assert model.graph.node  # the original still loads
    EdgeModel(exported["gru"])


def test_a_duplicated_metadata_key_is_refused(exported, tmp_path):
    entry = _field(1, b"edgemed.labels") + _field(2, b'["x", "y"]')
    data = exported["gru"].read_bytes() + _field(14, entry) + _field(14, entry)
    _refused(_with_sidecar(tmp_path / "meta.onnx", data), "given twice")


def test_metadata_over_its_limit_is_refused(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEMED_MAX_METADATA_MB", "0.01")
    data = exported["gru"].read_bytes() + _field(14, _field(1, b"padding") + _field(2, b"x" * 20_000))
    _refused(_with_sidecar(tmp_path / "fat.onnx", data), "EDGEMED_MAX_METADATA_MB")


def _external_model(folder):
    weight = numpy_helper.from_array(np.ones((2, 2), "float32"), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["logits"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, size_threshold=0,
              location="weights.bin")
    return path


def test_weights_in_an_external_file_are_refused_wherever_they_point(tmp_path, monkeypatch):
    path = _external_model(tmp_path)
    assert (tmp_path / "weights.bin").is_file()
    _with_sidecar(path, path.read_bytes())
    _refused(path, "external file")
    # the same file loaded from elsewhere must not read a file of the working directory either
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    shutil.copy(tmp_path / "weights.bin", elsewhere / "weights.bin")
    monkeypatch.chdir(elsewhere)
    _refused(path, "external file")
    pytest.importorskip("openvino")
    with pytest.raises(ModelLoadError, match="external file"):
        EdgeModel(path, backend="openvino")


def _nested_functions(path, levels: int = 40):
    """Each function calls the one below it four times: 4**40 nodes once inlined, from a few KB."""
    functions = [helper.make_function("bomb", "f0", ["a"], ["b"], [helper.make_node("Identity", ["a"], ["b"])],
                                      [helper.make_opsetid("", 17)])]
    for k in range(1, levels):
        nodes = [helper.make_node(f"f{k - 1}", [f"t{i}" if i else "a"], [f"t{i + 1}" if i < 3 else "b"],
                                  domain="bomb") for i in range(4)]
        functions.append(helper.make_function("bomb", f"f{k}", ["a"], ["b"], nodes,
                                              [helper.make_opsetid("", 17), helper.make_opsetid("bomb", 1)]))
    graph = helper.make_graph([helper.make_node(f"f{levels - 1}", ["x"], ["logits"], domain="bomb")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])])
    model = helper.make_model(graph, functions=functions,
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("bomb", 1)])
    return _with_sidecar(path, model.SerializeToString())


def test_nested_functions_that_expand_without_end_are_refused(tmp_path):
    path = _nested_functions(tmp_path / "bomb.onnx")
    assert path.stat().st_size < 8000
    _refused(path, "EDGEMED_MAX_GRAPH_NODES", LimitError)


def test_a_function_that_calls_itself_is_refused(tmp_path):
    loop = helper.make_function("bomb", "f", ["a"], ["b"], [helper.make_node("f", ["a"], ["b"], domain="bomb")],
                                [helper.make_opsetid("bomb", 1)])
    graph = helper.make_graph([helper.make_node("f", ["x"], ["logits"], domain="bomb")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])])
    model = helper.make_model(graph, functions=[loop],
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("bomb", 1)])
    _refused(_with_sidecar(tmp_path / "loop.onnx", model.SerializeToString()), "calls itself")
