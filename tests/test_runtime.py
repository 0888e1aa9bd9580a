"""The bedside runtime: parity with PyTorch, streaming, input checks, integrity, providers, threads, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgemed.cli.main import cli
from edgemed.core.errors import InputError, ModelLoadError, ProviderError, SpecError
from edgemed.runtime.engines.providers import ProviderFallbackWarning
from edgemed.runtime.model import EdgeModel, MetadataWarning
from edgemed.train.checkpoint import load_checkpoint


def _torch(checkpoint: Path, *args: np.ndarray) -> np.ndarray:
    model, _ = load_checkpoint(checkpoint)
    with torch.no_grad():
        return model(*(torch.from_numpy(a) for a in args)).numpy()


@pytest.mark.parametrize("family,shape", [("gru", (5, 33, 6)), ("cnn_gru", (3, 2, 400)),
                                          ("cnn_gru_frames", (4, 6, 1, 32, 32))])
def test_predict_matches_pytorch(checkpoints, exported, family, shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    model = EdgeModel(exported[family], batch_size=2)  # several session calls per prediction
    pred = model.predict(x)
    np.testing.assert_allclose(pred.logits, _torch(checkpoints[family], x), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(pred.probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert pred.labels == model.labels and len(pred.predicted) == shape[0]


def test_padded_gru_batch_matches_pytorch(checkpoints, exported):
    x = np.random.default_rng(2).normal(70, 10, size=(4, 30, 6)).astype(np.float32)
    lengths = np.array([30, 5, 12, 1])
    pred = EdgeModel(exported["gru"]).predict(x, lengths=lengths)
    np.testing.assert_allclose(pred.logits, _torch(checkpoints["gru"], x, lengths), atol=1e-5, rtol=1e-4)


def test_stream_over_a_record_equals_the_whole_sequence(checkpoints, exported, mitdb):
    """A real ECG record (MIT-BIH 208, resampled to the model's 100 Hz) pushed in uneven pieces."""
    from edgemed.core.signal import resample
    from edgemed.train.data.wfdb_source import read_record

    sig, fs, _, _ = read_record(mitdb, "208", 2)
    signal = resample(sig[:, : int(fs * 20)], fs, 100.0)[None]
    model = EdgeModel(exported["cnn_gru-stream"])
    stream = model.stream(chunk=64)
    got, rng, pos = [], np.random.default_rng(0), 0
    while pos < signal.shape[2]:
        n = int(rng.integers(0, 150))
        got += stream.push(signal[:, :, pos : pos + n], sampling_rate_hz=100.0)
        pos += n
    assert len(got) == signal.shape[2] // 64 == stream.chunks_done
    original, _ = load_checkpoint(checkpoints["cnn_gru"])
    with torch.no_grad():
        for k, pred in enumerate(got):
            whole = original(torch.from_numpy(np.ascontiguousarray(signal[:, :, : 64 * (k + 1)]))).numpy()
            np.testing.assert_allclose(pred.logits, whole, atol=1e-5, rtol=1e-4)


def test_streams_per_bed_are_independent_and_reset(exported):
    model = EdgeModel(exported["gru-stream"])
    x = np.random.default_rng(3).normal(80, 10, size=(2, 12, 6)).astype(np.float32)
    bed_a, bed_b = model.stream(chunk=4), model.stream(chunk=4)
    a = [p.logits for p in bed_a.push(x[:1])]
    bed_b.push(x[1:])
    again = model.stream(chunk=4)
    b_alone = [p.logits for p in again.push(x[1:])]
    assert np.allclose(bed_b.state["h"], again.state["h"])
    assert not np.allclose(a[-1], b_alone[-1])
    bed_a.reset()
    assert bed_a.chunks_done == 0 and bed_a.buffered == 0 and not bed_a.state["h"].any()
    np.testing.assert_allclose([p.logits for p in bed_a.push(x[:1])], a)


def test_stream_refuses_a_wrong_chunk_size_and_non_streaming_models(exported):
    with pytest.raises(SpecError, match="multiple of 16"):
        EdgeModel(exported["cnn_gru-stream"]).stream(chunk=100)
    with pytest.raises(SpecError, match="not a streaming model"):
        EdgeModel(exported["cnn_gru"]).stream()
    with pytest.raises(SpecError, match="is a streaming model"):
        EdgeModel(exported["gru-stream"]).predict(np.zeros((1, 4, 6)))


def test_one_model_from_many_threads_equals_serial(exported):
    model = EdgeModel(exported["cnn_gru"], threads=1)
    inputs = [np.random.default_rng(i).normal(size=(3, 2, 160 + 16 * i)).astype(np.float32) for i in range(16)]
    serial = [model.predict(x).logits for x in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda x: model.predict(x).logits, inputs * 3))
    for k, got in enumerate(parallel):
        np.testing.assert_array_equal(got, serial[k % 16])


