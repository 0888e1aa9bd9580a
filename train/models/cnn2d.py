"""The 2-D CNN family over single images [batch, channels, height, width]: `cnn2d` (seed case: fundus photographs
graded for diabetic retinopathy).

The graph resizes any input to the model's resolution (bilinear; images read by edgemed are already resized
the same way when loaded, see `edgemed.core.readers.images`), normalises each colour channel with the training data's
mean and std, then runs conv blocks (conv, batch norm, ReLU, max-pool, spatial dropout), global average pooling,
dropout and a linear classifier. Training augmentation (on by default for this family): random horizontal and
vertical flips, rotations up to `ROTATION_DEG`, brightness and contrast each scaled within `1 +- JITTER`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgemed.core.spec import TensorSpec
from edgemed.train.models.base import BaseConfig, EdgeModule, Traits
from edgemed.train.models.layers import conv2d_block, head, pairs
from edgemed.train.models.registry import register_model

ROTATION_DEG = 15.0
JITTER = 0.2


@dataclass
class CNN2DConfig(BaseConfig):
    in_channels: int = 3
    height: int = 64
    width: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 96)
    spatial_dropout: float = 0.1
    dropout: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        self.channels = tuple(int(c) for c in self.channels)
        self.check_positive("cnn2d", "in_channels", "height", "width", "channels")
        if not 0.0 <= self.spatial_dropout < 1.0:
            raise ValueError(f"spatial_dropout must be in [0, 1), got {self.spatial_dropout}")


@register_model("cnn2d")
class CNN2DClassifier(EdgeModule):
    traits = Traits(CNN2DConfig, ("batch,channel,height,width",), channel_axis=1,
                    sizes=(("in_channels", 1), ("height", 2), ("width", 3)), augments_by_default=True, streams=False)

    def __init__(self, config: CNN2DConfig) -> None:
        super().__init__(config)
        c = config
        self.features = nn.Sequential(*(conv2d_block(a, b, c.spatial_dropout) for a, b in pairs(c.in_channels,
                                                                                                  c.channels)))
        self.head = head(c.channels[-1], c)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        c = self.config
        return (TensorSpec("x", ("batch", c.in_channels, "height", "width"), layout="batch,channel,height,width",
                           description=f"images, {c.in_channels} channel(s), values 0-1; resized to "
                                       f"{c.height}x{c.width} in the graph", min_sizes={"height": 8, "width": 8}),)

    def example_sizes(self) -> dict[str, int]:
        return {"height": self.config.height, "width": self.config.width}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        x = F.interpolate(x, size=(c.height, c.width), mode="bilinear", align_corners=False)
        x = self.features(self.norm(x))
        return self.head(x.mean(dim=(2, 3)))

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        flip_h = torch.rand(n, generator=gen) < 0.5
        flip_v = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip_h.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
        x = torch.where(flip_v.view(-1, 1, 1, 1).to(x.device), x.flip(2), x)
        angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(ROTATION_DEG)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)],
                            1).to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        brightness = (1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * JITTER).to(x.device)
        contrast = (1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * JITTER).to(x.device)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * contrast + mean) * brightness
