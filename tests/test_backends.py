"""Lean recurrent graphs, the OpenVINO backend (skipped without the openvino extra), NNCF int8, and the on-device
acceptance replay of bundles."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.runtime.acceptance import replay
from edgemed.runtime.model import EdgeModel


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


needs_openvino = pytest.mark.skipif(not _has_openvino(), reason="needs the openvino extra")


@pytest.mark.parametrize("family", ["gru", "lstm", "rnn"])
def test_recurrent_exports_read_the_native_ops_final_state(exported, family):
    graph = onnx.load(str(exported[family])).graph
    ops = [n.op_type for n in graph.node]
    op = {"gru": "GRU", "lstm": "LSTM", "rnn": "RNN"}[family]
    rnn = [n for n in graph.node if n.op_type == op]
    assert rnn and all(len(n.input) >= 5 and n.input[4] for n in rnn)  # sequence_lens fed
    assert "GatherElements" not in ops and "Gather" not in ops  # read out through Y_h, no gather from Y
    model = EdgeModel(exported[family])
    x = np.random.default_rng(0).standard_normal((3, 20, model.spec.signal.shape[2])).astype(np.float32)
    lengths = np.array([20, 5, 1])
    padded = model.predict(x, lengths=lengths).logits
    alone = np.concatenate([model.predict(x[i : i + 1, : lengths[i]]).logits for i in range(3)])
    np.testing.assert_allclose(padded, alone, atol=1e-5)  # padding never leaks into the result


@needs_openvino
def test_openvino_backend_matches_onnxruntime_where_it_is_right(exported):
    for family in ("cnn_gru", "cnn2d", "beat_cnn"):
        ort_model, ov_model = EdgeModel(exported[family]), EdgeModel(exported[family], backend="openvino")
        from edgemed.core.examples import example_inputs, example_sizes

        feeds = example_inputs(ort_model.spec, example_sizes(ort_model.spec, 3), seed=1)
        signal = feeds.pop(ort_model.spec.signal.name)
        context = {k: v for k, v in feeds.items() if k != (ort_model.spec.lengths.name if ort_model.spec.lengths
                                                           else None)}
        a = ort_model.predict(signal, **context).logits
        b = ov_model.predict(signal, **context).logits
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)
        assert "OpenVINO" in ov_model.providers.summary()


@needs_openvino
def test_openvino_stateful_stream_equals_onnxruntime_stream(exported):
    path = exported["gru-stream"]
    x = np.random.default_rng(2).standard_normal((2, 12, EdgeModel(path).spec.signal.shape[2])).astype(np.float32)
    a = [p.logits for p in EdgeModel(path).stream(chunk=3, batch=2).push(x)]
    stream = EdgeModel(path, backend="openvino").stream(chunk=3, batch=2)
    b = [p.logits for p in stream.push(x)]
    np.testing.assert_allclose(np.stack(b), np.stack(a), atol=1e-5)
    stream.reset()
    np.testing.assert_allclose(stream.push(x[:, :3])[0].logits, a[0], atol=1e-5)


@needs_openvino
def test_nncf_int8_passes_the_gate_and_runs_on_both_backends(exported, tmp_path):
    from edgemed.export.quant_data import quantization_data
    from edgemed.export.quantize import QuantEngine, QuantMode, quantize

    model = EdgeModel(exported["cnn_gru"])
    cal, val = quantization_data(model.spec, model.metadata.provenance, None, None)
    result = quantize(exported["cnn_gru"], tmp_path / "n.onnx", QuantMode.STATIC, cal, val, max_drop=100,
                      engine=QuantEngine.NNCF)
    assert result.report.verdict == "passed" and result.report.graph_passes["nncf"]["engine"] == "nncf"
    x = val.x[:4]
    a = EdgeModel(result.path).predict(x).probabilities
    b = EdgeModel(result.path, backend="openvino").predict(x).probabilities
    assert a.shape == b.shape and np.abs(a - b).max() < 0.2


def test_bundle_replays_its_reference_outputs(exported, tmp_path):
    runner = CliRunner()
    bundle = tmp_path / "b"
    res = runner.invoke(cli, ["bundle", str(exported["beat_cnn"]), str(exported["gru-stream"]), "--device", "cpu",
                              "-o", str(bundle)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert all(m["reference"] for m in manifest["models"])
    res = runner.invoke(cli, ["verify-bundle", str(bundle), "--run"])
    assert res.exit_code == 0 and res.output.count("replayed") == 2, res.output
    # another device computing something else: the stored outputs no longer match what this one computes
    model = EdgeModel(bundle / exported["beat_cnn"].name)
    ref = dict(np.load(bundle / manifest["models"][0]["reference"]))
    ref["logits"] = ref["logits"] + 0.01 * np.abs(ref["logits"]).max() + 0.01
    np.savez(tmp_path / "other.npz", **ref)
    result = replay(model, tmp_path / "other.npz")
    assert not result.passed and "allowed" in result.describe()
    # a tampered reference file is caught by the manifest's checksums before anything runs
    (bundle / manifest["models"][0]["reference"]).write_bytes((tmp_path / "other.npz").read_bytes())
    res = runner.invoke(cli, ["verify-bundle", str(bundle), "--run"])
    assert res.exit_code == 1 and "was altered" in res.output
