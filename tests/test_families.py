"""Every registered family through every stage, by one test: train (tiny, in conftest), export with parity, stream
where the family can, quantise with the accuracy gate, and run in the runtime. A new family is covered by
registering it (and naming a tiny training run in conftest.RUNS): no new test is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgemed.core.errors import ExportError
from edgemed.core.examples import example_inputs, example_sizes
from edgemed.export.pipeline import export_target, target_from_checkpoint
from edgemed.export.quant_data import quantization_data
from edgemed.export.quantize import QuantMode, quantize
from edgemed.runtime.model import EdgeModel
from edgemed.train.checkpoint import load_checkpoint
from edgemed.train.models import list_models

from conftest import RUNS


def test_every_registered_family_has_a_tiny_run():
    assert set(RUNS) == set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_family_through_every_stage(name, checkpoints, tmp_path):
    ckpt = checkpoints[name]
    original, _ = load_checkpoint(ckpt)
    exported = export_target(target_from_checkpoint(ckpt), tmp_path / "m.onnx")
    assert exported.parity.passed and len({r.shape for r in exported.parity.rows}) >= 5

    runtime = EdgeModel(exported.path)
    spec = runtime.spec
    feeds = example_inputs(spec, example_sizes(spec, 3), seed=5)
    with torch.no_grad():
        reference = original(*(torch.from_numpy(feeds[t.name]) for t in spec.inputs)).numpy()
    lengths = feeds[spec.lengths.name] if spec.lengths else None
    context = {t.name: feeds[t.name] for t in spec.inputs if t.role == "context"}
    np.testing.assert_allclose(runtime.predict(feeds[spec.signal.name], lengths=lengths, **context).logits,
                               reference, atol=1e-5, rtol=1e-4)

    try:
        original.streaming_module()
    except ExportError:
        streams = False
    else:
        streams = True
        stream_model = export_target(target_from_checkpoint(ckpt, streaming=True), tmp_path / "s.onnx")
        assert stream_model.parity.passed and any(r.case.startswith("stream") for r in stream_model.parity.rows)
        s = EdgeModel(stream_model.path).spec.streaming
        step = s.chunk_multiple * (4 if s.chunk_multiple > 1 else 3)
        signal = example_inputs(spec, {**example_sizes(spec, 1), s.chunk_axis: 5 * step}, seed=6)[spec.signal.name]
        bed = EdgeModel(stream_model.path).stream(chunk=step)
        axis = spec.signal.shape.index(s.chunk_axis)
        got = bed.push(signal)[-1].logits
        with torch.no_grad():
            whole = original(torch.from_numpy(np.ascontiguousarray(np.take(signal, range(5 * step), axis=axis))))
        np.testing.assert_allclose(got, whole.numpy(), atol=1e-5, rtol=1e-4)
    assert streams == type(original).traits.streams

    cal, val = quantization_data(spec, runtime.metadata.provenance, None, None)
    # Every product in int8 (a test model's are all small, and by default small products stay float).
    result = quantize(exported.path, tmp_path / "m.int8.onnx", QuantMode.STATIC, cal, val, max_drop=100,
                      min_product_weights=0)
    assert result.report.verdict == "passed" and result.report.int8_compute_ops  # tiny models may grow: scales
    int8 = EdgeModel(result.path)
    assert int8.metadata.quantization["gate"] == "passed"
    probabilities = int8.predict(feeds[spec.signal.name], lengths=lengths, **context).probabilities
    assert probabilities.shape == reference.shape and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_image_model_runs_on_folders_profiles_and_bundles(exported, tmp_path):
    """The image family through the runtime commands, unchanged: a folder of PNGs, class folders, profile, bundle."""
    from click.testing import CliRunner
    from PIL import Image

    from edgemed.cli.main import cli
    from edgemed.train.data.synthetic_fundus import synthetic_fundus

    ds = synthetic_fundus(6, seed=4, image_size=48)  # another size: read and resized as the spec says
    for i, (x, y) in enumerate(zip(ds.X, ds.y, strict=True)):
        folder = tmp_path / "graded" / ds.labels[y]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x.transpose(1, 2, 0) * 255).astype("uint8")).save(folder / f"{i // 2}_{i % 2}.png")
    (tmp_path / "flat").mkdir()
    for p in (tmp_path / "graded").rglob("*.png"):
        (tmp_path / "flat" / p.name).write_bytes(p.read_bytes())
    model = exported["cnn2d"]
    runner = CliRunner()
    graded = runner.invoke(cli, ["run", str(model), str(tmp_path / "graded"), "--out", str(tmp_path / "g.json")])
    assert graded.exit_code == 0 and "6 predictions" in graded.output and "macro-F1" in graded.output, graded.output
    flat = runner.invoke(cli, ["run", str(model), str(tmp_path / "flat")])
    assert flat.exit_code == 0 and "6 predictions" in flat.output
    one = runner.invoke(cli, ["run", str(model), str(next((tmp_path / "flat").iterdir()))])
    assert one.exit_code == 0 and "1 predictions" in one.output
    (tmp_path / "flat" / "notes.txt").write_text("not an image")
    bad = runner.invoke(cli, ["run", str(model), str(tmp_path / "flat")])
    assert bad.exit_code == 1 and "notes.txt" in bad.output
    prof = runner.invoke(cli, ["profile", str(model), "--runs", "5", "--warmup", "1", "--no-cold-start",
                               "--data", str(tmp_path / "graded")])
    assert prof.exit_code == 0 and "6 images" in prof.output, prof.output
    bundle = runner.invoke(cli, ["bundle", str(model), "--device", "host", "-o", str(tmp_path / "b.zip")])
    assert bundle.exit_code == 0 and runner.invoke(cli, ["verify-bundle", str(tmp_path / "b.zip")]).exit_code == 0


def test_the_families_benchmark_knows_every_family():
    """benchmarks/families.py runs every registered family; a new family without its entry would crash it."""
    import ast

    source = (Path(__file__).resolve().parents[1] / "benchmarks" / "families.py").read_text()
    runs = next(n.value for n in ast.parse(source).body if isinstance(n, ast.Assign)
                and getattr(n.targets[0], "id", "") == "RUNS")
    assert {k.value for k in runs.keys} == set(list_models())
