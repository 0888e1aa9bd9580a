"""Fuzzing the public runtime API, the file readers, the ONNX metadata parser and bundles (hypothesis).

Only EdgemedError subclasses may escape (see fuzzing.call). `make fuzz` runs the long profile.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fuzzing import FUZZ, call
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgemed.cli.main import cli
from edgemed.runtime.deploy.bundle import make_bundle, verify_bundle
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.onnx.info import describe
from edgemed.runtime.onnx.proto import read_summary
from edgemed.runtime.ops.inputs import read_input

from conftest import ROOT
from helpers import write_wfdb

DTYPES = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint64", "bool",
          "complex64", "U3", "S2", "M8[s]"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=4),
                    st.binary(max_size=4), st.just(np.nan), st.just(-1), st.just(0))
arrays = hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=9))
nested = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                      max_leaves=12)
anything = st.one_of(scalars, arrays, nested)


def _fitting(feature_axis_size: int, dims: int):
    """Arrays shaped almost like a model input, with hostile values."""
    shape = st.tuples(st.integers(0, 4), st.integers(0, 40), st.sampled_from([feature_axis_size, 1, 3]))
    if dims != 3:
        raise ValueError(dims)
    floats = shape.flatmap(lambda s: hnp.arrays(st.sampled_from(["float32", "float64"]), s,
                                                elements=st.floats(width=32) | st.sampled_from([1e30, -1e38, 0.0])))
    ints = shape.flatmap(lambda s: hnp.arrays(st.sampled_from(["int16", "int64", "uint8"]), s))
    return floats | ints | shape.flatmap(lambda s: hnp.arrays("float32", (s[0], s[2] % 3, 16 * s[1]),
                                                              elements=st.floats(-3, 3, width=32)))


@pytest.fixture(scope="module")
def models(exported):
    return {"gru": EdgeModel(exported["gru"]), "stream": EdgeModel(exported["gru-stream"]),
            "ecg": EdgeModel(exported["cnn_gru-stream"])}


@FUZZ
@given(x=st.one_of(anything, _fitting(6, 3)), lengths=st.one_of(st.none(), anything),
       rate=st.one_of(st.none(), scalars), extra=st.dictionaries(st.sampled_from(["x", "lengths", "y", "h"]), anything,
                                                                  max_size=2))
def test_predict_accepts_or_refuses(models, x, lengths, rate, extra):
    extra.pop("x", None), extra.pop("lengths", None)
    pred = call("EdgeModel.predict", models["gru"].predict, x, lengths=lengths, sampling_rate_hz=rate, **extra)
    if pred is not None:
        assert np.isfinite(pred.logits).all() and pred.probabilities.shape == (len(pred.logits), 2)
        assert len(pred.quality) == len(pred.logits)


@FUZZ
@given(chunk=st.one_of(st.sampled_from([None, 1, 2, 5]), st.sampled_from([None, 1, 2]), scalars),
       batch=st.one_of(st.integers(1, 2), st.integers(1, 4), scalars),
       pushes=st.lists(st.one_of(anything, _fitting(6, 3)), max_size=4), rate=st.one_of(st.none(), scalars),
       which=st.sampled_from(["stream", "ecg"]))
def test_stream_accepts_or_refuses(models, chunk, batch, pushes, rate, which):
    if which == "ecg" and isinstance(chunk, int) and not isinstance(chunk, bool) and 0 < chunk < 64:
        chunk *= 16
    bed = call("EdgeModel.stream", models[which].stream, chunk=chunk, batch=batch if batch is not None else 1)
    if bed is None:
        return
    for samples in pushes:
        out = call("Streamer.push", bed.push, samples, sampling_rate_hz=rate)
        for pred in out or []:
            assert np.isfinite(pred.logits).all()


provider_lists = st.lists(st.one_of(st.text(max_size=12), st.tuples(st.text(max_size=5), nested)), max_size=3)


@FUZZ
@given(threads=st.one_of(st.none(), scalars), batch_size=scalars, device=scalars,
       providers=st.one_of(st.none(), nested, provider_lists), strict=st.booleans())
def test_constructor_accepts_or_refuses(exported, threads, batch_size, device, providers, strict):
    call("EdgeModel.__init__", EdgeModel, exported["gru"], threads=threads, batch_size=batch_size,
         device=device if isinstance(device, str) else "cpu", providers=providers, strict=strict)
    if not isinstance(device, str):
        call("EdgeModel.__init__", EdgeModel, exported["gru"], device=device)


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (kind, position, bytes) edits: 0 overwrite, 1 insert, 2 delete a run, 3 truncate."""
    out = bytearray(data)
    for kind, pos, chunk in edits:
        pos = pos % (len(out) + 1)
        if kind == 0:
            out[pos : pos + len(chunk)] = chunk
        elif kind == 1:
            out[pos:pos] = chunk
        elif kind == 2:
            del out[pos : pos + max(1, len(chunk))]
        else:
            del out[pos:]
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**20), st.binary(min_size=1, max_size=16)),
                 min_size=1, max_size=4)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory, exported):
    """Valid files of every kind the readers take, to mutate."""
    root = tmp_path_factory.mktemp("seeds")
    rng = np.random.default_rng(0)
    np.save(root / "x.npy", rng.normal(size=(3, 2, 160)).astype(np.float32))
    np.savez(root / "d.npz", X=rng.normal(size=(4, 2, 160)).astype(np.float32), y=np.arange(4),
             channel_names=np.array(["lead1", "lead2"]))
    rows = ["sequence_id,time,heart_rate,spo2,resp_rate,sbp,dbp,temperature"]
    rows += [f"s{i},{t},{80 + t},97,16,120,80,37" for i in range(3) for t in range(5)]
    (root / "v.csv").write_text("\n".join(rows) + "\n")
    write_wfdb(root, "rec", rng.normal(size=(2, 3000)) * 0.3, 250.0, ["lead1", "lead2"],
               beats=np.arange(200, 2900, 200), aux={0: "(N"})
    make_bundle([exported["gru"]], "host", root / "bundle.zip")
    return root


