"""The attack suite: crafted bundles, tampered models, files that run code on load, buffer reuse, swapped columns,
overwrites, interrupted writes, absurd inputs and resource exhaustion.

Every attack must fail closed: a clear EdgemedError (or exit 1 without a traceback), nothing written, and every
existing file in the surrounding folder unchanged (`snapshot` before and after).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.core.errors import (
    BundleError,
    CheckpointError,
    DataError,
    EdgemedError,
    InputError,
    IntegrityError,
    LimitError,
    OutputError,
    UnsafeFileError,
)
from edgemed.export.onnx_io import save_model
from edgemed.runtime.deploy.bundle import load_bundle, make_bundle, verify_bundle
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.onnx.integrity import IntegrityWarning

from helpers import snapshot, write_wfdb


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder holding a deployed model, a neighbour file and the attacker's drop zone; temporary folders are
    created inside it too, so the snapshot also proves they were removed."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    (tmp_path / "deployed").mkdir()
    (tmp_path / "deployed" / "model.onnx").write_bytes(b"the model in service")
    (tmp_path / "notes.txt").write_text("do not touch")
    return tmp_path


def _fails_closed(site: Path, action, error=EdgemedError, match: str | None = None):
    before = snapshot(site)
    with pytest.raises(error, match=match):
        action()
    assert snapshot(site) == before


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in members:
            z.writestr(info, data)
    return path


@pytest.fixture(scope="module")
def bundle_members(exported, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("b") / "good.zip"
    make_bundle([exported["gru"]], "host", out)
    with zipfile.ZipFile(out) as z:
        return {n: z.read(n) for n in z.namelist()}


# --- crafted bundles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../deployed/model.onnx", "/tmp/abs.onnx", "sub/../../x.onnx", "..\\evil.onnx",
                                  "C:/evil.onnx", "folder/model.onnx"])
def test_bundle_member_paths_cannot_escape(site, bundle_members, name):
    evil = _zip(site / "evil.zip", [*bundle_members.items(), (name, b"payload")])
    _fails_closed(site, lambda: verify_bundle(evil), BundleError, "not a plain file name")
    _fails_closed(site, lambda: load_bundle(evil), BundleError)
    result = invoke("verify-bundle", evil)
    assert result.exit_code == 1 and "refused" in result.output and "Traceback" not in result.output


def test_bundle_symlink_member_and_duplicates_are_refused(site, bundle_members):
    link = zipfile.ZipInfo("gru.onnx.sha256")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    members = [(n, d) for n, d in bundle_members.items() if n != "gru.onnx.sha256"] + [(link, b"../deployed")]
    evil = _zip(site / "link.zip", members)
    _fails_closed(site, lambda: verify_bundle(evil), BundleError, "link, folder or device")
    dup = _zip(site / "dup.zip", [*bundle_members.items(), ("gru.onnx", b"second copy")])
    _fails_closed(site, lambda: verify_bundle(dup), BundleError, "duplicate member")


def test_zip_member_whose_local_name_is_not_utf8_is_refused(site, bundle_members):
    """The local header (not the central directory) flags its name UTF-8 and holds bytes that are not."""
    data = bytearray(_zip(site / "names.zip", list(bundle_members.items())).read_bytes())
    assert data[:4] == b"PK\x03\x04"
    flags = int.from_bytes(data[6:8], "little") | 0x800
    data[6:8] = flags.to_bytes(2, "little")
    data[30] = 0x9C  # the first byte of the first member's name
    (site / "names.zip").write_bytes(bytes(data))
    _fails_closed(site, lambda: verify_bundle(site / "names.zip"), BundleError, "cannot be read")


def test_archive_whose_central_name_is_not_utf8_is_refused(site, checkpoints):
    """torch.save's archive with a central-directory name flagged UTF-8 that is not: one line, exit 1."""
    from edgemed.train.checkpoint import read_checkpoint

    data = bytearray(Path(checkpoints["gru"]).read_bytes())
    at = data.find(b"PK\x01\x02")
    data[at + 8 : at + 10] = (int.from_bytes(data[at + 8 : at + 10], "little") | 0x800).to_bytes(2, "little")
    data[at + 46] = 0x9C
    crafted = site / "names.pt"
    crafted.write_bytes(bytes(data))
    result = invoke("export", crafted, "-o", site / "out.onnx")
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "internal error" not in result.output
    assert not (site / "out.onnx").exists()
    with pytest.raises(CheckpointError, match="damaged archive"):
        read_checkpoint(crafted)


