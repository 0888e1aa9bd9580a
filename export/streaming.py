"""Stateful streaming variants: (chunk, state...) -> (logits, state...), equal chunk by chunk to the whole sequence.

`gru`: the GRU's hidden state is the whole state; any chunk length works.
causal `cnn_gru`: besides the GRU state, each conv block carries the last `kernel_size - 1` inputs it saw
(its left context: what causal padding supplies as zeros at the very start). Chunks must be multiples of
the total pooling factor, so every chunk starts on a pooling boundary of every block. Batch norm in eval
mode is a fixed affine map, so it streams as is.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from edgemed.core.errors import ExportError
from edgemed.core.spec import ModelSpec, StreamingSpec, TensorSpec


class GRUStream(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if model.config.bidirectional:
            raise ExportError("a bidirectional gru reads the future and cannot stream; train with bidirectional=false")
        self.model = model

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, h_n = self.model.gru(self.model.norm(x), h)
        return self.model.head(out[:, -1]), h_n


class CNNGRUStream(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        c = model.config
        if not c.causal:
            raise ExportError("only a causal cnn_gru can stream (its convs see the future); train with -c causal=true")
        if c.kernel_size < 2:
            raise ExportError("streaming needs kernel_size >= 2 (a 1-sample conv carries no context)")
        self.model = model

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *contexts, h = state
        x = self.model.norm(x)
        new_contexts = []
        for block, ctx in zip(self.model.blocks, contexts, strict=True):
            x = torch.cat([ctx, x], dim=2)
            new_contexts.append(x[:, :, x.shape[2] - ctx.shape[2] :])
            x = block.pool(torch.relu(block.bn(block.conv(x))))
        out, h_n = self.model.gru(x.transpose(1, 2), h)
        return (self.model.head(out[:, -1]), *new_contexts, h_n)


def _gru_state(gru: nn.GRU, name: str = "h") -> TensorSpec:
    return TensorSpec(name, (gru.num_layers, "batch", gru.hidden_size), layout="layer,batch,hidden",
                      description="GRU hidden state carried between chunks")


def streaming_module(model: nn.Module) -> tuple[nn.Module, ModelSpec]:
    """Wrap a trained model for streaming and describe the wrapper's inputs, outputs and state."""
    spec = model.spec
    if model.architecture == "gru":
        wrapper = GRUStream(model)
        x = dataclasses.replace(spec.inputs[0])
        states = (_gru_state(model.gru),)
        streaming = StreamingSpec("x", "time", 1, states, ("h_out",))
    elif model.architecture == "cnn_gru":
        wrapper = CNNGRUStream(model)
        x = spec.inputs[0]
        c = model.config
        widths = (c.leads, *c.channels)
        states = tuple(
            TensorSpec(f"ctx{i}", ("batch", widths[i], c.kernel_size - 1), layout="batch,channel,sample",
                       description=f"last {c.kernel_size - 1} inputs of conv block {i}")
            for i in range(len(c.channels))
        ) + (_gru_state(model.gru),)
        streaming = StreamingSpec("x", "samples", c.downsample, states,
                                  tuple(f"ctx{i}_out" for i in range(len(c.channels))) + ("h_out",))
        x = dataclasses.replace(x, min_sizes={"samples": c.downsample})
    else:
        raise ExportError(f"{model.architecture} has no streaming variant; streaming exists for gru and causal cnn_gru")
    outputs = spec.outputs + tuple(
        dataclasses.replace(s, name=o, description=f"next value of {s.name}")
        for s, o in zip(streaming.state_inputs, streaming.state_outputs, strict=True)
    )
    return wrapper.eval(), dataclasses.replace(spec, inputs=(x,), outputs=outputs, streaming=streaming)