@pytest.mark.parametrize(
    "x,message",
    [
        (np.zeros((2, 2)), "expected 3 dimensions"),
        (np.zeros((2, 3, 400)), "axis 1 must be 2"),
        (np.zeros((2, 2, 8)), "needs at least 16"),
        (np.zeros((0, 2, 400)), "is empty"),
        (np.full((1, 2, 400), np.nan), "NaN/Inf"),
        (np.full((1, 2, 400), 1e300), "NaN/Inf"),
        (np.zeros((1, 2, 400), dtype=complex), "cannot be converted"),
        (np.array([[["a"] * 400] * 2]), "cannot be converted"),
        (np.full((1, 2, 400), 2**30), "lose precision"),
    ],
)
def test_bad_arrays_raise_input_error(exported, x, message):
    with pytest.raises(InputError, match=message):
        EdgeModel(exported["cnn_gru"]).predict(x)


def test_safe_conversions_are_accepted(exported):
    model = EdgeModel(exported["cnn_gru"])
    base = np.random.default_rng(0).normal(size=(2, 2, 160))
    ref = model.predict(base.astype(np.float32)).logits
    np.testing.assert_allclose(model.predict(base).logits, ref)  # float64 narrows to float32
    assert model.predict(np.round(base * 100).astype(np.int16)).logits.shape == (2, 5)