def _spec(path: Path):
    return EdgeModel(path).spec


@FUZZ
@given(kind=st.sampled_from(["x.npy", "d.npz", "v.csv", "rec.hea", "rec.dat", "rec.atr"]), edit=edits)
def test_file_readers_accept_or_refuse(exported, seeds, tmp_path_factory, kind, edit):
    work = tmp_path_factory.mktemp("fz")
    for f in seeds.iterdir():
        if f.suffix != ".zip":
            shutil.copy(f, work / f.name)
    (work / kind).write_bytes(_mutate((seeds / kind).read_bytes(), edit))
    model = exported["gru"] if kind == "v.csv" else exported["cnn_gru"]
    target = work / ("rec" if kind.startswith("rec") else kind)
    spec = _spec(model)
    result = call("read_input", read_input, target, spec)
    if result is not None and kind.startswith("rec"):
        assert np.isfinite(result.x).all()


@FUZZ
@given(edit=edits)
def test_onnx_metadata_parser_accepts_or_refuses(exported, edit, tmp_path_factory):
    data = _mutate(exported["gru"].read_bytes(), edit)
    call("read_summary", read_summary, data)
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    path.write_bytes(data)
    call("describe", describe, path)


@FUZZ
@given(edit=edits)
def test_bundle_zip_accepts_or_refuses(seeds, edit, tmp_path_factory):
    path = tmp_path_factory.mktemp("bz") / "b.zip"
    path.write_bytes(_mutate((seeds / "bundle.zip").read_bytes(), edit))
    call("verify_bundle", verify_bundle, path)


@FUZZ
@given(edit=edits)
def test_checkpoint_archive_accepts_or_refuses(checkpoints, edit, tmp_path_factory):
    """Damaged or crafted torch.save archives: the pre-load scan and the load refuse by name, never crash."""
    from edgemed.export.foreign import inspect_file
    from edgemed.train.checkpoint import load_checkpoint

    path = tmp_path_factory.mktemp("ck") / "m.pt"
    data = Path(checkpoints["gru"]).read_bytes()
    tail = max(len(data) - 2048, 0)  # the central directory and the pickle's end: most of an archive's structure
    path.write_bytes(_mutate(data, [(k, tail + p % 2048 if p % 2 else p, c) for k, p, c in edit]))
    call("inspect_file", inspect_file, path)
    call("load_checkpoint", load_checkpoint, path)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                           max_leaves=15)


