"""Export: parity at many shapes per family and exporter, metadata, streaming, foreign models, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.core.errors import ExportError, ParityError, SpecError
from edgemed.core.spec import ModelSpec
from edgemed.export.exporters import Exporter
from edgemed.export.parity import FP32_ATOL
from edgemed.export.pipeline import export_target, measure_parity, session, target_from_checkpoint
from edgemed.train.models import create_model

from conftest import RUNS


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("family", list(RUNS))
def test_torchscript_parity_at_many_shapes(checkpoints, family, tmp_path):
    result = export_target(target_from_checkpoint(checkpoints[family]), tmp_path / "m.onnx", Exporter.TORCHSCRIPT)
    report = result.parity
    assert report.passed and result.exporter == "torchscript"
    shapes = {r.shape for r in report.rows}
    assert len(shapes) >= 5
    spec = result.spec
    if family != "cnn2d":
        axis = spec.signal.shape.index(spec.sequence_axis)
        lengths = sorted({int(s.split("x")[axis]) for s in shapes})
        assert lengths[0] < lengths[-1] and any(n % 2 for n in lengths), lengths
    assert {int(s.split("x")[0]) for s in shapes} >= {1, 3}
    assert any(r.source == "generated" for r in report.rows), "parity must include data from the source"
    assert max(r.max_abs for r in report.rows) < FP32_ATOL


def test_auto_picks_torchscript_and_records_why(checkpoints, tmp_path):
    out = tmp_path / "m.onnx"
    result = invoke("export", checkpoints["gru"], "-o", out)
    assert result.exit_code == 0, result.output
    assert "exporter: torchscript (first in auto order (torchscript, dynamo) to pass parity)" in result.output
    assert "parity PASS" in result.output
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    exporter = json.loads(meta["edgemed.exporter"])
    assert exporter["name"] == "torchscript" and exporter["attempts"][0]["outcome"] == "passed parity"


def test_dynamo_parity_on_frames(checkpoints, tmp_path):
    result = export_target(target_from_checkpoint(checkpoints["cnn_gru_frames"]), tmp_path / "m.onnx",
                           Exporter.DYNAMO, opset=18)
    assert result.parity.passed and result.exporter == "dynamo"


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gru", "cnn_gru"])
def test_dynamo_parity_on_sequence_models(checkpoints, family, tmp_path):
    result = export_target(target_from_checkpoint(checkpoints[family]), tmp_path / "m.onnx", Exporter.DYNAMO, 18)
    assert result.parity.passed


@pytest.mark.parametrize("family", ["beat_cnn", "beat_ensemble"])  # the ensemble with its trees' walk
def test_dynamo_exports_a_pooled_beat_model_at_every_length(checkpoints, tmp_path, family):
    """beat_cnn pools a free length; traced as a multiple of its pooling, its graph takes odd lengths too."""
    result = export_target(target_from_checkpoint(checkpoints[family]), tmp_path / "m.onnx", Exporter.DYNAMO, 18)
    assert result.parity.passed and any(r.shape.endswith("x43") for r in result.parity.rows)


def test_exported_file_is_checked_self_contained_and_has_a_sidecar(checkpoints, tmp_path):
    out = tmp_path / "m.onnx"
    result = export_target(target_from_checkpoint(checkpoints["cnn_gru"]), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.sha256"]
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert [n.op_type for n in model.graph.node].count("GRU") == 1
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 2, "samples"]
    assert (tmp_path / "m.onnx.sha256").read_text().split()[0] == result.sha256


def test_variable_length_gru_matches_each_sequence_alone(checkpoints, tmp_path):
    out = tmp_path / "m.onnx"
    export_target(target_from_checkpoint(checkpoints["gru"]), out)
    sess = session(out)
    x = np.random.default_rng(1).normal(size=(4, 40, 6)).astype(np.float32) * 10 + 50
    lengths = np.array([40, 3, 17, 29])
    batched = sess.run(None, {"x": x, "lengths": lengths})[0]
    from edgemed.train.checkpoint import load_checkpoint

    model, _ = load_checkpoint(checkpoints["gru"])
    with torch.no_grad():
        for i, n in enumerate(lengths):
            alone = model(torch.from_numpy(x[i : i + 1, :n])).numpy()
            np.testing.assert_allclose(batched[i : i + 1], alone, atol=1e-5, rtol=1e-4)


def _flip_linear_before_reset(path: Path) -> None:
    """What the buggy exporter writes: a wrong GRU in a file sealed as edgemed seals every file."""
    from edgemed.export.onnx_io import save_model

    model = onnx.load(str(path))
    grus = [n for n in model.graph.node if n.op_type == "GRU"]
    for node in grus:
        attrs = {a.name: a for a in node.attribute}
        if "linear_before_reset" in attrs:
            attrs["linear_before_reset"].i = 1 - attrs["linear_before_reset"].i
        else:
            node.attribute.append(onnx.helper.make_attribute("linear_before_reset", 0))
    assert grus
    save_model(model, path, replace=True)


def test_parity_catches_a_corrupted_gru(checkpoints, tmp_path):
    """The bug upstream reports (pytorch#189225): a GRU whose linear_before_reset differs from PyTorch."""
    out = tmp_path / "m.onnx"
    export_target(target_from_checkpoint(checkpoints["gru"]), out)
    _flip_linear_before_reset(out)
    report = measure_parity(target_from_checkpoint(checkpoints["gru"]), session(out))
    assert not report.passed and len(report.failures) >= 5
    with pytest.raises(ParityError, match=r"batch 3, shorter, odd 3x\d+x6 logits: max abs"):
        report.raise_for_failures()
    result = invoke("verify", checkpoints["gru"], out)
    assert result.exit_code == 1 and "parity failed on" in result.output


def test_export_writes_nothing_when_parity_fails(checkpoints, tmp_path, monkeypatch):
    import edgemed.export.pipeline as pipeline

    real_export = pipeline.export_onnx

    def corrupting(*args, **kwargs):
        real_export(*args, **kwargs)
        _flip_linear_before_reset(args[3])

    monkeypatch.setattr(pipeline, "export_onnx", corrupting)
    target = target_from_checkpoint(checkpoints["gru"])
    target.exporters = (Exporter.TORCHSCRIPT,)  # keep the test fast: dynamo would be corrupted the same way
    with pytest.raises(ParityError, match="no exporter produced a model matching PyTorch"):
        export_target(target, tmp_path / "m.onnx", exporter=Exporter.AUTO)
    assert list(tmp_path.iterdir()) == []


def test_metadata_reads_back_through_onnxruntime_alone(checkpoints, tmp_path):
    out = tmp_path / "m.onnx"
    export_target(target_from_checkpoint(checkpoints["cnn_gru"]), out)
    code = f"""
import json, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'onnx'):
            raise ModuleNotFoundError(name, name=name)
sys.meta_path.insert(0, Block())
import onnxruntime as ort
from edgemed.core.spec import ModelSpec
meta = ort.InferenceSession({str(out)!r}, providers=['CPUExecutionProvider']).get_modelmeta().custom_metadata_map
print(json.dumps({{k: meta[k] for k in meta}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)
    spec = ModelSpec.from_json(meta["edgemed.spec"])
    assert spec.architecture == "cnn_gru" and spec.preprocessing.sampling_rate_hz == 100.0
    assert spec.labels == ("sinus", "afib", "brady", "tachy", "pvc")
    assert "edgemed.labels" not in meta and "edgemed.preprocessing" not in meta  # the spec holds them, once
    assert json.loads(meta["edgemed.parity"])["passed"] is True
    prov = json.loads(meta["edgemed.provenance"])
    assert prov["seed"] == 0 and prov["data"] == "synthetic-ecg" and "torch" in prov["export_packages"]
    checks = json.loads(meta["edgemed.checksums"])
    assert {"checkpoint_sha256", "data_sha256", "weights_sha256"} <= set(checks)


STREAMING = ["gru", "lstm", "rnn", "cnn_gru", "cnn_lstm", "cnn_gru_frames"]


@pytest.mark.parametrize("family", STREAMING)
def test_streaming_equals_whole_sequence_on_every_prefix(checkpoints, family, tmp_path):
    result = export_target(target_from_checkpoint(checkpoints[family], streaming=True), tmp_path / "s.onnx")
    rows = [r for r in result.parity.rows if r.case.startswith("stream")]
    assert result.parity.passed
    assert {r.case.split(",")[1].strip() for r in rows} == {"zeros state", "random state"}
    chunk_sizes = {int(r.case.split()[4].rstrip(",")) for r in rows}
    assert len(chunk_sizes) >= 2
    assert {int(r.shape.split("x")[0]) for r in rows} >= {2, 3}  # batch sizes
    assert max(r.max_abs for r in rows) <= 1e-5
    spec = result.spec.streaming
    assert spec.chunk_multiple == (16 if family.startswith("cnn_") and family != "cnn_gru_frames" else 1)
    names = [i.name for i in session(tmp_path / "s.onnx").get_inputs()]
    assert names[0] == "x" and names[-1] == ("c" if "lstm" in family else "h")


def test_streaming_spec_refuses_a_wrong_chunk_size():
    _, spec = create_model("cnn_gru", causal=True).eval().streaming_module()
    spec.streaming.check_chunk(64)
    with pytest.raises(SpecError, match="chunk of 50 along 'samples': streaming needs a positive multiple of 16"):
        spec.streaming.check_chunk(50)


@pytest.mark.parametrize(
    "config,message",
    [({"causal": False}, "only a causal cnn_gru can stream"), ({"causal": True, "kernel_size": 1}, "kernel_size")],
)
def test_streaming_refuses_models_that_cannot_stream(config, message):
    with pytest.raises(ExportError, match=message):
        create_model("cnn_gru", **config).eval().streaming_module()
    with pytest.raises(ExportError, match="bidirectional"):
        create_model("gru", bidirectional=True).eval().streaming_module()
    with pytest.raises(ExportError, match="no streaming variant"):
        create_model("cnn2d").eval().streaming_module()


class _Foreign(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(3, 8, 5, padding=2)
        self.gru = torch.nn.GRU(8, 16, batch_first=True)
        self.fc = torch.nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.conv(x)).transpose(1, 2)
        out, _ = self.gru(h, x.new_zeros(1, x.shape[0], 16))
        return self.fc(out[:, -1])


def test_foreign_torchscript_export(tmp_path):
    torch.jit.save(torch.jit.script(_Foreign().eval()), tmp_path / "ts.pt")
    args = ["export", tmp_path / "ts.pt", "--input-shape", "2,3,100", "--dynamic-axis", "0=batch",
            "--dynamic-axis", "2=samples", "--labels", "a,b,c,d", "-o", tmp_path / "ts.onnx"]
    refused = invoke(*args)  # TorchScript is a program: it runs only with the opt-in
    assert refused.exit_code == 1 and "TorchScript program" in refused.output and "--trust-pickle" in refused.output
    assert not (tmp_path / "ts.onnx").exists()
    result = invoke(*args, "--trust-pickle")
    assert result.exit_code == 0, result.output
    assert "parity PASS" in result.output and "3x3x33" in result.output
    info = invoke("info", tmp_path / "ts.onnx")
    assert "foreign:torchscript" in info.output and "labels a, b, c, d" in info.output


def test_foreign_exported_program_export(tmp_path):
    torch.ops.aten.gru.input._dispatch_cache.clear()
    program = torch.export.export(_Foreign().eval(), (torch.randn(2, 3, 100),),
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, tmp_path / "ep.pt2")
    args = ["export", tmp_path / "ep.pt2", "--input-shape", "2,3,100", "--dynamic-axis", "0=batch",
            "--labels", "a,b,c,d", "-o", tmp_path / "ep.onnx"]
    refused = invoke(*args)  # torch.export.load unpickles: it needs the same opt-in as a pickle
    assert refused.exit_code == 1 and "ExportedProgram" in refused.output and "--trust-pickle" in refused.output
    assert not (tmp_path / "ep.onnx").exists()
    result = invoke(*args, "--trust-pickle")
    assert result.exit_code == 0, result.output
    assert "exporter: dynamo" in result.output and "batch 7" in result.output
    provenance = json.loads(invoke("info", tmp_path / "ep.onnx", "--json").output)["edgemed"]["provenance"]
    assert "unpickles" in provenance["trusted_code_on_load"]["reason"]


def test_pickled_module_needs_trust_pickle(tmp_path):
    torch.save(_Foreign().eval(), tmp_path / "pickled.pt")
    args = ["export", tmp_path / "pickled.pt", "--input-shape", "2,3,50", "--dynamic-axis", "0=batch",
            "--labels", "a,b,c,d", "-o", tmp_path / "p.onnx"]
    refused = invoke(*args)
    assert refused.exit_code == 1 and "would run code from the file" in refused.output
    assert "--trust-pickle" in refused.output
    assert not (tmp_path / "p.onnx").exists()
    trusted = invoke(*args, "--trust-pickle")
    assert trusted.exit_code == 0, trusted.output


def test_foreign_model_needs_its_description(tmp_path):
    torch.jit.save(torch.jit.script(_Foreign().eval()), tmp_path / "ts.pt")
    result = invoke("export", tmp_path / "ts.pt", "--trust-pickle")
    assert result.exit_code == 1 and "give --input-shape" in result.output
    result = invoke("export", tmp_path / "ts.pt", "--input-shape", "2,3,100", "--dynamic-axis", "0=batch",
                    "--labels", "a,b", "--trust-pickle")
    assert result.exit_code == 1 and "outputs shape [2, 4], but --labels names 2 classes" in result.output


def test_verify_text_and_json(checkpoints, tmp_path):
    out = tmp_path / "m.onnx"
    export_target(target_from_checkpoint(checkpoints["cnn_gru_frames"]), out)
    text = invoke("verify", checkpoints["cnn_gru_frames"], out)
    assert text.exit_code == 0 and "parity PASS" in text.output
    data = json.loads(invoke("verify", checkpoints["cnn_gru_frames"], out, "--json").output)
    assert data["passed"] is True and len(data["rows"]) >= 6 and data["atol"] == 1e-5


def test_info_describes_the_model(checkpoints, tmp_path):
    out = tmp_path / "m.onnx"
    export_target(target_from_checkpoint(checkpoints["gru"], streaming=True), out)
    result = invoke("info", out)
    assert result.exit_code == 0, result.output
    for text in ("opsets ai.onnx 17", "GRU 2", "sidecar matches", "labels stable, deteriorating",
                 "streaming   chunks of time in multiples of 1; state h", "exporter    torchscript",
                 "parity      passed", "normalisation in the graph, window a whole stay, a reading every 300 s"):
        assert text in result.output, text
    assert json.loads(invoke("info", out, "--json").output)["parameters"] > 1000


def test_preprocessing_reads_in_words():
    from edgemed.core.spec import BandpassFilter, Window

    assert BandpassFilter(0.5, 40.0, zero_phase=False).describe() == "0.5-40 Hz, order 2, causal"
    assert Window("beat", before_s=0.25, after_s=0.4).describe() == "from 0.25 s before to 0.4 s after each beat"
    assert Window("rhythm", seconds=10).describe() == "10 s of rhythm"
    assert Window("clip", frames=8).describe() == "8 frames" and Window("image").describe() == "one image"


def _write(kind: str, tmp_path: Path, checkpoints) -> Path:
    path = tmp_path / "model.pt"
    if kind == "garbage":
        path.write_bytes(b"not a model")
    elif kind == "newer":
        torch.save({"format_version": 99, "architecture": "gru", "config": {}, "state_dict": {}}, path)
    elif kind == "architecture":
        torch.save({"format_version": 1, "architecture": "transformer", "config": {}, "state_dict": {}}, path)
    elif kind == "foreign-dict":
        torch.save({"weights": torch.ones(2)}, path)
    else:
        return checkpoints["gru"]
    return path


@pytest.mark.parametrize(
    "kind,extra,message",
    [
        ("missing", ["--opset", "17"], "no such file"),
        ("garbage", [], "not a PyTorch file"),
        ("newer", [], "format version 99 is newer"),
        ("architecture", [], "unknown model 'transformer'"),
        ("foreign-dict", [], "not an edgemed checkpoint"),
        ("ok", ["--opset", "11"], "opset 11 is outside 14..20"),
        ("ok", ["-o", "{tmp}/no/such/dir/m.onnx"], "does not exist"),
        ("ok", ["-o", "{tmp}"], "is a folder"),
        ("ok", ["--exporter", "dynamo", "--opset", "17"], "dynamo exporter needs opset >= 18"),
        ("ok-image", ["--streaming"], "no streaming variant"),
    ],
)
def test_bad_export_input(checkpoints, tmp_path, kind, extra, message):
    model = tmp_path / "absent.pt" if kind == "missing" else _write(kind, tmp_path, checkpoints)
    if kind == "ok-image":
        model = checkpoints["cnn2d"]
    outdir = tmp_path / "outs"
    outdir.mkdir()
    extra = [e.replace("{tmp}", str(outdir)) for e in extra]
    if "-o" not in extra:
        extra += ["-o", str(outdir / "m.onnx")]
    result = invoke("export", model, *extra)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert list(outdir.iterdir()) == []


def test_published_files_get_normal_permissions(checkpoints, tmp_path):
    import os
    import stat

    from edgemed.core.atomic import public_mode

    out = tmp_path / "m.onnx"
    export_target(target_from_checkpoint(checkpoints["cnn_gru_frames"]), out)
    for path in (out, tmp_path / "m.onnx.sha256", checkpoints["gru"]):
        assert stat.S_IMODE(os.stat(path).st_mode) == public_mode(), path
    assert stat.S_IMODE(os.stat(checkpoints["gru"].parent).st_mode) == public_mode(directory=True)


def test_parity_tolerance_scales_with_the_output():
    """Rounding that grows with large logits passes; a real error on a small logit beside them does not."""
    from edgemed.export.parity import ParityCase, compare

    case = ParityCase("c", {"x": np.zeros((1, 2), np.float32)})
    ref = np.array([[300.0, 0.3]])
    rounding = compare(case, ["logits"], [ref + 4e-5], [ref], 1e-5, 1e-4)
    wrong = compare(case, ["logits"], [ref + [0.0, 1e-2]], [ref], 1e-5, 1e-4)
    small = np.array([[0.5, -0.2]])
    within_one = compare(case, ["logits"], [small + 1e-4], [small], 1e-5, 1e-4)
    assert rounding[0].passed and not wrong[0].passed and not within_one[0].passed


def test_an_export_that_fixes_a_dynamic_axis_fails_as_an_attempt(checkpoints, tmp_path, monkeypatch):
    """A graph that refuses a parity shape is a failed export naming the shape, not an internal error."""
    import edgemed.export.pipeline as pipeline

    real_export = pipeline.export_onnx

    def fixing(module, args, spec, path, *rest, **kwargs):
        real_export(module, args, spec, path, *rest, **kwargs)
        model = onnx.load(str(path))
        for value, arg in zip(model.graph.input, args, strict=False):
            for dim, size in zip(value.type.tensor_type.shape.dim, arg.shape, strict=True):
                if dim.dim_param and dim.dim_param != "batch":
                    dim.dim_value = size
        onnx.save(model, str(path))

    monkeypatch.setattr(pipeline, "export_onnx", fixing)
    target = target_from_checkpoint(checkpoints["gru"])
    target.exporters = (Exporter.TORCHSCRIPT,)
    with pytest.raises(ExportError, match=r"torchscript: the exported graph does not run at x 3x\d+x6"):
        export_target(target, tmp_path / "m.onnx", exporter=Exporter.AUTO)
    assert list(tmp_path.iterdir()) == []
