"""Attack suite, round 2: crafted ONNX files (issue 19, classes 2, 3 and 4). What `info` and the digests see must
be what the engine runs; weights outside the file and graphs that expand without end are refused before any
engine sees them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgemed.cli.main import cli
from edgemed.core.atomic import sidecar_path
from edgemed.core.digest import file_sha256
from edgemed.core.errors import EdgemedError, InputError, LimitError, ModelLoadError
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


def _refused(path, match: str, error=EdgemedError, data: bytes | None = None):
    if data is not None:
        _with_sidecar(path, data)
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


def _nested_functions(path, levels: int = 40, calls: int = 4):
    """Each function calls the one below it `calls` times: 4**40 nodes once inlined, from a few KB."""
    functions = [helper.make_function("bomb", "f0", ["a"], ["b"], [helper.make_node("Identity", ["a"], ["b"])],
                                      [helper.make_opsetid("", 17)])]
    for k in range(1, levels):
        nodes = [helper.make_node(f"f{k - 1}", [f"t{i}" if i else "a"], [f"t{i + 1}" if i < calls - 1 else "b"],
                                  domain="bomb") for i in range(calls)]
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


def test_functions_nested_deeper_than_the_stack_are_refused(tmp_path):
    """1,500 functions each calling the next once: few nodes once inlined, but a depth that overflowed the walk's
    stack (an internal RecursionError) and would the engines' own inlining."""
    _refused(_nested_functions(tmp_path / "deep.onnx", levels=1500, calls=1), "more than 48 levels deep")


def test_a_function_that_calls_itself_is_refused(tmp_path):
    loop = helper.make_function("bomb", "f", ["a"], ["b"], [helper.make_node("f", ["a"], ["b"], domain="bomb")],
                                [helper.make_opsetid("bomb", 1)])
    graph = helper.make_graph([helper.make_node("f", ["x"], ["logits"], domain="bomb")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])])
    model = helper.make_model(graph, functions=[loop],
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("bomb", 1)])
    _refused(_with_sidecar(tmp_path / "loop.onnx", model.SerializeToString()), "calls itself")


def _loop_model(path):
    """A graph that runs as long as its second input says: a Loop of `n` turns adding x to itself."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Add", ["acc_in", "acc_in"], ["acc_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, None)])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "cond", "x"], ["y"], body=body)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.array(True), "cond")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _loop_engine(tmp_path):
    """onnxruntime's engine on the Loop (an EdgeModel takes one signal input; the turns are a second one here)."""
    from edgemed.runtime.engines import EngineOptions, load_engine

    return load_engine("onnxruntime", _loop_model(tmp_path / "loop.onnx").read_bytes(), EngineOptions())


def _loop_feeds(turns: int) -> dict[str, np.ndarray]:
    return {"x": np.zeros((1, 4), np.float32), "n": np.array(turns, np.int64)}


def test_a_run_past_its_deadline_is_stopped_and_the_model_still_runs(tmp_path, monkeypatch):
    """A few hundred bytes can ask for 2**62 turns of a Loop: the watchdog stops the run at EDGEMED_MAX_RUN_S (a
    bedside monitor would otherwise wait for ever: the error is the proof, since the Loop would run for centuries),
    and the next run of the same model is unaffected."""
    monkeypatch.setenv("EDGEMED_MAX_RUN_S", "0.3")
    engine = _loop_engine(tmp_path)
    with pytest.raises(LimitError, match=r"longer than 0\.3 s and was stopped.*EDGEMED_MAX_RUN_S"):
        engine.run(_loop_feeds(2**62))
    np.testing.assert_array_equal(engine.run(_loop_feeds(3))[0], np.zeros((1, 4), np.float32))


def test_a_cancel_that_raced_the_end_of_a_run_does_not_fail_the_next(tmp_path):
    """The watchdog may set the cancel flag just as an overdue run ends: the next run, not overdue, runs again
    instead of failing."""
    engine = _loop_engine(tmp_path)
    engine.run(_loop_feeds(1))
    engine.timed._local.slot.handle.terminate = True  # what a late cancel leaves behind
    np.testing.assert_array_equal(engine.run(_loop_feeds(2))[0], np.zeros((1, 4), np.float32))