def test_zip_bomb_and_member_count_are_bounded(site, bundle_members, monkeypatch):
    bomb = _zip(site / "bomb.zip", [*bundle_members.items(), ("big.bin", bytes(50 * 2**20))])
    _fails_closed(site, lambda: verify_bundle(bomb), BundleError, "zip bomb")
    monkeypatch.setenv("EDGEMED_MAX_BUNDLE_FILES", "3")
    _fails_closed(site, lambda: verify_bundle(site / "bomb.zip"), LimitError, "EDGEMED_MAX_BUNDLE_FILES")


def test_symlink_inside_a_bundle_folder_is_refused(site, exported):
    folder = site / "bundle"
    make_bundle([exported["gru"]], "host", folder)
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(site / "notes.txt")
    _fails_closed(site, lambda: verify_bundle(folder), BundleError, "symbolic link")


def test_bundle_without_sidecars_or_with_an_unlisted_file_is_refused(site, bundle_members):
    no_sidecar = _zip(site / "ns.zip", [(n, d) for n, d in bundle_members.items() if n != "gru.onnx.sha256"])
    _fails_closed(site, lambda: verify_bundle(no_sidecar), BundleError, "gru.onnx.sha256 is missing")
    extra = _zip(site / "extra.zip", [*bundle_members.items(), ("run.sh", b"rm -rf /")])
    _fails_closed(site, lambda: verify_bundle(extra), BundleError, "run.sh not listed")


# --- tampered models and manifests -------------------------------------------------------------------------


def _tampered(src: Path, dst: Path, edit) -> Path:
    """Apply `edit` to the ONNX model and write it with a recomputed sidecar, as an attacker would."""
    import hashlib

    model = onnx.load(str(src))
    edit(model)
    data = model.SerializeToString()
    dst.write_bytes(data)
    dst.with_name(dst.name + ".sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {dst.name}\n")
    return dst


def _bump_weight(model):
    init = model.graph.initializer[0]
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 0.5
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))


def _relabel(model):
    for p in model.metadata_props:
        if p.key == "edgemed.labels":
            p.value = json.dumps(["deteriorating", "stable"])
        if p.key == "edgemed.spec":
            spec = json.loads(p.value)
            spec["labels"] = ["deteriorating", "stable"]
            p.value = json.dumps(spec)


def _rewrite_provenance(model):
    for p in model.metadata_props:
        if p.key == "edgemed.provenance":
            p.value = json.dumps({**json.loads(p.value), "data": "a dataset it never saw"})


@pytest.mark.parametrize("edit,message", [(_bump_weight, "weights differ"), (_relabel, "graph or metadata"),
                                          (_rewrite_provenance, "graph or metadata")],
                         ids=["weights", "labels", "provenance"])
def test_tampered_model_with_a_matching_sidecar_is_refused(site, exported, edit, message):
    bad = _tampered(exported["gru"], site / "deployed" / "t.onnx", edit)
    _fails_closed(site, lambda: EdgeModel(bad), IntegrityError, message)
    assert "FAILED" in invoke("info", bad).output
    for args in (["quantize", bad, "--mode", "fp16", "-o", site / "q.onnx"],
                 ["bundle", bad, "--device", "host", "-o", site / "b.zip"]):
        before = snapshot(site)
        result = invoke(*args)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert snapshot(site) == before