@FUZZ
@given(key=st.sampled_from(["schema", "files", "models", "device", "requirements", "new"]), value=json_values,
       model_key=st.sampled_from(["file", "sidecar", "labels", "spec"]), model_value=json_values)
def test_bundle_manifest_accepts_or_refuses(seeds, tmp_path_factory, key, value, model_key, model_value):
    with zipfile.ZipFile(seeds / "bundle.zip") as z:
        members = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest[key] = value
    if isinstance(manifest.get("models"), list) and manifest["models"] and isinstance(manifest["models"][0], dict):
        manifest["models"][0][model_key] = model_value
    members["manifest.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    path = tmp_path_factory.mktemp("bm") / "b.zip"
    path.write_bytes(buf.getvalue())
    call("verify_bundle(manifest)", verify_bundle, path)


@FUZZ
@given(kind=st.sampled_from(["x.npy", "d.npz", "rec.hea", "rec.dat", "rec.atr"]), edit=edits,
       args=st.lists(st.sampled_from(["--stream", "--threads", "0", "--batch-size", "-3", "--chunk-seconds", "0.001"]),
                     max_size=2))
def test_run_cli_never_shows_a_traceback(exported, seeds, tmp_path_factory, kind, edit, args):
    work = tmp_path_factory.mktemp("cli")
    for f in seeds.iterdir():
        if f.suffix != ".zip":
            shutil.copy(f, work / f.name)
    (work / kind).write_bytes(_mutate((seeds / kind).read_bytes(), edit))
    target = work / ("rec" if kind.startswith("rec") else kind)
    model = exported["cnn_gru-stream"] if "--stream" in args else exported["cnn_gru"]
    result = call("edgemed run", CliRunner().invoke, cli, ["run", str(model), str(target), *args])
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def test_fuzz_profile_is_known():
    assert FUZZ.max_examples >= 100 and str(ROOT)


signals = st.one_of(
    hnp.arrays(st.sampled_from(["float32", "float64"]),
               hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=600),
               elements=st.floats(width=32) | st.sampled_from([1e30, -1e38, 0.0, 1.0])),
    anything)


@FUZZ
@given(signal=signals, fs=st.one_of(scalars, st.sampled_from([50.0, 125.0, 360.0, 1e6, 1e-3])))
def test_beat_detector_accepts_or_refuses(signal, fs):
    from edgemed.runtime.ecg.detector import detect_beats

    beats = call("detect_beats", detect_beats, signal, fs)
    if beats is not None:
        n = np.asarray(signal).shape[-1]
        assert beats.ndim == 1 and (np.diff(beats) > 0).all()
        assert beats.size == 0 or 0 <= beats.min() <= beats.max() < n


@pytest.fixture(scope="module")
def beat_seeds(tmp_path_factory):
    """A synthetic annotated record (WFDB) and the same signal as .npy and CSV, to mutate."""
    from edgemed.train.data.synthetic_ecg import synthetic_recording

    root = tmp_path_factory.mktemp("beatseeds")
    sig, beats, kinds = synthetic_recording("mixed", 20, 360.0, 1, seed=5)
    write_wfdb(root, "r", sig, 360.0, ["lead1"], beats, [{"N": "N", "S": "A", "V": "V"}[k] for k in kinds])
    (root / "RECORDS").write_text("r\n")
    np.save(root / "r.npy", sig.astype(np.float32))
    (root / "r.csv").write_text("lead1\n" + "\n".join(f"{v:.4f}" for v in sig[0]) + "\n")
    return root


@FUZZ
@given(kind=st.sampled_from(["r.hea", "r.dat", "r.atr", "r.npy", "r.csv", "RECORDS"]), edit=edits,
       command=st.sampled_from(["run", "run --stream", "evaluate", "evaluate --beats detect"]))