def test_a_run_past_its_deadline_is_one_line_in_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEMED_MAX_RUN_S", "0.3")
    path = _loop_model(tmp_path / "loop.onnx")
    model = onnx.load(path)
    model.graph.input.pop()  # the turns become a constant: 2**62 of them
    model.graph.initializer.append(numpy_helper.from_array(np.array(2**62, np.int64), "n"))
    onnx.save(model, path)
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    result = CliRunner().invoke(cli, ["run", str(path), str(tmp_path / "x.npy")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "loop.onnx: onnxruntime: one run took longer than 0.3 s and was stopped" in result.output
    assert "EDGEMED_MAX_RUN_S" in result.output


def test_openvino_refuses_a_loop_and_stops_a_long_run(tmp_path, monkeypatch):
    """OpenVINO cannot stop inside a Loop, so its engine refuses one; a long run of plain nodes is cancelled
    between nodes (with two or more inference threads: with one, OpenVINO runs on the caller's thread and ignores
    the cancel)."""
    openvino = pytest.importorskip("edgemed.runtime.engines.openvino")
    if not openvino.available():
        pytest.skip("OpenVINO is not installed")
    with pytest.raises(ModelLoadError, match="Loop node"):
        openvino.OpenVINOEngine(_loop_model(tmp_path / "loop.onnx").read_bytes(), 2)
    loop = onnx.load(tmp_path / "loop.onnx")
    loop.graph.node[0].input[0] = "turns"
    branches = {"then_branch": helper.make_graph([loop.graph.node[0]], "then", [],
                                                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                                 [numpy_helper.from_array(np.array(2**62, np.int64), "turns"),
                                                  *loop.graph.initializer]),
                "else_branch": helper.make_graph([helper.make_node("Neg", ["x"], ["z"])], "else", [],
                                                 [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])}
    decide = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
              helper.make_node("Greater", ["s", "zero"], ["c"])]
    for hidden in (True, False):  # a Loop inside an If's branch is found; an If without one loads
        if not hidden:
            branches["then_branch"] = branches["else_branch"]
        graph = helper.make_graph([*decide, helper.make_node("If", ["c"], ["y"], **branches)], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                                  [numpy_helper.from_array(np.array(0, np.float32), "zero")])
        data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
        if hidden:
            with pytest.raises(ModelLoadError, match="Loop node"):
                openvino.OpenVINOEngine(data, 2)
        else:
            assert openvino.OpenVINOEngine(data, 1).run({"x": np.ones((1, 4), np.float32)})[0].shape == (1, 4)
    size, steps = 1024, 400  # 400 products of 1024 x 1024 matrices made from the input: seconds on any CPU
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Expand", ["s", "shape"], ["m0"])]
    nodes += [helper.make_node("MatMul", [f"m{i}", "m0"], [f"m{i + 1}"]) for i in range(steps)]
    nodes.append(helper.make_node("ReduceSum", [f"m{steps}"], ["y"], keepdims=0))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
                              [numpy_helper.from_array(np.array([size, size], np.int64), "shape")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    monkeypatch.setenv("EDGEMED_MAX_RUN_S", "0.2")
    engine = openvino.OpenVINOEngine(data, 2)
    with pytest.raises(LimitError, match="was stopped"):
        engine.run({"x": np.full((1, 4), 1e-3, np.float32)})


def _const_model(nodes, initializers) -> bytes:
    """A graph that adds the constant `c`, computed by `nodes` from `initializers` alone, to its input."""
    nodes = [*nodes, helper.make_node("ReduceSum", ["c"], ["s"], keepdims=0),
             helper.make_node("Add", ["x", "s"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _ones(name: str = "m0"):
    """A constant matrix of the shape held by `<name>_shape`."""
    return helper.make_node("ConstantOfShape", [f"{name}_shape"], [name],
                            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1e-3]))


def _shape(n: int, name: str = "m0"):
    return numpy_helper.from_array(np.array([n, n], np.int64), f"{name}_shape")


def test_constants_folded_while_loading_are_bounded(tmp_path):
    """Engines fold nodes on constants alone while loading, before any run deadline: 20 products of a 2048 x 2048
    matrix held a load for seconds (hours are a few more nodes away); a matrix of 4e12 ones was only refused by
    the allocator. Both are refused before any engine sees them, in one line, by the CLI too."""
    from edgemed.runtime.onnx.folding import check_folding

    chain = [_ones()] + [helper.make_node("MatMul", [f"m{i}", "m0"], [f"m{i + 1}"]) for i in range(20)]
    chain.append(helper.make_node("Identity", ["m20"], ["c"]))
    _refused(tmp_path / "chain.onnx", "compute on constants alone", LimitError,
             _const_model(chain, [_shape(2048)]))
    backwards = onnx.load_from_string(_const_model(chain, [_shape(2048)]))
    nodes = list(backwards.graph.node)
    del backwards.graph.node[:]
    backwards.graph.node.extend(reversed(nodes))  # onnxruntime sorts the nodes itself and folds them all the same
    _refused(tmp_path / "backwards.onnx", "compute on constants alone", LimitError, backwards.SerializeToString())
    _refused(tmp_path / "huge.onnx", "EDGEMED_MAX_ARRAY_MB", LimitError,
             _const_model([_ones(), helper.make_node("Identity", ["m0"], ["c"])], [_shape(2_000_000)]))
    tiles = [helper.make_node("Tile", ["w", "reps"], ["c"])]  # no rule bounds a Tile: refused, whatever its size
    data = _const_model(tiles, [numpy_helper.from_array(np.ones(2, np.float32), "w"),
                                numpy_helper.from_array(np.array([3], np.int64), "reps")])
    with pytest.raises(InputError, match="a Tile node computes on constants alone"):
        check_folding(memoryview(data), "tile.onnx")
    small = [_ones(), helper.make_node("MatMul", ["m0", "m0"], ["m1"]), helper.make_node("Identity", ["m1"], ["c"])]
    assert 0 < check_folding(memoryview(_const_model(small, [_shape(64)]))) < 2**25  # small folding still loads
    EdgeModel(_with_sidecar(tmp_path / "small.onnx", _const_model(small, [_shape(64)])))


def test_folding_is_counted_in_subgraphs_and_at_every_function_call(tmp_path):
    """An If branch sees its outer graph's constants, and a local function is inlined at each call, as the engines
    do: a product hidden in either is counted (and one that depends on the input is left to the run deadline)."""
    from edgemed.runtime.onnx.folding import check_folding

    branch = helper.make_graph([helper.make_node("MatMul", ["m0", "m0"], ["b"])], "then", [],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)])
    in_if = [helper.make_node("If", ["cond"], ["c"], then_branch=branch, else_branch=branch), _ones()]
    model = onnx.load_from_string(_const_model(in_if, [_shape(4096)]))
    model.graph.input.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))  # decided at run time
    with pytest.raises(LimitError, match="compute on constants alone"):  # the branch's product is folded anyway
        check_folding(memoryview(model.SerializeToString()), "if.onnx")
    with pytest.raises(InputError, match="a If node computes on constants alone"):  # no rule bounds an If
        check_folding(memoryview(_const_model(in_if, [_shape(4096), numpy_helper.from_array(np.array(True), "cond")])))
    square = helper.make_function("local", "Square", ["a"], ["b"], [helper.make_node("MatMul", ["a", "a"], ["b"])],
                                  [helper.make_opsetid("", 17)])
    calls = [_ones(), helper.make_node("Square", ["m0"], ["c"], domain="local")]
    model = onnx.load_from_string(_const_model(calls, [_shape(4096)]))
    model.functions.append(square)
    model.opset_import.append(helper.make_opsetid("local", 1))
    with pytest.raises(LimitError, match="compute on constants alone"):
        check_folding(memoryview(model.SerializeToString()), "function.onnx")
    model.graph.node[1].input[0] = "x"  # the same function on the input: nothing to fold
    assert check_folding(memoryview(model.SerializeToString())) == 4096**2 + 2