def test_missing_sidecar_warns_and_strict_or_bundle_refuses(site, exported):
    bare = site / "deployed" / "bare.onnx"
    shutil.copy(exported["gru"], bare)
    with pytest.warns(IntegrityWarning, match="no bare.onnx.sha256 sidecar"):
        EdgeModel(bare)
    _fails_closed(site, lambda: EdgeModel(bare, strict=True), IntegrityError, "sidecar")
    _fails_closed(site, lambda: make_bundle([bare], "host", site / "b"), BundleError, "sidecar")


def test_symlinked_model_is_still_checked(site, exported):
    real = _tampered(exported["gru"], site / "deployed" / "real.onnx", _bump_weight)
    (site / "link.onnx").symlink_to(real)
    _fails_closed(site, lambda: EdgeModel(site / "link.onnx"), IntegrityError, "weights differ")


def test_resealed_model_passes_alone_but_not_in_a_signed_bundle(site, exported):
    keys = site / "keys"
    keys.mkdir()
    assert invoke("keygen", keys / "k").exit_code == 0
    signed = site / "signed.zip"
    assert invoke("bundle", exported["gru"], "--device", "host", "-o", signed, "--sign", keys / "k.key").exit_code == 0
    assert "signature valid" in invoke("verify-bundle", signed, "--key", keys / "k.pub").output
    # An attacker rewrites the model, reseals it with edgemed's own code and re-hashes the manifest.
    with zipfile.ZipFile(signed) as z:
        members = {n: z.read(n) for n in z.namelist()}
    model = onnx.load_from_string(members["gru.onnx"])
    _bump_weight(model)
    work = site / "work"
    work.mkdir()
    save_model(model, work / "gru.onnx")
    members["gru.onnx"] = (work / "gru.onnx").read_bytes()
    members["gru.onnx.sha256"] = (work / "gru.onnx.sha256").read_bytes()
    manifest = json.loads(members["manifest.json"])
    import hashlib

    for name in ("gru.onnx", "gru.onnx.sha256"):
        manifest["files"][name] = hashlib.sha256(members[name]).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    forged = _zip(site / "forged.zip", list(members.items()))
    # consistent without a key, yet it carries a signature: unchecked, it must not pass as fine
    _fails_closed(site, lambda: verify_bundle(forged), BundleError, "signed, but no key")
    result = invoke("verify-bundle", forged)
    assert result.exit_code == 1 and "--key" in result.output and "OK" not in result.output
    _fails_closed(site, lambda: verify_bundle(forged, key=keys / "k.pub"), BundleError, "signature does not match")
    _fails_closed(site, lambda: load_bundle(forged, key=keys / "k.pub"), BundleError, "signature")
    other = site / "other"
    assert invoke("keygen", other).exit_code == 0
    _fails_closed(site, lambda: verify_bundle(signed, key=site / "other.pub"), BundleError, "another key")
    unsigned = site / "unsigned.zip"
    make_bundle([exported["gru"]], "host", unsigned)
    _fails_closed(site, lambda: verify_bundle(unsigned, key=keys / "k.pub"), BundleError, "not signed")


def test_altered_manifest_entry_is_caught_by_the_model_checks(site, bundle_members):
    members = dict(bundle_members)
    manifest = json.loads(members["manifest.json"])
    manifest["files"]["gru.onnx"] = "0" * 64
    members["manifest.json"] = json.dumps(manifest).encode()
    bad = _zip(site / "m.zip", list(members.items()))
    _fails_closed(site, lambda: verify_bundle(bad), BundleError, "gru.onnx was altered")


# --- files that run code on load ---------------------------------------------------------------------------


