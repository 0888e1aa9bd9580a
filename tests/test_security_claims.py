"""Attack suite, round 2, classes 4-8: strictness that holds, files never lost, readers that stay in their folder,
crafted metadata and settings that end in one clean error.

Each attack must fail closed: exit code 1 with a one-line `Error:` (no traceback) or a named EdgemedError, and
every file around it unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgemed.cli.main import cli
from edgemed.core.atomic import sidecar_path
from edgemed.core.errors import BundleError, DataError, EdgemedError, IntegrityError, LimitError, OverwriteError
from edgemed.core.readers.wfdb import read_record
from edgemed.export.onnx_io import _put, get_metadata, save_model
from edgemed.runtime.deploy.bundle import verify_bundle
from edgemed.runtime.model import EdgeModel

from helpers import snapshot, write_wfdb


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def failed_cleanly(result) -> bool:
    """Exit 1, a one-line `Error:` and no traceback."""
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    return result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output


def _plain_onnx(path, classes: int = 2):
    """An ONNX file no edgemed wrote (no metadata, no integrity record), with a matching sidecar."""
    weight = numpy_helper.from_array(np.ones((4, classes), "float32"), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["logits"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
                              [weight])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    path.write_bytes(data)
    sidecar_path(path).write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
    return path


def _resealed(src, dst, edit):
    """The model at `src` with its edgemed metadata edited and sealed again (anyone can reseal)."""
    model = onnx.load(str(src))
    meta = get_metadata(model)
    edit(meta)
    for key, value in meta.items():
        _put(model, "edgemed." + key, value)
    save_model(model, dst, replace=True)
    return dst


def _spec_edit(change):
    def edit(meta):
        spec = json.loads(meta["spec"])
        change(spec)
        meta["spec"] = json.dumps(spec)
    return edit


# --- class 4: denial of service ------------------------------------------------------------------------------


def test_a_huge_sidecar_is_not_read_whole(exported, tmp_path):
    path = tmp_path / "m.onnx"
    shutil.copy(exported["gru"], path)
    with open(sidecar_path(path), "wb") as f:  # 256 MB, sparse: costs no disk
        f.write(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  m.onnx\n".encode())
        f.truncate(256 * 2**20)
    with pytest.raises(LimitError, match="sidecar"):
        EdgeModel(path)
    assert failed_cleanly(invoke("info", path)) or invoke("info", path).exit_code == 0


def _slow_model(path, nodes: int = 30_000):
    """A chain of Adds: onnxruntime's optimiser takes tens of seconds on it, within every edgemed limit."""
    chain = [helper.make_node("Add", ["x" if i == 0 else f"t{i - 1}"] * 2, [f"t{i}"]) for i in range(nodes)]
    chain.append(helper.make_node("Identity", [f"t{nodes - 1}"], ["logits"]))
    graph = helper.make_graph(chain, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    path.write_bytes(data)
    sidecar_path(path).write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
    return path


def test_sigterm_ends_a_command_stuck_in_a_native_load(tmp_path):
    """Python handles signals between bytecodes only; the watchdog ends a load that would take minutes."""
    model = _slow_model(tmp_path / "slow.onnx")
    np.save(tmp_path / "x.npy", np.ones((1, 2), "float32"))
    before = snapshot(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "edgemed.cli", "run", "slow.onnx", "x.npy"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    try:
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - start < 30 and proc.returncode != 0
    assert snapshot(tmp_path) == before and model.exists()


# --- class 5: strictness that is strict -------------------------------------------------------------------------


def test_a_model_without_an_integrity_record_fails_every_strict_path(tmp_path):
    plain = _plain_onnx(tmp_path / "plain.onnx")
    np.save(tmp_path / "x.npy", np.ones((3, 4), "float32"))
    with pytest.raises(IntegrityError, match="no integrity record"):
        EdgeModel(plain, strict=True)
    assert failed_cleanly(invoke("run", plain, tmp_path / "x.npy", "--strict"))
    result = invoke("bundle", plain, "--device", "host", "-o", tmp_path / "b")
    assert failed_cleanly(result) and not (tmp_path / "b").exists()


def test_verify_fails_without_sidecar_and_record(checkpoints, exported, tmp_path):
    bare = tmp_path / "bare.onnx"
    model = onnx.load(str(exported["gru"]))
    kept = [p for p in model.metadata_props if p.key != "edgemed.integrity"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(bare))
    result = invoke("verify", checkpoints["gru"], bare)
    assert failed_cleanly(result) and "sidecar" in result.output and "integrity record" in result.output


# --- class 6: files lost or replaced ------------------------------------------------------------------------------


def test_a_file_created_at_the_output_while_export_runs_is_kept(checkpoints, tmp_path, monkeypatch):
    from edgemed.export import pipeline

    out = tmp_path / "m.onnx"
    real = pipeline.measure_parity

    def meanwhile(*args, **kwargs):
        out.write_text("someone else's file")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "measure_parity", meanwhile)
    result = invoke("export", checkpoints["gru"], "-o", out)
    assert failed_cleanly(result) and "appeared" in result.output
    assert out.read_text() == "someone else's file" and not sidecar_path(out).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_export_never_replaces_its_own_parity_data(tmp_path):
    from edgemed.train.data import load_data

    data = tmp_path / "train.npz"
    ds = load_data("synthetic-vitals", seed=0, options={"samples": 40})
    np.savez(data, X=ds.X, y=ds.y, lengths=ds.lengths)
    assert invoke("train", "--model", "gru", "--data", data, "--epochs", "1", "--out", tmp_path / "run",
                  "-c", "hidden_size=8").exit_code == 0
    before = data.read_bytes()
    result = invoke("export", tmp_path / "run" / "model.pt", "-o", data, "--force")
    assert failed_cleanly(result) and "is the input" in result.output and data.read_bytes() == before


def test_quantize_refuses_two_outputs_at_one_path(exported, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(exported["gru"], model)
    shutil.copy(sidecar_path(exported["gru"]), sidecar_path(model))
    before = snapshot(tmp_path)
    result = invoke("quantize", model, "--mode", "dynamic", "-o", tmp_path / "x.onnx", "--json", tmp_path / "x.onnx")
    assert failed_cleanly(result) and "same file" in result.output and snapshot(tmp_path) == before
    result = invoke("quantize", model, "--mode", "dynamic", "-o", tmp_path / "m.onnx.sha256", "--force")
    assert failed_cleanly(result) and snapshot(tmp_path) == before


@pytest.mark.parametrize("foreign", ["notes.txt", "sub/"])
def test_bundle_force_removes_only_what_a_bundle_wrote(exported, tmp_path, foreign):
    out = tmp_path / "bundle"
    assert invoke("bundle", exported["gru"], "--device", "host", "-o", out).exit_code == 0
    if foreign.endswith("/"):
        (out / foreign).mkdir()
        (out / foreign / "keep.txt").write_text("mine")
    else:
        (out / foreign).write_text("mine")
    before = snapshot(tmp_path)
    result = invoke("bundle", exported["gru"], "--device", "host", "-o", out, "--force")
    assert failed_cleanly(result) and "did not write" in result.output and snapshot(tmp_path) == before


def test_bundle_force_replaces_a_clean_earlier_bundle(exported, tmp_path):
    out = tmp_path / "bundle.zip"
    assert invoke("bundle", exported["gru"], "--device", "host", "-o", out).exit_code == 0
    assert invoke("bundle", exported["gru"], "--device", "host", "-o", out).exit_code == 1
    assert invoke("bundle", exported["gru"], "--device", "host", "-o", out, "--force").exit_code == 0
    verify_bundle(out)


# --- class 7: readers ---------------------------------------------------------------------------------------------


def test_a_wfdb_signal_file_linking_out_of_its_folder_is_refused(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    base = write_wfdb(folder, "r1", np.zeros((1, 400)), 200.0, ["MLII"])
    secret = tmp_path / "elsewhere.dat"
    secret.write_bytes((folder / "r1.dat").read_bytes())
    (folder / "r1.dat").unlink()
    (folder / "r1.dat").symlink_to(secret)
    with pytest.raises(DataError, match="outside the record folder"):
        read_record(base)
    (folder / "r1.dat").unlink()
    shutil.copy(secret, folder / "data.bin")
    (folder / "r1.dat").symlink_to(folder / "data.bin")  # a link inside the folder is fine
    assert read_record(base).signal.shape == (1, 400)


@pytest.mark.parametrize("edit, message", [
    (lambda h: h.replace("r1.dat 16", "r1.dat 16+99999999999999999999"), "byte offset"),
    (lambda h: h.replace("r1.dat 16", "r1.dat 16+9999999"), "beyond the file"),
    (lambda h: h.replace("200/mV", "200(" + "9" * 5000 + ")/mV"), "baseline"),
    (lambda h: h.replace("200/mV", "200(99999999999)/mV"), "baseline"),
])
def test_wfdb_headers_with_absurd_offsets_or_baselines_are_refused(tmp_path, edit, message):
    base = write_wfdb(tmp_path, "r1", np.zeros((1, 400)), 200.0, ["MLII"])
    header = tmp_path / "r1.hea"
    header.write_text(edit(header.read_text()))
    with pytest.raises(DataError, match=message):
        read_record(base)


def _twin_zip(path, names):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in names:
            z.writestr(name, b"x")
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("names", [("Model.onnx", "model.onnx"),
                                   (unicodedata.normalize("NFC", "é.onnx"), unicodedata.normalize("NFD", "é.onnx")),
                                   ("ﬁle.onnx", "file.onnx")])
def test_bundle_names_that_differ_only_in_case_or_unicode_form_are_refused(tmp_path, names):
    with pytest.raises(BundleError, match="differ only in case or Unicode"):
        verify_bundle(_twin_zip(tmp_path / "twins.zip", names))


# --- class 8: crafted metadata and settings end in one clean error -----------------------------------------------


@pytest.mark.parametrize("version", ["²", "9" * 5000, "-1", "1e3", ""])
def test_crafted_format_versions_read_as_unknown(exported, tmp_path, version):
    path = _resealed(exported["gru"], tmp_path / "fv.onnx", lambda m: m.__setitem__("format_version", version))
    assert EdgeModel(path).metadata.format_version == 0
    assert invoke("info", path).exit_code == 0


@pytest.mark.parametrize("change, message", [
    (lambda s: s["preprocessing"].update(resize=[1e400, 3]), "resize"),
    (lambda s: s["preprocessing"].update(sampling_rate_hz=1e400), "sampling_rate_hz"),
    (lambda s: s.update(version=10**400), "spec version"),
    (lambda s: s["inputs"][0].update(shape=["batch", 2**40, 6]), "dimension"),
    (lambda s: s["inputs"][0].update(shape=["batch", 2**25, 2**25]), "EDGEMED_MAX_ARRAY_MB"),
    (lambda s: s["calibration"].update(temperature=float("nan")), "temperature"),
    (lambda s: s.update(labels=["a", "b", "c"]), "3 labels"),
    (lambda s: s["preprocessing"].update(normalization=_runtime_norm(3, -1)), "3 means along axis -1"),
    (lambda s: s["preprocessing"].update(normalization=_runtime_norm(6, 1)), "has 'time'"),
    (lambda s: s["preprocessing"].update(normalization=_runtime_norm(6, 3)), "axis 3 is outside the 3 axes"),
])
def test_crafted_specs_are_refused_in_one_line(exported, tmp_path, change, message):
    path = _resealed(exported["gru"], tmp_path / "s.onnx", _spec_edit(change))
    with pytest.raises(EdgemedError, match=message):
        EdgeModel(path)
    np.save(tmp_path / "x.npy", np.zeros((2, 96, 6), "float32"))
    assert failed_cleanly(invoke("run", path, tmp_path / "x.npy"))


def _runtime_norm(channels: int, axis: int) -> dict:
    return {"mean": [0.5] * channels, "std": [2.0] * channels, "axis": axis, "applied_in": "runtime"}


def test_runtime_normalization_is_applied_once_before_the_graph(exported, tmp_path):
    """A spec that leaves normalisation to the runtime (a foreign model's) gets it there: the same logits as the
    plain model on (x - mean) / std, along the axis the spec names (counted from either end)."""
    x = np.random.default_rng(0).normal(size=(3, 40, 6)).astype(np.float32)
    expected = EdgeModel(exported["gru"]).predict((x - 0.5) / 2.0).logits
    for axis in (-1, 2):
        change = _spec_edit(lambda s, axis=axis: s["preprocessing"].update(normalization=_runtime_norm(6, axis)))
        model = EdgeModel(_resealed(exported["gru"], tmp_path / f"n{axis}.onnx", change))
        np.testing.assert_allclose(model.predict(x).logits, expected, rtol=1e-6, atol=1e-6)


def test_a_streaming_state_of_2_50_elements_is_refused(exported, tmp_path):
    def huge_state(spec):
        spec["streaming"]["state_inputs"][0]["shape"] = [2**25, "batch", 2**25]
    path = _resealed(exported["gru-stream"], tmp_path / "st.onnx", _spec_edit(huge_state))
    with pytest.raises(EdgemedError, match="tensor 'h'.*EDGEMED_MAX_ARRAY_MB"):
        EdgeModel(path)


@pytest.mark.parametrize("variable", ["EDGEMED_MAX_MODEL_MB", "EDGEMED_MAX_ARRAY_MB", "EDGEMED_MAX_THREADS_PER_CORE",
                                      "EDGEMED_MAX_METADATA_MB", "EDGEMED_MAX_GRAPH_NODES"])
@pytest.mark.parametrize("value", ["inf", "nan", "-1", "1e400"])
def test_limit_variables_set_to_nonsense_fail_cleanly(exported, tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    np.save(tmp_path / "x.npy", np.zeros((2, 96, 6), "float32"))
    result = invoke("run", exported["gru"], tmp_path / "x.npy")
    assert failed_cleanly(result) and variable in result.output


def _bundle_files(exported, tmp_path):
    out = tmp_path / "b"
    assert invoke("bundle", exported["gru"], "--device", "host", "-o", out).exit_code == 0
    return out


def _rewrite_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_verify_bundle_run_with_an_unlisted_reference_fails_cleanly(exported, tmp_path):
    out = _bundle_files(exported, tmp_path)
    _rewrite_manifest(out, lambda m: m["models"][0].update(reference="other.npz"))
    result = invoke("verify-bundle", out, "--run")
    assert failed_cleanly(result) and "not a file the manifest lists" in result.output


def test_verify_bundle_run_with_a_reference_without_logits_fails_cleanly(exported, tmp_path):
    out = _bundle_files(exported, tmp_path)
    buf = io.BytesIO()
    np.savez(buf, in_x=np.zeros((1, 96, 6), "float32"))
    (out / "gru.reference.npz").write_bytes(buf.getvalue())

    def relist(m):
        m["files"]["gru.reference.npz"] = hashlib.sha256(buf.getvalue()).hexdigest()
    _rewrite_manifest(out, relist)
    result = invoke("verify-bundle", out, "--run")
    assert failed_cleanly(result) and "not a reference file" in result.output


@pytest.mark.parametrize("change", [lambda t: t.pop("precision"), lambda t: t.update(backend=["x"]),
                                    lambda t: t.update(threads=10**400), lambda t: t.update(file="../m.onnx")])
def test_bundle_tuned_with_a_crafted_tuned_json_fails_cleanly(exported, tmp_path, change):
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    shutil.copy(exported["gru"], tuned / "model.tuned.onnx")
    shutil.copy(sidecar_path(exported["gru"]), sidecar_path(tuned / "model.tuned.onnx"))
    record = {"schema": "edgemed.tuned/1", "file": "model.tuned.onnx", "backend": "onnxruntime", "precision": "fp32",
              "threads": 1, "graph_optimization": "all"}
    change(record)
    (tuned / "tuned.json").write_text(json.dumps(record, default=str))
    result = invoke("bundle", "--tuned", tuned, "--device", "host", "-o", tmp_path / "out")
    assert failed_cleanly(result) and not (tmp_path / "out").exists()


def test_overwrite_error_is_an_edgemed_error():
    assert issubclass(OverwriteError, EdgemedError)
    assert os.name == "posix"


def test_every_limit_is_in_the_security_page():
    """The limits table in docs/security.md names every limit variable."""
    from edgemed.core.limits import LIMITS

    page = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text()
    documented = {name.strip(" `") for line in page.splitlines() if line.startswith("|") and "EDGEMED_" in line
                  for name in line.split("|")[3].split("/")}
    assert {spec.env for spec in LIMITS.values()} <= documented
