"""CNN-GRU over image sequences [batch, frames, channels, height, width] (ultrasound clips, CT slices).

A small Conv2d encoder turns each frame into a coarse feature map, which is flattened (keeping where
things are, which motion needs) and projected to a feature vector; a GRU runs across frames and the
classifier reads its last output. Frames are folded into the batch for the encoder, so any number of
frames works; height and width are fixed by the config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgemed.core.errors import ModelError
from edgemed.core.spec import TensorSpec
from edgemed.train.models.base import BaseConfig, Normalize, SequenceClassifier
from edgemed.train.models.registry import register_model


@dataclass
class CNNGRUFramesConfig(BaseConfig):
    in_channels: int = 1
    height: int = 32
    width: int = 32
    channels: tuple[int, ...] = (16, 32, 64)
    feature_size: int = 64
    hidden_size: int = 64
    num_layers: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.channels = tuple(int(c) for c in self.channels)
        if min(self.height, self.width) < 2 ** len(self.channels):
            raise ModelError(f"cnn_gru_frames: frames of {self.height}x{self.width} are too small for "
                             f"{len(self.channels)} pooling stages (need >= {2 ** len(self.channels)})")
        if not self.channels or min(self.channels) < 1:
            raise ModelError(f"cnn_gru_frames: channels must be positive, got {self.channels}")
        if min(self.in_channels, self.height, self.width, self.hidden_size) < 1:
            raise ModelError("cnn_gru_frames: in_channels, height, width and hidden_size must be >= 1")


def _conv2d_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)
    )


@register_model("cnn_gru_frames", CNNGRUFramesConfig)
class CNNGRUFramesClassifier(SequenceClassifier):
    default_length = 8

    def __init__(self, config: CNNGRUFramesConfig) -> None:
        super().__init__(config)
        c = config
        self.norm = Normalize(c.in_channels, axis=2, ndim=5, preprocessing=c.preprocessing)
        widths = (c.in_channels, *c.channels)
        self.encoder = nn.Sequential(*(_conv2d_block(widths[i], widths[i + 1]) for i in range(len(c.channels))))
        grid = (c.height // 2 ** len(c.channels)) * (c.width // 2 ** len(c.channels))
        self.project = nn.Sequential(nn.Linear(c.channels[-1] * grid, c.feature_size), nn.ReLU())
        self.gru = self.make_gru(c.feature_size)
        self.head = self.make_head(c.hidden_size)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        c = self.config
        return (
            TensorSpec(
                "x",
                ("batch", "frames", c.in_channels, c.height, c.width),
                layout="batch,frame,channel,height,width",
                description="image sequences (frames or slices)",
                min_sizes={"frames": 1},
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f = x.shape[0], x.shape[1]
        x = self.norm(x).flatten(0, 1)
        feats = self.project(self.encoder(x).flatten(1))
        feats = feats.reshape(b, f, -1)
        out, _ = self.gru(feats, self.zero_state(self.gru, feats))
        return self.head(out[:, -1])
