"""GRU classifier over multivariate sequences [batch, time, features] (vital signs).

Variable lengths in one batch come in as a `lengths` input with padding at the end. The GRU runs over
the padded batch and the classifier reads the output at step `lengths - 1`: a causal GRU has not seen
the padding there yet, so the result equals running each sequence alone. This uses only Gather, which
exports to ONNX; `pack_padded_sequence` does not (pytorch#49936).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgemed.core.errors import ModelError
from edgemed.core.spec import TensorSpec
from edgemed.train.models.base import BaseConfig, Normalize, SequenceClassifier
from edgemed.train.models.registry import register_model


@dataclass
class GRUConfig(BaseConfig):
    input_size: int = 6
    hidden_size: int = 64
    num_layers: int = 2
    bidirectional: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("input_size", "hidden_size", "num_layers"):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"gru: {name} must be >= 1, got {getattr(self, name)}")


def take_last(out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """out[b, lengths[b] - 1, :] for every b, as an exportable gather."""
    idx = (lengths.long() - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[2])
    return out.gather(1, idx).squeeze(1)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence within its own length, leaving the end padding in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    lengths = lengths.long().unsqueeze(1)
    src = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return x.gather(1, src.unsqueeze(2).expand(-1, -1, x.shape[2]))


@register_model("gru", GRUConfig)
class GRUClassifier(SequenceClassifier):
    default_length = 48

    def __init__(self, config: GRUConfig) -> None:
        super().__init__(config)
        c = config
        self.norm = Normalize(c.input_size, axis=2, ndim=3, preprocessing=c.preprocessing)
        self.gru = self.make_gru(c.input_size)
        # Bidirectional runs a second stack over each sequence reversed within its length.
        self.gru_reverse = self.make_gru(c.input_size) if c.bidirectional else None
        self.head = self.make_head(c.hidden_size * (2 if c.bidirectional else 1))

    def input_specs(self) -> tuple[TensorSpec, ...]:
        c = self.config
        return (
            TensorSpec(
                "x",
                ("batch", "time", c.input_size),
                layout="batch,time,feature",
                description="vital-sign sequences, padded at the end",
                min_sizes={"time": 1},
            ),
            TensorSpec(
                "lengths",
                ("batch",),
                dtype="int64",
                layout="batch",
                description="valid steps of each sequence (1..time); the full time length when not padded",
            ),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64, device=x.device)
        x = self.norm(x)
        out, _ = self.gru(x, self.zero_state(self.gru, x))
        features = take_last(out, lengths)
        if self.gru_reverse is not None:
            out_rev, _ = self.gru_reverse(reverse_padded(x, lengths), self.zero_state(self.gru_reverse, x))
            features = torch.cat([features, take_last(out_rev, lengths)], dim=1)
        return self.head(features)