def test_sampling_rate_and_lengths_checks(exported):
    with pytest.raises(InputError, match="sampled at 360 Hz but the model expects 100 Hz"):
        EdgeModel(exported["cnn_gru"]).predict(np.zeros((1, 2, 160)), sampling_rate_hz=360)
    with pytest.raises(InputError, match="values must be 1..10"):
        EdgeModel(exported["gru"]).predict(np.zeros((2, 10, 6)), lengths=[10, 11])
    with pytest.raises(InputError, match="axis 'batch' is 3 here but 2"):
        EdgeModel(exported["gru"]).predict(np.zeros((2, 10, 6)), lengths=[10, 1, 2])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.integers(0, 40), min_size=0, max_size=5),
    dtype=st.sampled_from(["float32", "float64", "int32", "int64", "uint8", "bool", "float16", "complex64"]),
    nan=st.booleans(),
)
def test_predict_returns_the_right_shape_or_raises_input_error(exported, shape, dtype, nan):
    model = _hyp_model(exported)
    x = np.ones(shape, dtype=dtype)
    if nan and x.size and np.dtype(dtype).kind == "f":
        x.flat[x.size // 2] = np.nan
    try:
        pred = model.predict(x)
    except InputError:
        return
    assert pred.probabilities.shape == (shape[0], len(model.labels))
    assert np.all(np.isfinite(pred.probabilities))


_HYP: dict[str, EdgeModel] = {}


def _hyp_model(exported) -> EdgeModel:
    if "m" not in _HYP:
        _HYP["m"] = EdgeModel(exported["gru"])
    return _HYP["m"]


def test_checksum_mismatch_and_corrupt_files_are_refused(exported, tmp_path):
    copy = tmp_path / "m.onnx"
    shutil.copy(exported["gru"], copy)
    shutil.copy(str(exported["gru"]) + ".sha256", str(copy) + ".sha256")
    EdgeModel(copy)
    data = bytearray(copy.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="does not match its sidecar"):
        EdgeModel(copy)
    Path(str(copy) + ".sha256").unlink()
    (tmp_path / "t.onnx").write_bytes(exported["gru"].read_bytes()[:3000])
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        EdgeModel(tmp_path / "t.onnx")
    with pytest.raises(ModelLoadError, match="no such model file"):
        EdgeModel(tmp_path / "absent.onnx")


def test_model_without_metadata_runs_with_a_warning(exported, tmp_path):
    import onnx

    model = onnx.load(str(exported["cnn_gru"]))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.warns(MetadataWarning, match="no edgemed metadata"):
        bare = EdgeModel(tmp_path / "bare.onnx")
    assert bare.labels == tuple(f"class_{k}" for k in range(5))
    assert bare.predict(np.zeros((2, 2, 160), np.float32)).probabilities.shape == (2, 5)
    with pytest.raises(InputError, match="axis 1 must be 2"):
        bare.predict(np.zeros((2, 3, 160), np.float32))


def test_missing_provider_warns_and_strict_raises(exported):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.warns(ProviderFallbackWarning, match="CUDAExecutionProvider.*not available"):
        model = EdgeModel(exported["gru"], device="cuda")
    assert model.providers.session_providers == ["CPUExecutionProvider"]
    assert sum(model.providers.nodes["CPUExecutionProvider"].values()) > 5
    with pytest.raises(ProviderError, match="not available"):
        EdgeModel(exported["gru"], device="cuda", strict=True)


@pytest.mark.gpu
def test_cuda_matches_cpu(exported):
    x = np.random.default_rng(0).normal(size=(8, 2, 480)).astype(np.float32)
    cpu = EdgeModel(exported["cnn_gru"]).predict(x).logits
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProviderFallbackWarning)
        gpu_model = EdgeModel(exported["cnn_gru"], device="cuda")
    assert "CUDAExecutionProvider" in gpu_model.providers.nodes
    # cuDNN GRU and conv kernels use other summation orders (and TF32 where allowed): 1e-4 absolute.
    np.testing.assert_allclose(gpu_model.predict(x).logits, cpu, atol=1e-4, rtol=1e-3)