def test_beat_commands_never_show_a_traceback(exported, beat_seeds, tmp_path_factory, kind, edit, command):
    work = tmp_path_factory.mktemp("bc")
    for f in beat_seeds.iterdir():
        shutil.copy(f, work / f.name)
    (work / kind).write_bytes(_mutate((beat_seeds / kind).read_bytes(), edit))
    name, *options = command.split()
    if name == "run":
        target = work / kind if kind in ("r.npy", "r.csv") else work / "r"
        options += ["--sampling-rate", "360"] if kind in ("r.npy", "r.csv") else []
        args = ["run", str(exported["beat_cnn"]), str(target), *options, "--out", str(work / "p.csv")]
    else:
        args = ["evaluate", str(exported["beat_cnn"]), str(work), *options, "--out", str(work / "ev"), "-q"]
    result = call(f"edgemed {command}", CliRunner().invoke, cli, args)
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


hostile_numbers = st.sampled_from([10**400, -(10**400), 2**63, 2**50, 1e308, float("inf"), float("-inf"), float("nan"),
                                   -1, 0, 0.5, True, "²", "9" * 5000, "1e400", None, [], {}])
spec_values = st.one_of(json_values, hostile_numbers)


def _paths(value, prefix=()):
    """Every key path into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _set(value, path, new):
    if not path:
        return new
    target = value
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return value


@pytest.fixture(scope="module")
def spec_dicts(exported):
    from edgemed.runtime.onnx.info import describe

    return {name: describe(exported[name]).metadata.spec.to_dict() for name in ("gru", "gru-stream", "beat_cnn")}


@FUZZ
@given(which=st.sampled_from(["gru", "gru-stream", "beat_cnn"]), pick=st.integers(0, 10**6), new=spec_values)
def test_crafted_specs_are_refused_as_spec_errors(spec_dicts, which, pick, new):
    from edgemed.core.spec import ModelSpec

    spec = json.loads(json.dumps(spec_dicts[which]))
    paths = list(_paths(spec))
    spec = _set(spec, paths[pick % len(paths)], new)
    call("ModelSpec.from_dict", ModelSpec.from_dict, spec)


@FUZZ
@given(key=st.sampled_from(["format_version", "spec", "provenance", "exporter", "parity", "checksums", "quantization",
                            "labels", "new"]),
       value=st.one_of(spec_values, st.text(max_size=20)), which=st.sampled_from(["gru", "gru-stream"]))
def test_resealed_models_with_crafted_metadata_load_or_refuse(exported, tmp_path_factory, key, value, which):
    import onnx

    from edgemed.export.onnx_io import _put, save_model

    model = onnx.load(str(exported[which]))
    _put(model, "edgemed." + key, value if isinstance(value, str) else json.dumps(value))
    path = tmp_path_factory.mktemp("meta") / "m.onnx"
    if key == "checksums":  # sealing rewrites the checksums: write the crafted value as it is, sidecar and all
        data = model.SerializeToString()
        path.write_bytes(data)
        (path.parent / "m.onnx.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  m.onnx\n")
    else:
        save_model(model, path)
    loaded = call("EdgeModel(crafted metadata)", EdgeModel, path)
    if loaded is not None and loaded.spec.streaming is None:
        x = np.zeros((2, 96, 6), "float32")
        call("predict(crafted metadata)", loaded.predict, x)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert "Traceback" not in result.output and result.exit_code in (0, 1), result.output


@FUZZ
@given(variable=st.sampled_from(sorted({limit.env for limit in __import__("edgemed.core.limits", fromlist=["LIMITS"])
                                       .LIMITS.values()})),
       value=st.one_of(st.text(max_size=12), st.sampled_from(["inf", "-inf", "nan", "1e400", "1e13", "0", "-1", "1e-9",
                                                              "0x10", " 5 ", "1_000"])))
def test_limit_variables_with_any_value_load_or_refuse(exported, seeds, monkeypatch, variable, value):
    if "\x00" in value:
        return  # environment values cannot hold NUL
    monkeypatch.setenv(variable, value)
    loaded = call("EdgeModel(env limit)", EdgeModel, exported["cnn_gru"])
    if loaded is not None:
        call("read_input(env limit)", read_input, seeds / "rec", loaded.spec)


@FUZZ
@given(record=st.dictionaries(st.sampled_from(["schema", "file", "backend", "precision", "threads",
                                               "graph_optimization", "variant", "p50_us"]), spec_values, max_size=8),
       valid=st.booleans())
def test_tuned_json_is_read_or_refused(tmp_path_factory, record, valid):
    from edgemed.runtime.deploy.bundle import read_tuned

    if valid:
        record = {"schema": "edgemed.tuned/1", "file": "m.onnx", "backend": "onnxruntime", "precision": "fp32",
                  **{k: v for k, v in record.items() if k not in ("schema",)}}
    folder = tmp_path_factory.mktemp("tuned")
    (folder / "tuned.json").write_text(json.dumps(record))
    call("read_tuned", read_tuned, folder)


@FUZZ
@given(model_key=st.sampled_from(["reference", "card", "backend", "precision", "tuned", "parity", "quantization",
                                  "exporter", "labels", "spec", "file"]), model_value=spec_values,
       run=st.booleans())
def test_bundle_model_entries_are_checked(seeds, tmp_path_factory, model_key, model_value, run):
    with zipfile.ZipFile(seeds / "bundle.zip") as z:
        members = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest["models"][0][model_key] = model_value
    members["manifest.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    path = tmp_path_factory.mktemp("be") / "b.zip"
    path.write_bytes(buf.getvalue())
    call("verify_bundle(model entry)", verify_bundle, path, run=run)


FOLD_OPS = ["Identity", "Cast", "Transpose", "Reshape", "Concat", "Add", "Mul", "MatMul", "Gather", "Shape", "Size",
            "ConstantOfShape", "Slice", "ReduceSum", "Tile", "Expand", "Where", "Unsqueeze", "Neg", "Range"]
fold_nodes = st.lists(st.tuples(st.sampled_from(FOLD_OPS), st.lists(st.integers(0, 10**6), min_size=1, max_size=3),
                                st.integers(0, 3)), min_size=1, max_size=12)
fold_values = st.lists(hnp.arrays(np.int64, hnp.array_shapes(max_dims=3, max_side=4), elements=st.integers(-3, 9)),
                       min_size=1, max_size=4)


@FUZZ
@given(nodes=fold_nodes, values=fold_values, ir_version=st.sampled_from([3, 8]), order=st.booleans())
def test_folding_bound_counts_or_refuses(nodes, values, ir_version, order):
    """Random graphs of constants, the input and the operators folding knows and does not: the bound returns a
    count or refuses with an EdgemedError, whatever the wiring, shapes, node order and IR version."""
    from onnx import TensorProto, helper, numpy_helper

    from edgemed.runtime.onnx.folding import check_folding

    names = ["x"] + [f"c{i}" for i in range(len(values))]
    made = []
    for k, (op, picks, extra) in enumerate(nodes):
        inputs = [names[p % len(names)] for p in picks]
        attrs = {"to": TensorProto.FLOAT} if op == "Cast" else {"axis": extra % 2} if op in ("Concat", "Gather") else {}
        node = helper.make_node(op, inputs, [f"n{k}"], **attrs)
        made.append(node)
        names.append(f"n{k}")
        if extra == 3:
            made.append(helper.make_node("Constant", [], [f"k{k}"], value=numpy_helper.from_array(values[0], "v")))
            names.append(f"k{k}")
    graph = helper.make_graph(made[::-1] if order else made, "g",
                              [helper.make_tensor_value_info("x", TensorProto.INT64, [2, 3])],
                              [helper.make_tensor_value_info(names[-1], TensorProto.INT64, None)],
                              [numpy_helper.from_array(v, f"c{i}") for i, v in enumerate(values)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = ir_version
    work = call("check_folding", check_folding, memoryview(model.SerializeToString()), "fuzz.onnx")
    assert work is None or work >= 0
