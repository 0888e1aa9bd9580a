"""The engine registry: one list of choices, one engine per model, visible fallback where an accelerator is
missing, and the same answers from every engine that runs here."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.core.errors import InputError, ProviderError
from edgemed.runtime.engines import EngineOptions, engine_entry, engine_names, engine_precisions, load_engine
from edgemed.runtime.engines.providers import ProviderFallbackWarning
from edgemed.runtime.model import EdgeModel


def test_the_registry_lists_every_engine_once():
    assert engine_names() == ("onnxruntime", "openvino", "cuda", "tensorrt")
    assert "bf16" in engine_precisions() and engine_entry("onnxruntime").uses_device_providers
    with pytest.raises(InputError, match="backend must be one of onnxruntime, openvino, cuda, tensorrt"):
        engine_entry("tvm")


def test_the_cli_offers_the_registry_s_engines():
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert all(name in result.output for name in engine_names())


def test_a_gpu_engine_without_its_provider_falls_back_visibly_or_refuses_when_strict(exported):
    cpu = EdgeModel(exported["gru"])
    x = np.random.default_rng(0).normal(size=(3, 96, 6)).astype(np.float32)
    for name in ("cuda", "tensorrt"):
        if engine_entry(name).available():
            pytest.skip(f"{name} is available here: the GPU tests cover it")
        with pytest.warns(ProviderFallbackWarning, match="not available"):
            model = EdgeModel(exported["gru"], backend=name)
        assert model.engine.name == name and model.providers.session_providers == ["CPUExecutionProvider"]
        np.testing.assert_allclose(model.predict(x).logits, cpu.predict(x).logits, atol=1e-6)
        with pytest.raises(ProviderError, match="not available"):
            EdgeModel(exported["gru"], backend=name, strict=True)


def test_engines_refuse_precisions_they_do_not_offer(exported):
    data = exported["gru"].read_bytes()
    with pytest.raises(InputError, match="offers precision fp32"):
        load_engine("onnxruntime", data, EngineOptions(precision="bf16"))
    with pytest.raises(InputError, match="offers precision"):
        EdgeModel(exported["gru"], precision="fp16")


def test_every_engine_describes_the_graph_it_loaded(exported):
    model = EdgeModel(exported["gru"])
    names = [i.name for i in model.engine.inputs()]
    assert names == [t.name for t in model.spec.inputs] and model.engine.outputs()[0].name == "logits"
    assert model.session is model.engine.session and model.output_names == model.engine.output_names
