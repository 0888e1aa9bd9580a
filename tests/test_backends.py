"""Lean recurrent graphs, the OpenVINO backend (skipped without the openvino extra), NNCF int8, and the on-device
acceptance replay of bundles."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.runtime.deploy.acceptance import replay
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


def test_tune_gates_times_caches_and_bundles(exported, tmp_path):
    runner = CliRunner()
    out, cache = tmp_path / "tuned", tmp_path / "cache"
    args = ["tune", str(exported["cnn_gru"]), "--device", "host", "--out", str(out), "--cache", str(cache),
            "--runs", "5", "--threads", "1", "--max-drop", "100", "--max-class-drop", "100"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "tune.json").read_text())
    names = {c["name"] for c in report["candidates"]}
    assert {"onnxruntime fp32, 1 thread(s)", "onnxruntime int8-static, 1 thread(s)"} <= names
    for c in report["candidates"]:
        assert c["status"] in ("chosen", "passed", "rejected", "too slow", "over memory")
        assert c["status"] == "rejected" or c["p50_us"] > 0
    tuned = json.loads((out / "tuned.json").read_text())
    chosen = report["chosen"]
    assert tuned["backend"] == chosen["candidate"]["backend"] and (out / "model.tuned.onnx.sha256").is_file()
    assert EdgeModel(out / "model.tuned.onnx", require_integrity=True).spec.labels
    res = runner.invoke(cli, args)
    assert res.exit_code == 1 and "--force" in res.output  # nothing overwritten without --force
    res = runner.invoke(cli, [*args, "--force"])
    assert res.exit_code == 0 and "from the cache" in res.output, res.output
    assert json.loads((out / "tune.json").read_text())["cached"] == len(report["candidates"]) - sum(
        1 for c in report["candidates"] if c["reason"].startswith("unavailable"))
    res = runner.invoke(cli, ["bundle", "--tuned", str(out), "--device", "host", "-o", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    entry = json.loads((tmp_path / "b" / "manifest.json").read_text())["models"][0]
    assert entry["tuned"]["threads"] == 1 and entry["backend"] == tuned["backend"]


def test_tune_rejects_a_backend_that_computes_something_else(exported, tmp_path, monkeypatch):
    """A backend whose numbers drift (as onnxruntime's OpenVINO provider did on the vitals GRU) never passes."""
    from edgemed.export import tune as tune_module
    from edgemed.export.quant_data import quantization_data

    model = EdgeModel(exported["gru"])
    cal, val = quantization_data(model.spec, model.metadata.provenance, None, None)
    original = tune_module.Tuner.load

    def drifting(self, c, path):
        loaded = original(self, c, path)
        if c.graph == "basic":
            run = loaded.run
            loaded.run = lambda feeds: [run(feeds)[0] + 0.05, *run(feeds)[1:]]
        return loaded

    monkeypatch.setattr(tune_module.Tuner, "load", drifting)
    result = tune_module.tune(exported["gru"], "host", cal, val, tmp_path / "t", tmp_path / "c", max_drop=100,
                              max_class_drop=100, runs=5, threads=[1])
    basic = next(o for o in result.outcomes if o.candidate.graph == "basic")
    assert basic.status == "rejected" and basic.reason.startswith("parity")
    assert result.chosen is not None and result.chosen.candidate.graph != "basic"