def test_an_initializer_that_is_also_an_input_is_folded_only_before_ir_4():
    """An initializer named like a graph input is only a default (a feed replaces it): engines do not fold it, except
    in files older than ONNX IR 4, where every initializer was an input and onnxruntime folds them all."""
    from edgemed.runtime.onnx.folding import check_folding

    nodes = [helper.make_node("Tile", ["w", "reps"], ["c"])]
    model = onnx.load_from_string(_const_model(nodes, [numpy_helper.from_array(np.ones(2, np.float32), "w"),
                                                        numpy_helper.from_array(np.array([3], np.int64), "reps")]))
    model.graph.input.append(helper.make_tensor_value_info("reps", TensorProto.INT64, [1]))
    assert check_folding(memoryview(model.SerializeToString())) == 0
    model.ir_version = 3
    with pytest.raises(InputError, match="a Tile node computes on constants alone"):
        check_folding(memoryview(model.SerializeToString()))


def test_memory_a_run_asks_for_is_capped(tmp_path):
    """A graph can size a tensor from its input at run time (nothing to fold, nothing to bound beforehand): a
    ConstantOfShape of 50 million values takes 200 MB, or, with the cap under it, is refused in one line naming
    EDGEMED_MAX_ENGINE_MB. The cap is per process and read at the first load, hence the fresh processes."""
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0), helper.make_node("Mul", ["s", "zero"], ["z"]),
             helper.make_node("Cast", ["z"], ["zi"], to=TensorProto.INT64), helper.make_node("Add", ["zi", "n"], ["k"]),
             helper.make_node("Reshape", ["k", "one"], ["shape"]),
             helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["big"], ["t"], keepdims=1), helper.make_node("Add", ["x", "t"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
                              [numpy_helper.from_array(np.array(0, np.float32), "zero"),
                               numpy_helper.from_array(np.array(50_000_000, np.int64), "n"),
                               numpy_helper.from_array(np.array([1], np.int64), "one")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "grow.onnx")
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    command = [sys.executable, "-m", "edgemed.cli", "run", str(tmp_path / "grow.onnx"), str(tmp_path / "x.npy")]
    assert subprocess.run(command, capture_output=True, timeout=120).returncode == 0
    capped = subprocess.run(command, capture_output=True, timeout=120,
                            env={**os.environ, "EDGEMED_MAX_ENGINE_MB": "64"})
    assert capped.returncode == 1 and b"Traceback" not in capped.stderr
    assert b"needed more memory than onnxruntime may hold in this process (64 MB" in capped.stderr
    assert b"EDGEMED_MAX_ENGINE_MB" in capped.stderr


def test_a_load_past_its_deadline_is_given_up_in_one_line(tmp_path):
    """onnxruntime folds the Shape of a tensor of fixed shape, then every product made from it, while loading: a
    load no bound sees beforehand (docs/security.md). The caller stops waiting at EDGEMED_MAX_LOAD_S, and the CLI
    exits, which ends the engine's work (2,000 products of 2048 x 2048 matrices would take minutes)."""
    steps = 2000
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Mul", ["s", "k"], ["size"]),
             helper.make_node("ConstantOfShape", ["size"], ["m0"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1e-3]))]
    nodes += [helper.make_node("MatMul", [f"m{i}", "m0"], [f"m{i + 1}"]) for i in range(steps)]
    nodes += [helper.make_node("ReduceSum", [f"m{steps}"], ["t"], keepdims=0),
              helper.make_node("Add", ["x", "t"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(np.array([2048, 512], np.int64), "k")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "fold.onnx")
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    result = subprocess.run([sys.executable, "-m", "edgemed.cli", "run", str(tmp_path / "fold.onnx"),
                             str(tmp_path / "x.npy")], capture_output=True, timeout=120,
                            env={**os.environ, "EDGEMED_MAX_LOAD_S": "0.5"})
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert b"fold.onnx: the onnxruntime backend: loading took longer than 0.5 s" in result.stderr
    assert b"EDGEMED_MAX_LOAD_S" in result.stderr


def test_the_build_side_runs_under_the_deadline_too(tmp_path, monkeypatch):
    """export's parity and quantize's checks run onnxruntime sessions of their own: the same deadline holds."""
    from edgemed.export.pipeline import session
    from edgemed.export.quant_checks import session_for

    monkeypatch.setenv("EDGEMED_MAX_RUN_S", "0.3")
    model = onnx.load(_loop_model(tmp_path / "loop.onnx"))
    model.graph.input.pop()
    model.graph.initializer.append(numpy_helper.from_array(np.array(2**62, np.int64), "n"))
    onnx.save(model, tmp_path / "loop.onnx")
    feeds = {"x": np.zeros((1, 4), np.float32)}
    for made in (session(tmp_path / "loop.onnx"), session_for(tmp_path / "loop.onnx", 1)):
        with pytest.raises(LimitError, match="was stopped"):
            made.run(None, feeds)
