"""The frame-sequence family over image sequences [batch, frames, channels, height, width] (ultrasound clips, CT
slices): `cnn_gru_frames`.

A small Conv2d encoder turns each frame into a coarse feature map, which is flattened (keeping where things are,
which motion needs) and projected to a feature vector; a recurrent layer runs across frames and the classifier
reads its last output. Frames are folded into the batch for the encoder, so any number of frames works; height
and width are fixed by the config. Frames stream one chunk of frames at a time, carrying the recurrent state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgemed.core.errors import ModelError
from edgemed.core.spec import ModelSpec, TensorSpec
from edgemed.train.models.base import CellConfig, EdgeModule, RecurrentStream, Traits
from edgemed.train.models.layers import Recurrent, conv2d_block, head, pairs
from edgemed.train.models.registry import register_model


@dataclass
class FramesConfig(CellConfig):
    in_channels: int = 1
    height: int = 32
    width: int = 32
    channels: tuple[int, ...] = (16, 32, 64)
    feature_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        self.channels = tuple(int(c) for c in self.channels)
        self.check_positive("cnn_gru_frames", "in_channels", "height", "width", "channels", "feature_size")
        if min(self.height, self.width) < 2 ** len(self.channels):
            raise ModelError(f"cnn_gru_frames: frames of {self.height}x{self.width} are too small for "
                             f"{len(self.channels)} pooling stages (need >= {2 ** len(self.channels)})")


@register_model("cnn_gru_frames", cell="gru")
class FramesClassifier(EdgeModule):
    traits = Traits(FramesConfig, ("batch,frame,channel,height,width",), channel_axis=2,
                    sizes=(("in_channels", 2), ("height", 3), ("width", 4)), default_length=8)

    def __init__(self, config: FramesConfig) -> None:
        super().__init__(config)
        c = config
        self.encoder = nn.Sequential(*(conv2d_block(a, b) for a, b in pairs(c.in_channels, c.channels)))
        grid = (c.height // 2 ** len(c.channels)) * (c.width // 2 ** len(c.channels))
        self.project = nn.Sequential(nn.Linear(c.channels[-1] * grid, c.feature_size), nn.ReLU())
        self.rnn = Recurrent(c.cell, c.feature_size, c.hidden_size, c.num_layers, c.dropout)
        self.head = head(c.hidden_size, c)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        c = self.config
        return (TensorSpec("x", ("batch", "frames", c.in_channels, c.height, c.width),
                           layout="batch,frame,channel,height,width", description="image sequences (frames or slices)",
                           min_sizes={"frames": 1}),)

    def stream_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames [batch, frames, C, H, W] to feature vectors [batch, frames, feature_size]."""
        b, f = x.shape[0], x.shape[1]
        feats = self.project(self.encoder(self.norm(x).flatten(0, 1)).flatten(1))
        return feats.reshape(b, f, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.encode(x))
        return self.head(out[:, -1])

    def streaming_module(self) -> tuple[nn.Module, ModelSpec]:
        return RecurrentStream(self).eval(), self.streaming_spec("frames", 1, self.rnn.state_specs())
