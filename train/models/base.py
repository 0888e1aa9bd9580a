"""Pieces every edgemed model shares: the config fields common to all, in-graph normalisation, and the spec."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from edgemed.core.errors import ModelError
from edgemed.core.spec import ModelSpec, Preprocessing, TensorSpec


@dataclass
class BaseConfig:
    """Fields common to all models: class names and the preprocessing the inputs must have had."""

    labels: tuple[str, ...] = ("negative", "positive")
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    channel_names: tuple[str, ...] = ()
    dropout: float = 0.1

    def __post_init__(self) -> None:
        self.labels = tuple(str(v) for v in self.labels)
        self.channel_names = tuple(str(v) for v in self.channel_names)
        if len(self.labels) < 2:
            raise ModelError(f"a classifier needs at least two labels, got {list(self.labels)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Normalize(nn.Module):
    """`(x - mean) / std` along one axis, inside the graph so the runtime never applies it twice."""

    def __init__(self, channels: int, axis: int, ndim: int, preprocessing: Preprocessing) -> None:
        super().__init__()
        norm = preprocessing.normalization
        shape = [1] * ndim
        shape[axis] = channels
        mean = torch.zeros(channels) if norm is None else torch.tensor(norm.mean, dtype=torch.float32)
        std = torch.ones(channels) if norm is None else torch.tensor(norm.std, dtype=torch.float32)
        if mean.numel() != channels:
            raise ModelError(f"normalization has {mean.numel()} channels but the model has {channels}")
        self.register_buffer("mean", mean.reshape(shape))
        self.register_buffer("std", std.reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SequenceClassifier(nn.Module):
    """Base of all models: holds the config and derives the spec from it."""

    architecture: str = ""
    config_cls: type = BaseConfig

    def __init__(self, config: BaseConfig) -> None:
        super().__init__()
        self.config = config

    def input_specs(self) -> tuple[TensorSpec, ...]:
        raise NotImplementedError

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            architecture=self.architecture,
            inputs=self.input_specs(),
            outputs=(
                TensorSpec(
                    "logits",
                    ("batch", self.config.num_classes),
                    layout="batch,class",
                    description="unnormalised class scores; softmax gives probabilities",
                ),
            ),
            labels=self.config.labels,
            preprocessing=self.config.preprocessing,
            channel_names=self.config.channel_names,
        )

    default_length: int = 64

    def make_gru(self, input_size: int) -> nn.GRU:
        """The batch-first GRU every model ends with (dropout between layers only when there are several)."""
        c = self.config
        return nn.GRU(input_size, c.hidden_size, c.num_layers, batch_first=True,
                      dropout=c.dropout if c.num_layers > 1 else 0.0)

    def make_head(self, features: int) -> nn.Sequential:
        return nn.Sequential(nn.Dropout(self.config.dropout), nn.Linear(features, self.config.num_classes))

    @staticmethod
    def zero_state(gru: nn.GRU, x: torch.Tensor) -> torch.Tensor:
        """An explicit zero initial state sized from `x`'s batch, so export keeps the batch axis dynamic
        (without it the TorchScript exporter may bake the example's batch size into the GRU's initial_h)."""
        return x.new_zeros(gru.num_layers, x.shape[0], gru.hidden_size)
