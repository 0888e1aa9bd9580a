"""Model behaviour: registry, specs, variable lengths, causality, streaming state, and that every family learns.

Tests that apply to every family iterate the registry, so a new family is covered without a new test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemed.core.errors import ExportError, ModelError
from edgemed.core.examples import example_inputs, example_sizes
from edgemed.core.spec import ModelSpec
from edgemed.train.models import create_model, family, list_models

FAMILIES = list_models()


def test_registry_lists_every_family():
    assert set(FAMILIES) == {"gru", "lstm", "rnn", "cnn_gru", "cnn_lstm", "cnn_gru_frames", "cnn2d", "beat_cnn",
                             "beat_ensemble"}


def test_unknown_model_config_key_and_fixed_cell_are_refused():
    with pytest.raises(ModelError, match="unknown model 'transformer'.*cnn_gru"):
        create_model("transformer")
    with pytest.raises(ModelError, match="unknown config key.*hiden_size"):
        create_model("gru", hiden_size=3)
    with pytest.raises(ModelError, match="at least two labels"):
        create_model("gru", labels=["only"])
    with pytest.raises(ModelError, match="cell='lstm' is fixed"):
        create_model("lstm", cell="gru")


def test_beat_ensemble_is_the_mean_log_probability_of_its_members():
    model = create_model("beat_ensemble", channels=(8, 16),
                         members=[{"rr_skip": True}, {"rr_skip": False, "dropout": 0.0}]).eval()
    assert [m.config.rr_skip for m in model.members] == [True, False]
    inputs = _inputs(model)
    with torch.no_grad():
        members = torch.stack([torch.log_softmax(m(*inputs), dim=1) for m in model.members])
        np.testing.assert_allclose(model(*inputs).numpy(), members.mean(dim=0).numpy(), atol=1e-6)
    with pytest.raises(ModelError, match="out of range"):  # a member's config is bounded like any config
        create_model("beat_ensemble", members=[{"channels": (8, 10**12)}])
    with pytest.raises(ModelError, match="unknown config key.*widht"):
        create_model("beat_ensemble", members=[{"widht": 3}])
    with pytest.raises(ModelError, match="1 to 8"):
        create_model("beat_ensemble", members=[])


def _inputs(model, batch: int = 3) -> tuple[torch.Tensor, ...]:
    spec = model.spec
    return tuple(torch.from_numpy(a) for a in example_inputs(spec, example_sizes(spec, batch)).values())


@pytest.mark.parametrize("name", FAMILIES)
def test_spec_round_trips_and_describes_the_inputs(name):
    model = create_model(name)
    spec = model.spec
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert spec.signal.role == "signal" and (spec.lengths is not None) == family(name).traits.takes_lengths
    inputs = _inputs(model)
    for tensor, tspec in zip(inputs, spec.inputs, strict=True):
        assert tensor.ndim == len(tspec.shape)
        for dim, size in zip(tspec.shape, tensor.shape, strict=True):
            assert isinstance(dim, str) or dim == size
    assert model.eval()(*inputs).shape == (3, len(spec.labels))


@pytest.mark.parametrize("name", [n for n in FAMILIES if family(n).traits.takes_lengths])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_batch_equals_each_sequence_alone(name, bidirectional):
    torch.manual_seed(0)
    model = create_model(name, input_size=4, hidden_size=16, bidirectional=bidirectional).eval()
    lengths = torch.tensor([30, 7, 1, 19])
    x = torch.randn(4, 30, 4)
    for i, n in enumerate(lengths):
        x[i, n:] = 1e3  # garbage padding must not leak into the result
    with torch.no_grad():
        batched = model(x, lengths)
        alone = torch.cat([model(x[i : i + 1, :n], lengths[i : i + 1]) for i, n in enumerate(lengths)])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["cnn_gru", "cnn_lstm"])
def test_causal_cnn_ignores_the_future_and_non_causal_sees_it(name):
    torch.manual_seed(0)
    causal = create_model(name, leads=2, causal=True).eval()
    x = torch.randn(2, 2, 512)
    future = x.clone()
    future[:, :, 256:] = torch.randn(2, 2, 256) * 5
    with torch.no_grad():
        torch.testing.assert_close(causal(x[:, :, :256]), causal(future[:, :, :256]))
        wrapper, _ = causal.streaming_module()
        state = [torch.zeros(s) for s in _state_shapes(causal, 2)]
        first_half = wrapper(x[:, :, :256], *state)[0]
    torch.testing.assert_close(first_half, causal(x[:, :, :256]), atol=1e-5, rtol=1e-5)
    seeing = create_model(name, leads=1, causal=False).eval()
    y = torch.randn(1, 1, 512)
    z = y.clone()
    z[:, :, 248:] += 5  # within the receptive field of the last step of the first 256 samples
    with torch.no_grad():
        assert not torch.allclose(seeing(torch.cat([y[:, :, :256]], 2)), seeing(z[:, :, :256]))


def _state_shapes(model, batch: int) -> list[tuple[int, ...]]:
    _, spec = model.streaming_module()
    sizes = {"batch": batch}
    return [tuple(sizes.get(d, d) if isinstance(d, str) else d for d in t.shape) for t in spec.streaming.state_inputs]


@pytest.mark.parametrize("name", FAMILIES)
def test_streaming_state_is_declared_by_the_family(name):
    model = create_model(name, **({"causal": True} if name.startswith("cnn_") and name != "cnn_gru_frames" else {}))
    try:
        wrapper, spec = model.eval().streaming_module()
    except ExportError:
        assert not type(model).traits.streams  # a single image or beat has no chunks to stream
        return
    states = [t.name for t in spec.streaming.state_inputs]
    assert ("c" in states) == ("lstm" in name) and "h" in states
    assert all(t.role == "state" for t in spec.streaming.state_inputs)


def test_streaming_refuses_what_cannot_stream():
    with pytest.raises(ExportError, match="only a causal cnn_gru"):
        create_model("cnn_gru", causal=False).streaming_module()
    with pytest.raises(ExportError, match="bidirectional lstm reads the future"):
        create_model("lstm", bidirectional=True).streaming_module()


def test_frames_and_images_take_other_sizes():
    model = create_model("cnn_gru_frames", height=32, width=32).eval()
    for frames in (1, 5, 17):
        assert model(torch.randn(2, frames, 1, 32, 32)).shape == (2, 2)
    image = create_model("cnn2d", height=32, width=32).eval()
    for h, w in ((32, 32), (50, 71), (16, 16)):
        assert image(torch.rand(2, 3, h, w)).shape == (2, 2)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_trains_and_its_loss_falls(name):
    torch.manual_seed(0)
    config = {"height": 32, "width": 32, "channels": (8, 16), "dropout": 0.0, "spatial_dropout": 0.0} \
        if name == "cnn2d" else {}
    model = create_model(name, **config)
    batch = _inputs(model, 16)
    batch = (batch[0] + torch.arange(16).remainder(2).float().mul(2).sub(1).view(-1, *[1] * (batch[0].ndim - 1)),
             *batch[1:])
    y = torch.arange(16) % 2  # the class shifts the signal's level: learnable by every family
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(model(*batch), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_image_augmentation_keeps_shape_and_varies_per_sample():
    model = create_model("cnn2d", height=32, width=32)
    x = torch.rand(6, 3, 32, 32)
    out = model.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.allclose(out, x)
    assert not torch.allclose(out[0] - x[0], out[1] - x[1])


def test_version_1_specs_still_read():
    """Models exported before roles existed: their integer input counts the signal's sequence axis."""
    v1 = {"architecture": "gru", "version": 1, "labels": ["a", "b"],
          "inputs": [{"name": "x", "shape": ["batch", "time", 6]},
                     {"name": "lengths", "shape": ["batch"], "dtype": "int64"}],
          "outputs": [{"name": "logits", "shape": ["batch", 2]}],
          "preprocessing": {"window": {"kind": "stay", "period_s": 300.0}}}
    spec = ModelSpec.from_dict(v1)
    assert spec.lengths.name == "lengths" and spec.lengths.counts == "time" and spec.version == 2