def test_runtime_path_imports_neither_torch_nor_onnx(exported):
    code = f"""
import sys, numpy as np
from edgemed.runtime.model import EdgeModel
m = EdgeModel({str(exported['cnn_gru-stream'])!r})
m.stream(chunk=16).push(np.zeros((1, 2, 64), np.float32))
EdgeModel({str(exported['gru'])!r}).predict(np.zeros((2, 5, 6)))
bad = sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'onnx'))
sys.exit(1 if bad else 0)
"""
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_batch_model_loads_only_what_it_uses(exported):
    """Loading and running a batch model exported by edgemed leaves the streaming module, the spec-from-graph
    fallback (files without metadata) and datasets' DataSpec unloaded: each costs every process that imports the
    runtime its module and dataclass compilation (benchmarks/startup.py)."""
    code = f"""
import sys, numpy as np
from edgemed.runtime.model import EdgeModel
EdgeModel({str(exported['gru'])!r}).predict(np.zeros((2, 5, 6)))
unused = ('edgemed.runtime.model.stream', 'edgemed.runtime.model.graph_spec', 'edgemed.core.spec.data')
print(sorted(m for m in unused if m in sys.modules))
from edgemed.core.spec import DataSpec  # still importable from the spec package, loaded when asked for
print(DataSpec.__module__)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["[]", "edgemed.core.spec.data"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_run_cli_with_npz_labels_csv_and_json(exported, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(6, 2, 160)).astype(np.float32), y=np.array([0, 1, 2, 3, 4, 0]))
    result = invoke("run", exported["cnn_gru"], tmp_path / "d.npz", "--out", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    assert "6 predictions" in result.output and "macro-F1" in result.output
    data = json.loads((tmp_path / "p.json").read_text())
    assert len(data["predictions"]) == 6 and data["predictions"][0]["true"] == "sinus"
    assert set(data["predictions"][0]["probabilities"]) == {"sinus", "afib", "brady", "tachy", "pvc"}
    result = invoke("run", exported["cnn_gru"], tmp_path / "d.npz", "--out", tmp_path / "p.csv")
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header == "index,id,label,true,p_sinus,p_afib,p_brady,p_tachy,p_pvc,quality"


def test_run_cli_csv_sequences_and_stream(exported, tmp_path):
    rows = ["sequence_id,time,heart_rate,spo2,resp_rate,sbp,dbp,temperature"]
    rows += [f"s{i},{t},{80 + t},97,16,120,80,37" for i in range(3) for t in range(4 + 3 * i)]
    (tmp_path / "v.csv").write_text("\n".join(rows))
    result = invoke("run", exported["gru"], tmp_path / "v.csv", "--out", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    assert [p["id"] for p in json.loads((tmp_path / "v.json").read_text())["predictions"]] == ["s0", "s1", "s2"]
    np.save(tmp_path / "sig.npy", np.random.default_rng(0).normal(size=(2, 1000)).astype(np.float32))
    result = invoke("run", exported["cnn_gru-stream"], tmp_path / "sig.npy", "--stream", "--chunk-seconds", "1",
                    "--out", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["step_samples"] == 96 and data["push_samples"] == 100 and len(data["predictions"]) == 1000 // 96


@pytest.mark.parametrize(
    "make,args,message",
    [
        (lambda p: np.save(p / "x.npy", np.zeros((2, 3, 160))), ["x.npy"], "axis 1 must be 2"),
        (lambda p: np.save(p / "x.npy", np.full((1, 2, 160), np.nan)), ["x.npy"], "NaN/Inf"),
        (lambda p: np.save(p / "x.npy", np.zeros((0, 2, 160))), ["x.npy"], "is empty"),
        (lambda p: (p / "x.npy").write_bytes(b"junk"), ["x.npy"], "not a readable .npy"),
        (lambda p: None, ["absent.npy"], "no such file"),
        (lambda p: (p / "x.txt").write_text("1"), ["x.txt"], "unsupported"),
        (lambda p: np.save(p / "x.npy", np.zeros((1, 2, 160))), ["x.npy", "--out", "o.txt"], "use a .json or .csv"),
        (lambda p: np.save(p / "x.npy", np.zeros((1, 2, 160))), ["x.npy", "--stream"], "not a streaming model"),
        (lambda p: np.save(p / "x.npy", np.zeros((1, 2, 160))), ["x.npy", "--device", "cuda", "--strict"],
         "not available"),
    ],
)
def test_run_cli_bad_input(exported, tmp_path, make, args, message):
    import onnxruntime as ort

    if "--strict" in args and "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    make(tmp_path)
    args = [str(tmp_path / a) if a.endswith((".npy", ".txt")) else a for a in args]
    result = invoke("run", exported["cnn_gru"], *args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.txt").exists()


def test_run_cli_refuses_corrupt_model(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage")
    result = invoke("run", tmp_path / "bad.onnx", tmp_path / "x.npy")
    assert result.exit_code == 1 and "not a loadable ONNX model" in result.output
    result = invoke("info", tmp_path / "bad.onnx")
    assert result.exit_code == 1 and "ONNX" in result.output


def test_repeat_signature_fast_path_still_checks_values(exported):
    model = EdgeModel(exported["cnn_gru"])
    x = np.random.default_rng(0).normal(size=(2, 2, 160)).astype(np.float32)
    first = model.predict(x).logits
    np.testing.assert_array_equal(model.predict(x.copy()).logits, first)  # same signature: fast path
    bad = x.copy()
    bad[1, 0, 7] = np.inf
    with pytest.raises(InputError, match=r"NaN/Inf value\(s\), the first in sample 1, channel 0"):
        model.predict(bad)  # where, so a file's bad reading can be found
    with pytest.raises(InputError, match="axis 1 must be 2"):
        model.predict(np.zeros((2, 3, 160), np.float32))
    np.testing.assert_allclose(model.predict(x.astype(np.float64)).logits, first)
    np.testing.assert_allclose(model.predict(np.asfortranarray(x)).logits, first)
    gru = EdgeModel(exported["gru"])
    v = np.random.default_rng(1).normal(80, 5, size=(3, 12, 6)).astype(np.float32)
    full = gru.predict(v).logits
    np.testing.assert_array_equal(gru.predict(v).logits, full)  # filled lengths reused
    assert not np.allclose(gru.predict(v, lengths=[12, 3, 5]).logits, full)


def test_stream_repeat_pushes_still_check_values(exported):
    bed = EdgeModel(exported["cnn_gru-stream"]).stream(chunk=32)
    chunk = np.random.default_rng(0).normal(size=(1, 2, 32)).astype(np.float32)
    assert len(bed.push(chunk)) == 1 and len(bed.push(chunk.copy())) == 1
    bad = chunk.copy()
    bad[0, 1, 5] = np.nan
    with pytest.raises(InputError, match=r"NaN/Inf value\(s\), the first in sample 0, channel 1"):
        bed.push(bad)
    assert bed.chunks_done == 2  # the refused push changed nothing
    with pytest.raises(InputError, match="axis 1 must be 2"):
        bed.push(np.zeros((1, 3, 32), np.float32))


def test_the_stream_fast_path_checks_values_and_logits_and_keeps_state_on_refusal(tmp_path):
    """A model whose spec has no training range takes the one-reduction path: NaN or Inf refused with nothing
    changed, huge finite values accepted (the reduction overflows, the exact check then passes them), a strided
    chunk gives what its contiguous copy gives, and logits that are not finite are refused."""
    from edgemed.core.errors import OutputError
    from edgemed.export.pipeline import export_target, target_from_model
    from edgemed.train.models import create_model

    torch.manual_seed(0)
    module = create_model("gru", input_size=4, hidden_size=8).eval()
    path = export_target(target_from_model(module, True, length=20), tmp_path / "g.onnx").path
    model = EdgeModel(path)
    assert model.spec.preprocessing.input_range is None
    bed, twin = model.stream(chunk=5), model.stream(chunk=5)
    assert bed._check.screen_only
    x = np.random.default_rng(1).normal(size=(1, 10, 4)).astype(np.float32)
    strided = x[:, ::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(bed.push(strided)[0].logits, twin.push(strided.copy())[0].logits)
    state = {k: v.copy() for k, v in bed.state.items()}
    for bad in (np.nan, np.inf):
        chunk = x[:, :5].copy()
        chunk[0, 2, 1] = bad
        with pytest.raises(InputError, match="NaN/Inf"):
            bed.push(chunk)
        assert bed.chunks_done == 1 and all(np.array_equal(state[k], v) for k, v in bed.state.items())
    assert len(bed.push(np.full((1, 5, 4), 3e19, np.float32))) == 1  # vdot overflows; the values are finite
    bed._engine_run = lambda feeds: [np.full((1, 2), np.nan, np.float32), *bed.state.values()]
    with pytest.raises(OutputError, match="NaN/Inf logit"):
        bed.push(x[:, :5].copy())
    assert bed.chunks_done == 2


def test_non_finite_values_are_located():
    """The count and the first position, so a file's missing reading can be found (any input, any rank)."""
    from edgemed.runtime.model.validate import check_finite

    x = np.zeros((2, 3, 4))
    x[1, 2, 0], x[1, 2, 3] = np.nan, -np.inf
    with pytest.raises(InputError, match=r"2 NaN/Inf value\(s\), the first at index \[1, 2, 0\]"):
        check_finite("x", x)
    check_finite("x", np.zeros(0))