class Payload:
    """Unpickling this writes a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_pickled_payload_never_runs_without_opt_in(site):
    marker = site / "pwned.txt"
    evil = site / "model.pt"
    torch.save({"format_version": 1, "architecture": "gru", "config": {}, "state_dict": {}, "x": Payload(str(marker))},
               evil)
    from edgemed.train.checkpoint import read_checkpoint

    _fails_closed(site, lambda: read_checkpoint(evil), UnsafeFileError, "pathlib.*would run their code")
    for extra in ([], ["--input-shape", "1,4", "--dynamic-axis", "0=batch", "--labels", "a,b"]):
        before = snapshot(site)
        result = invoke("export", evil, "-o", site / "out.onnx", *extra)
        assert result.exit_code == 1 and "refused" in result.output and "Traceback" not in result.output
        assert snapshot(site) == before
    assert not marker.exists()


class _WithState(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(2, 4))

    def forward(self, x):
        return x @ self.weight.t()

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        self.weight = state[0]
        self.training = state[1]
        print("code ran while loading")


def test_torchscript_with_custom_setstate_needs_opt_in(site):
    path = site / "ts.pt"
    torch.jit.save(torch.jit.script(_WithState()), path)
    args = ["export", path, "--input-shape", "2,4", "--dynamic-axis", "0=batch", "--labels", "a,b", "-o",
            site / "ts.onnx"]
    before = snapshot(site)
    code = f"from edgemed.cli.main import cli; cli({[str(a) for a in args]!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1 and "__setstate__" in proc.stderr and "--trust-pickle" in proc.stderr
    assert "code ran while loading" not in proc.stdout and "Traceback" not in proc.stderr
    assert snapshot(site) == before
    trusted = invoke(*args, "--trust-pickle")
    assert trusted.exit_code == 0, trusted.output
    prov = json.loads(invoke("info", site / "ts.onnx", "--json").output)["edgemed"]["provenance"]
    assert "__setstate__" in prov["trusted_code_on_load"]["reason"]


# --- silent wrong answers ----------------------------------------------------------------------------------


def test_streamer_keeps_its_own_copy_of_a_reused_buffer(exported):
    model = EdgeModel(exported["cnn_gru-stream"])
    signal = np.random.default_rng(0).normal(size=(1, 2, 16 * 20)).astype(np.float32)
    reference = [p.logits for p in model.stream(chunk=32).push(signal)]
    bed, buffer, got = model.stream(chunk=32), np.empty((1, 2, 24), np.float32), []
    for start in range(0, signal.shape[2], 24):
        piece = signal[:, :, start : start + 24]
        buffer[:, :, : piece.shape[2]] = piece
        got += [p.logits for p in bed.push(buffer[:, :, : piece.shape[2]])]
        buffer[:] = 1e3  # the caller reuses (and scribbles over) its buffer
    np.testing.assert_allclose(np.concatenate(got), np.concatenate(reference[: len(got)]), atol=1e-6)


def test_csv_columns_are_matched_by_name(exported, tmp_path):
    cols = ["heart_rate", "spo2", "resp_rate", "sbp", "dbp", "temperature"]
    rng = np.random.default_rng(0)
    values = rng.normal([80, 97, 16, 120, 80, 37], [10, 1, 2, 10, 5, 0.3], size=(4, 8, 6))

    def write(path, order):
        rows = ["sequence_id,time," + ",".join(order)]
        rows += [f"s{i},{t}," + ",".join(f"{values[i, t, cols.index(c)]:.4f}" for c in order)
                 for i in range(4) for t in range(8)]
        path.write_text("\n".join(rows) + "\n")

    write(tmp_path / "a.csv", cols)
    write(tmp_path / "b.csv", [cols[1], cols[0], *cols[2:]])  # two channels swapped
    a = json.loads(_run_json(exported["gru"], tmp_path / "a.csv", tmp_path / "a.json"))["predictions"]
    b = json.loads(_run_json(exported["gru"], tmp_path / "b.csv", tmp_path / "b.json"))["predictions"]
    assert [p["probabilities"] for p in a] == [p["probabilities"] for p in b]
    write(tmp_path / "c.csv", cols[:-1])
    result = invoke("run", exported["gru"], tmp_path / "c.csv")
    assert result.exit_code == 1 and "missing ['temperature']" in result.output
    write(tmp_path / "d.csv", [*cols, "lactate"] if False else cols)
    text = (tmp_path / "d.csv").read_text().splitlines()
    (tmp_path / "d.csv").write_text("\n".join([text[0] + ",lactate"] + [r + ",1.0" for r in text[1:]]) + "\n")
    result = invoke("run", exported["gru"], tmp_path / "d.csv")
    assert result.exit_code == 1 and "unexpected ['lactate']" in result.output


def _run_json(model, data, out) -> str:
    result = invoke("run", model, data, "--out", out)
    assert result.exit_code == 0, result.output
    return out.read_text()


def test_non_finite_logits_raise_instead_of_naming_a_label(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Log", ["x"], ["logits"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "log.onnx"))
    with pytest.warns(UserWarning):
        model = EdgeModel(tmp_path / "log.onnx")
    assert model.predict(np.ones((2, 3), np.float32)).predicted == ["class_0", "class_0"]
    with pytest.raises(OutputError, match="NaN/Inf logit"):
        model.predict(-np.ones((2, 3), np.float32))
    np.save(tmp_path / "neg.npy", -np.ones((2, 3), np.float32))
    result = invoke("run", tmp_path / "log.onnx", tmp_path / "neg.npy", "--out", tmp_path / "p.json")
    assert result.exit_code == 1 and "NaN/Inf logit" in result.output and not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("axis", [1, 2])
def test_clipping_screen_agrees_with_counting_every_channel(axis):
    """The two-count screen of `clipped_channels` gives what counting each channel gives, at and around the
    threshold, on quantised signals (ties everywhere) and on float ones."""
    from edgemed.runtime.model.plausibility import CLIP_FRACTION, CLIP_MIN_SAMPLES, clipped_channels, extremes

    rng = np.random.default_rng(axis)
    for trial in range(300):
        x = rng.normal(size=(3, 4, 200)).astype(np.float32)
        if trial % 3 == 0:
            x = np.round(x * rng.choice([2, 8, 50]))  # ADC-like: many ties
        b, c, run = rng.integers(3), rng.integers(4), int(rng.integers(0, 14))
        x[b, c, 10 : 10 + run] = x[b, c].max() if trial % 2 else x[b, c].min()
        if axis == 2:
            x = np.ascontiguousarray(x.transpose(0, 2, 1))
        mins, maxs = extremes(x, axis)
        values = np.moveaxis(x, axis, -1).reshape(3, -1, 4)
        counts = np.maximum((values == maxs[:, None, :]).sum(1), (values == mins[:, None, :]).sum(1))
        threshold = max(CLIP_MIN_SAMPLES, CLIP_FRACTION * 200)
        expected = (counts >= threshold) & (maxs > mins)
        np.testing.assert_array_equal(clipped_channels(x, axis, mins, maxs), expected)


def test_implausible_signals_are_refused_or_marked(exported):
    model = EdgeModel(exported["cnn_gru"])
    x = np.random.default_rng(0).normal(size=(4, 2, 320)).astype(np.float32) * 0.3
    assert model.predict(x).quality == [()] * 4
    with pytest.raises(InputError, match="check the units and scaling"):
        model.predict(x * 1e30)
    odd = x.copy()
    odd[0] *= 40  # out of the training range, not absurd
    odd[1, 0] = 0.0  # a flat lead
    odd[2, 1, 100:200] = odd[2, 1].max()  # a clipped lead
    quality = model.predict(odd).quality
    assert "out_of_range" in quality[0] and "flat_line" in quality[1] and "clipped" in quality[2]
    assert quality[3] == ()
    stream = EdgeModel(exported["cnn_gru-stream"]).stream(chunk=64)
    with pytest.raises(InputError, match="units and scaling"):
        stream.push(x[:1] * 1e30)
    assert stream.chunks_done == 0 and stream.buffered == 0


def test_stream_rows_have_correct_times_and_unique_ids(exported, tmp_path):
    np.save(tmp_path / "sig.npy", np.random.default_rng(0).normal(size=(2, 3000)).astype(np.float32) * 0.3)
    out = tmp_path / "s.json"
    result = invoke("run", exported["cnn_gru-stream"], tmp_path / "sig.npy", "--stream", "--chunk-seconds", "3.3",
                    "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows, step, rate = data["predictions"], data["step_samples"], data["rate_hz"]
    assert len({r["id"] for r in rows}) == len(rows) == 3000 // step
    np.testing.assert_allclose([r["end_s"] for r in rows], np.arange(1, len(rows) + 1) * step / rate)


@pytest.mark.parametrize("edit,message", [
    (lambda h: h.replace("250 3000", "1e9 3000"), "over the limit"),
    (lambda h: h.replace("250 3000", "0.0001 3000"), "not a usable rate"),
    (lambda h: h.replace("250 3000", "abc 3000"), "is not a number"),
    (lambda h: h.replace("rec.dat", "../rec.dat"), "plain file name"),
    (lambda h: h.replace("250 3000", "250 300000"), "truncated"),
    (lambda h: h.replace(" 16 200/mV", " 8 200/mV"), "format 8 is not supported"),
    (lambda h: h.replace("rec 2 ", "rec 3 "), "3 signals but 2 signal lines"),
])
def test_wfdb_headers_are_parsed_strictly(exported, tmp_path, edit, message):
    base = write_wfdb(tmp_path, "rec", np.random.default_rng(0).normal(size=(2, 3000)) * 0.3, 250.0,
                      ["lead1", "lead2"], beats=np.arange(300, 2900, 250), aux={0: "(N"})
    header = base.with_name("rec.hea")
    header.write_text(edit(header.read_text()))
    result = invoke("run", exported["cnn_gru"], base)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_corrupted_signal_data_fails_its_checksum(tmp_path):
    from edgemed.core.readers.wfdb import read_record

    base = write_wfdb(tmp_path, "rec", np.zeros((1, 100)), 250.0, ["lead1"])
    data = bytearray(base.with_name("rec.dat").read_bytes())
    data[10] ^= 0x40
    base.with_name("rec.dat").write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum"):
        read_record(base)


# --- overwrites and interruptions --------------------------------------------------------------------------


def test_no_command_overwrites_without_force(site, exported, checkpoints):
    model = site / "deployed" / "model.onnx"
    np.save(site / "x.npy", np.zeros((1, 2, 160), np.float32))
    ckpt = checkpoints["cnn_gru"]
    cases = [
        ["export", ckpt, "-o", model],
        ["quantize", exported["cnn_gru"], "--mode", "fp16", "-o", model],
        ["run", exported["cnn_gru"], site / "x.npy", "--out", site / "notes.txt"],
        ["profile", exported["gru"], "--runs", "2", "--warmup", "0", "--no-cold-start", "--json", site / "notes.txt"],
        ["bundle", exported["gru"], "--device", "host", "-o", site / "deployed"],
        ["keygen", site / "deployed" / "key"],
    ]
    (site / "deployed" / "key.pub").write_text("an existing public key")
    for args in cases:
        before = snapshot(site)
        result = invoke(*args)
        assert result.exit_code == 1 and "Traceback" not in result.output, (args, result.output)
        assert "already exists" in result.output or "not an edgemed bundle" in result.output, result.output
        assert snapshot(site) == before, args


def test_output_equal_to_an_input_is_refused_even_with_force(site, exported):
    copy = site / "m.onnx"
    shutil.copy(exported["cnn_gru"], copy)
    shutil.copy(str(exported["cnn_gru"]) + ".sha256", str(copy) + ".sha256")
    np.save(site / "x.npy", np.zeros((1, 2, 160), np.float32))
    for args in (["quantize", copy, "--mode", "fp16", "-o", copy, "--force"],
                 ["run", copy, site / "x.npy", "--out", site / "x.npy", "--force"],
                 ["bundle", copy, "--device", "host", "-o", copy, "--force"]):
        before = snapshot(site)
        result = invoke(*args)
        assert result.exit_code == 1 and "is the input" in result.output, (args, result.output)
        assert snapshot(site) == before


def test_train_overwrite_removes_only_an_earlier_run(site):
    args = ["train", "--model", "gru", "--data", "synthetic-vitals", "--samples", "40", "--epochs", "1", "-q"]
    before = snapshot(site)
    result = invoke(*args, "--out", site, "--overwrite")  # --out . : a folder edgemed did not write
    assert result.exit_code == 1 and "not an edgemed run folder" in result.output
    assert snapshot(site) == before
    run = site / "run"
    assert invoke(*args, "--out", run).exit_code == 0
    assert invoke(*args, "--out", run, "--overwrite").exit_code == 0  # an earlier run: replaced
    (run / "model.onnx").write_bytes(b"exported beside the checkpoint")
    before = snapshot(site)
    result = invoke(*args, "--out", run, "--overwrite")
    assert result.exit_code == 1 and "did not write (model.onnx)" in result.output
    assert snapshot(site) == before


def test_interrupted_export_leaves_nothing(site, checkpoints, monkeypatch):
    from edgemed.export import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "measure_parity", interrupted)
    before = snapshot(site)
    with pytest.raises(KeyboardInterrupt):
        pipeline.export_target(pipeline.target_from_checkpoint(checkpoints["gru"]), site / "m.onnx")
    assert snapshot(site) == before


def test_interrupted_model_write_keeps_the_old_pair(site, exported, monkeypatch):
    """Model and sidecar are published together: a failure between the two renames restores both."""
    from edgemed.core import atomic

    target = site / "deployed" / "pair.onnx"
    shutil.copy(exported["gru"], target)
    shutil.copy(str(exported["gru"]) + ".sha256", str(target) + ".sha256")
    before = snapshot(site)
    real_replace, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky)
    with pytest.raises(KeyboardInterrupt):
        save_model(onnx.load(str(exported["cnn_gru"])), target, replace=True)
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert snapshot(site) == before
    EdgeModel(target)


def test_sigterm_during_training_leaves_no_temporary_folder(tmp_path):
    code = ("import os, signal, threading; from edgemed.cli.main import cli; "
            "threading.Timer(4.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start(); "
            f"cli(['train', '--model', 'cnn_gru', '--data', 'synthetic-ecg', '--samples', '400', '--epochs', '50', "
            f"'--out', {str(tmp_path / 'run')!r}, '-q'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == []


# --- resource exhaustion -----------------------------------------------------------------------------------


def test_resource_limits_name_themselves(exported, tmp_path, monkeypatch):
    from edgemed.core.readers.numpy_arrays import load_npy, load_npz

    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (" + b"1, " * 20000 + b"), }"
    (tmp_path / "h.npy").write_bytes(b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header)
    with pytest.raises(LimitError, match="EDGEMED_MAX_NPY_HEADER"):
        load_npy(tmp_path / "h.npy")
    big = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100), }"
    (tmp_path / "big.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(big).to_bytes(2, "little") + big)
    with pytest.raises(LimitError, match="EDGEMED_MAX_ARRAY_MB"):
        load_npy(tmp_path / "big.npy")
    buf = io.BytesIO()
    np.save(buf, np.zeros((4000, 4000), np.float32))
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("X.npy", buf.getvalue())
    monkeypatch.setenv("EDGEMED_MAX_ZIP_RATIO", "20")  # npz members may expand 5x the bundle ratio: 100x here
    with pytest.raises(LimitError, match="zip bomb"):
        load_npz(tmp_path / "bomb.npz")
    monkeypatch.setenv("EDGEMED_MAX_CSV_ROWS", "5")
    cols = "heart_rate,spo2,resp_rate,sbp,dbp,temperature"
    (tmp_path / "v.csv").write_text(f"sequence_id,{cols}\n" + "".join(f"s,{i},1,1,1,1,1\n" for i in range(10)))
    result = invoke("run", exported["gru"], tmp_path / "v.csv")
    assert result.exit_code == 1 and "EDGEMED_MAX_CSV_ROWS" in result.output
    with pytest.raises(LimitError, match="core"):
        EdgeModel(exported["gru"], threads=100000)
    result = invoke("run", exported["gru"], tmp_path / "v.csv", "--threads", "100000")
    assert result.exit_code == 1 and "EDGEMED_MAX_THREADS_PER_CORE" in result.output


def test_onnx_claiming_huge_tensors_is_described_without_allocating(tmp_path):
    from onnx import TensorProto, helper

    init = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**20, 2**20])  # claims 4 TB, holds none
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [init])
    (tmp_path / "huge.onnx").write_bytes(helper.make_model(graph).SerializeToString())
    code = ("import tracemalloc; from edgemed.runtime.onnx.info import describe; tracemalloc.start(); "
            f"i = describe({str(tmp_path / 'huge.onnx')!r}); "
            "print(i.parameters, tracemalloc.get_traced_memory()[1])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    parameters, peak_bytes = map(int, proc.stdout.split())
    assert parameters == 2**40 and peak_bytes < 2**20
    result = invoke("run", tmp_path / "huge.onnx", tmp_path / "huge.onnx")
    assert result.exit_code == 1 and "Traceback" not in result.output


# --- every command, every kind of bad file: one line, non-zero exit, no traceback --------------------------


def _bad_files(root: Path) -> dict[str, Path]:
    (root / "empty.onnx").write_bytes(b"")
    (root / "garbage.onnx").write_bytes(b"\x08\x07garbage" * 10)
    (root / "text.npz").write_text("not a zip")
    (root / "folder").mkdir()
    (root / "garbage.pt").write_bytes(b"PK\x03\x04 truncated zip")
    return {"missing": root / "missing.onnx", "empty": root / "empty.onnx", "garbage": root / "garbage.onnx",
            "text": root / "text.npz", "folder": root / "folder", "pt": root / "garbage.pt"}


@pytest.mark.parametrize("command", ["info", "run", "profile", "quantize", "export", "verify", "bundle",
                                     "verify-bundle", "devices show"])
def test_every_command_refuses_bad_files_in_one_line(tmp_path, exported, command):
    bad = _bad_files(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 160), np.float32))
    for kind, path in bad.items():
        args = {"info": [path], "run": [path, tmp_path / "x.npy"], "profile": [path, "--no-cold-start"],
                "quantize": [path, "--mode", "fp16"], "export": [path], "verify": [path, exported["gru"]],
                "bundle": [path, "--device", "host", "-o", tmp_path / f"b-{kind}"], "verify-bundle": [path],
                "devices show": [path]}[command]
        result = invoke(*command.split(), *args)
        assert result.exit_code in (1, 2), (command, kind, result.output)
        assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, (command, kind)
        assert len(result.output.strip().splitlines()) <= 3, (command, kind, result.output)  # usage + error at most
    result = invoke("run", exported["gru"], bad["folder"])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_bundle_force_replaces_only_an_earlier_bundle(site, exported):
    for out in (site / "b", site / "b.zip"):
        make_bundle([exported["gru"]], "host", out)
        make_bundle([exported["gru"], exported["cnn_gru"]], "host", out, force=True)
        assert len(verify_bundle(out).models) == 2
    _fails_closed(site, lambda: make_bundle([exported["gru"]], "host", site / "deployed", force=True), BundleError,
                  "not an edgemed bundle")


@pytest.mark.parametrize("size", [4, 5000])  # the Python-float path for a few logits, the numpy one for many
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_outputs_refuses_any_non_finite_logit(size, bad):
    from edgemed.runtime.model import check_outputs

    logits = np.zeros((1, size), np.float32)
    assert check_outputs(logits, "m.onnx") is logits
    logits[0, size // 2] = bad
    with pytest.raises(OutputError, match="m.onnx produced 1 NaN/Inf"):
        check_outputs(logits, "m.onnx")
