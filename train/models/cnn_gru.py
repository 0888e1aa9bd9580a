"""CNN-GRU over ECG waveforms [batch, leads, samples].

Conv1d blocks (conv, batch norm, ReLU, max-pool) shorten the signal by `pool ** len(channels)`; a GRU
runs over the pooled steps and the classifier reads its last output. With `causal=True` every conv
pads on the left only, so output step t depends on samples up to t alone, and a chunk whose length is
a multiple of the total pooling factor starts on a pooling boundary: streaming chunk by chunk then
reproduces the whole-sequence result exactly when each conv carries its last `kernel_size - 1` inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgemed.core.errors import ModelError
from edgemed.core.spec import TensorSpec
from edgemed.train.models.base import BaseConfig, Normalize, SequenceClassifier
from edgemed.train.models.registry import register_model


@dataclass
class CNNGRUConfig(BaseConfig):
    leads: int = 1
    channels: tuple[int, ...] = (16, 32, 64, 64)
    kernel_size: int = 7
    pool: int = 2
    hidden_size: int = 64
    num_layers: int = 1
    causal: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.channels = tuple(int(c) for c in self.channels)
        if not self.channels or min(self.channels) < 1:
            raise ModelError(f"cnn_gru: channels must be positive, got {self.channels}")
        if self.kernel_size < 1 or self.pool < 1 or self.leads < 1 or self.hidden_size < 1:
            raise ModelError("cnn_gru: leads, kernel_size, pool and hidden_size must be >= 1")

    @property
    def downsample(self) -> int:
        """Input samples per GRU step."""
        return self.pool ** len(self.channels)


class ConvBlock1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, pool: int, causal: bool) -> None:
        super().__init__()
        self.pad = (kernel - 1, 0) if causal else ((kernel - 1) // 2, kernel // 2)
        self.conv = nn.Conv1d(cin, cout, kernel, bias=False)
        self.bn = nn.BatchNorm1d(cout)
        self.pool = nn.MaxPool1d(pool) if pool > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.bn(self.conv(F.pad(x, self.pad)))))


@register_model("cnn_gru", CNNGRUConfig)
class CNNGRUClassifier(SequenceClassifier):
    default_length = 256

    def __init__(self, config: CNNGRUConfig) -> None:
        super().__init__(config)
        c = config
        self.norm = Normalize(c.leads, axis=1, ndim=3, preprocessing=c.preprocessing)
        widths = (c.leads, *c.channels)
        self.blocks = nn.ModuleList(
            ConvBlock1d(widths[i], widths[i + 1], c.kernel_size, c.pool, c.causal) for i in range(len(c.channels))
        )
        self.gru = self.make_gru(c.channels[-1])
        self.head = self.make_head(c.hidden_size)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        c = self.config
        return (
            TensorSpec(
                "x",
                ("batch", c.leads, "samples"),
                layout="batch,lead,sample",
                description=f"ECG, {c.leads} lead(s); samples at least {c.downsample}",
                min_sizes={"samples": c.downsample},
            ),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input through the conv blocks, as [batch, steps, channels]."""
        x = self.norm(x)
        for block in self.blocks:
            x = block(x)
        return x.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.features(x)
        out, _ = self.gru(feats, self.zero_state(self.gru, feats))
        return self.head(out[:, -1])
