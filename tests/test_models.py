"""Model behaviour: registry, specs, variable lengths, causality, and that every model learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemed.core.errors import ModelError
from edgemed.core.examples import example_inputs
from edgemed.core.spec import ModelSpec
from edgemed.train.models import create_model, list_models


def test_registry_lists_the_three_families():
    assert set(list_models()) >= {"gru", "cnn_gru", "cnn_gru_frames"}


def test_unknown_model_and_config_key_are_refused():
    with pytest.raises(ModelError, match="unknown model 'lstm'.*cnn_gru"):
        create_model("lstm")
    with pytest.raises(ModelError, match="unknown config key.*hiden_size"):
        create_model("gru", hiden_size=3)
    with pytest.raises(ModelError, match="at least two labels"):
        create_model("gru", labels=["only"])


@pytest.mark.parametrize("name", ["gru", "cnn_gru", "cnn_gru_frames"])
def test_spec_round_trips_and_describes_the_inputs(name):
    model = create_model(name)
    spec = model.spec
    assert ModelSpec.from_json(spec.to_json()) == spec
    sizes = {"batch": 3, **{axis: model.default_length for axis in ("time", "samples", "frames")}}
    inputs = tuple(torch.from_numpy(a) for a in example_inputs(spec, sizes).values())
    for tensor, tspec in zip(inputs, spec.inputs, strict=True):
        assert tensor.ndim == len(tspec.shape)
        for dim, size in zip(tspec.shape, tensor.shape, strict=True):
            assert isinstance(dim, str) or dim == size
    assert model.eval()(*inputs).shape == (3, len(spec.labels))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_padded_batch_equals_each_sequence_alone(bidirectional):
    torch.manual_seed(0)
    model = create_model("gru", input_size=4, hidden_size=16, bidirectional=bidirectional).eval()
    lengths = torch.tensor([30, 7, 1, 19])
    x = torch.randn(4, 30, 4)
    for i, n in enumerate(lengths):
        x[i, n:] = 1e3  # garbage padding must not leak into the result
    with torch.no_grad():
        batched = model(x, lengths)
        alone = torch.cat([model(x[i : i + 1, :n], lengths[i : i + 1]) for i, n in enumerate(lengths)])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_causal_cnn_gru_ignores_the_future():
    torch.manual_seed(0)
    model = create_model("cnn_gru", leads=2, causal=True).eval()
    x = torch.randn(2, 2, 512)
    future = x.clone()
    future[:, :, 256:] = torch.randn(2, 2, 256) * 5
    with torch.no_grad():
        feats_a = model.features(x)[:, : 256 // 16]
        feats_b = model.features(future)[:, : 256 // 16]
    torch.testing.assert_close(feats_a, feats_b)


def test_non_causal_cnn_gru_does_see_the_future():
    torch.manual_seed(0)
    model = create_model("cnn_gru", leads=1, causal=False).eval()
    x = torch.randn(1, 1, 512)
    future = x.clone()
    future[:, :, 256:] += 5
    with torch.no_grad():
        assert not torch.allclose(model.features(x)[:, 15], model.features(future)[:, 15])


def test_frames_model_takes_any_number_of_frames():
    model = create_model("cnn_gru_frames", height=32, width=32).eval()
    for frames in (1, 5, 17):
        assert model(torch.randn(2, frames, 1, 32, 32)).shape == (2, 2)


@pytest.mark.parametrize(
    "name,inputs",
    [
        ("gru", lambda: (torch.randn(16, 20, 6), torch.randint(5, 21, (16,)))),
        ("cnn_gru", lambda: (torch.randn(16, 1, 128),)),
        ("cnn_gru_frames", lambda: (torch.randn(16, 4, 1, 32, 32),)),
    ],
)
def test_each_model_trains_and_its_loss_falls(name, inputs):
    torch.manual_seed(0)
    model = create_model(name)
    batch = inputs()
    y = torch.arange(16) % 2
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(model(*batch), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
