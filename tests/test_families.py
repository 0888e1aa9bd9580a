"""Every registered family through every stage, by one test: train (tiny, in conftest), export with parity, stream
where the family can, quantise with the accuracy gate, and run in the runtime. A new family is covered by
registering it (and naming a tiny training run in conftest.RUNS): no new test is written."""

from __future__ import annotations

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
    np.testing.assert_allclose(runtime.predict(feeds[spec.signal.name], lengths=lengths).logits, reference,
                               atol=1e-5, rtol=1e-4)

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
    assert streams == (name != "cnn2d")

    cal, val = quantization_data(spec, runtime.metadata.provenance, None, None)
    result = quantize(exported.path, tmp_path / "m.int8.onnx", QuantMode.STATIC, cal, val, max_drop=100)
    assert result.report.verdict == "passed" and result.report.int8_compute_ops  # tiny models may grow: scales
    int8 = EdgeModel(result.path)
    assert int8.metadata.quantization["gate"] == "passed"
    probabilities = int8.predict(feeds[spec.signal.name], lengths=lengths).probabilities
    assert probabilities.shape == reference.shape and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
