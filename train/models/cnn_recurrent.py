"""The CNN-recurrent family over ECG waveforms [batch, leads, samples]: `cnn_gru` and `cnn_lstm`.

Conv1d blocks (conv, batch norm, ReLU, max-pool) shorten the signal by `pool ** len(channels)`; a recurrent
layer (the cell is a config value) runs over the pooled steps and the classifier reads its last output. With
`causal=True` every conv pads on the left only, so output step t depends on samples up to t alone, and a chunk
whose length is a multiple of the total pooling factor starts on a pooling boundary: streaming chunk by chunk then
reproduces the whole-sequence result exactly when each conv carries its last `kernel_size - 1` inputs (its left
context) and the recurrent layer its state. Batch norm in eval mode is a fixed affine map, so it streams as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgemed.core.errors import ExportError
from edgemed.core.spec import ModelSpec, TensorSpec
from edgemed.train.models.base import CellConfig, EdgeModule, Traits
from edgemed.train.models.layers import ConvBlock1d, Recurrent, head, pairs
from edgemed.train.models.registry import register_model


@dataclass
class CNNRecurrentConfig(CellConfig):
    leads: int = 1
    channels: tuple[int, ...] = (16, 32, 64, 64)
    kernel_size: int = 7
    pool: int = 2
    causal: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.channels = tuple(int(c) for c in self.channels)
        self.check_positive(f"cnn_{self.cell}", "leads", "channels", "kernel_size", "pool")

    @property
    def downsample(self) -> int:
        """Input samples per recurrent step."""
        return self.pool ** len(self.channels)


class CNNRecurrentStream(nn.Module):
    """(chunk, ctx0..ctxN, *recurrent state) -> (logits, next contexts, next recurrent state)."""

    def __init__(self, model: CNNRecurrentClassifier) -> None:
        super().__init__()
        self.model = model
        self.blocks = len(model.blocks)

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        contexts, rnn_state = state[: self.blocks], state[self.blocks :]
        x = self.model.norm(x)
        new_contexts = []
        for block, ctx in zip(self.model.blocks, contexts, strict=True):
            x = torch.cat([ctx, x], dim=2)
            new_contexts.append(x[:, :, x.shape[2] - ctx.shape[2] :])
            x = block.body(x)
        out, new_state = self.model.rnn(x.transpose(1, 2), rnn_state)
        return (self.model.head(out[:, -1]), *new_contexts, *new_state)


@register_model("cnn_gru", cell="gru")
@register_model("cnn_lstm", cell="lstm")
class CNNRecurrentClassifier(EdgeModule):
    traits = Traits(CNNRecurrentConfig, ("batch,lead,sample",), channel_axis=1, sizes=(("leads", 1),),
                    default_length=256)

    def __init__(self, config: CNNRecurrentConfig) -> None:
        super().__init__(config)
        c = config
        self.blocks = nn.ModuleList(ConvBlock1d(a, b, c.kernel_size, c.pool, c.causal) for a, b in pairs(c.leads,
                                                                                                           c.channels))
        self.rnn = Recurrent(c.cell, c.channels[-1], c.hidden_size, c.num_layers, c.dropout)
        self.head = head(c.hidden_size, c)

    @property
    def length_multiple(self) -> int:
        return self.config.downsample

    def input_specs(self) -> tuple[TensorSpec, ...]:
        c = self.config
        return (TensorSpec("x", ("batch", c.leads, "samples"), layout="batch,lead,sample",
                           description=f"ECG, {c.leads} lead(s); samples at least {c.downsample}",
                           min_sizes={"samples": c.downsample}),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        for block in self.blocks:
            x = block(x)
        out, _ = self.rnn(x.transpose(1, 2))
        return self.head(out[:, -1])

    def streaming_module(self) -> tuple[nn.Module, ModelSpec]:
        c = self.config
        if not c.causal:
            raise ExportError(f"only a causal {self.architecture} can stream (its convs see the future); train with "
                              "-c causal=true")
        if c.kernel_size < 2:
            raise ExportError("streaming needs kernel_size >= 2 (a 1-sample conv carries no context)")
        contexts = tuple(TensorSpec(f"ctx{i}", ("batch", cin, c.kernel_size - 1), layout="batch,channel,sample",
                                    description=f"last {c.kernel_size - 1} inputs of conv block {i}", role="state")
                         for i, (cin, _) in enumerate(pairs(c.leads, c.channels)))
        return CNNRecurrentStream(self).eval(), self.streaming_spec("samples", c.downsample,
                                                                    contexts + self.rnn.state_specs())
