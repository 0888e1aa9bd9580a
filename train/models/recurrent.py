"""The recurrent family: GRU, LSTM or Elman RNN classifiers over multivariate sequences [batch, time, features]
(vital signs, patient records), registered as `gru`, `lstm` and `rnn` (the cell is a config value each fixes).

Variable lengths in one batch come in as a `lengths` input with padding at the end. The recurrent stack runs over
the padded batch and the classifier reads the output at step `lengths - 1`: a causal stack has not seen the
padding there yet, so the result equals running each sequence alone. In PyTorch that is a Gather
(`pack_padded_sequence` does not export to ONNX, pytorch#49936); the ONNX export is leaner: the native op takes the
lengths as its `sequence_lens` and its final state `Y_h` is the result (`Recurrent.last`). `bidirectional` adds
a second stack run over each sequence reversed within its own length. Streaming carries the full state: h (and c
for LSTM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgemed.core.errors import ExportError
from edgemed.core.spec import ModelSpec, TensorSpec
from edgemed.train.models.base import CellConfig, EdgeModule, RecurrentStream, Traits
from edgemed.train.models.layers import Recurrent, head, reverse_padded, take_last
from edgemed.train.models.registry import register_model


@dataclass
class RecurrentConfig(CellConfig):
    input_size: int = 6
    num_layers: int = 2
    bidirectional: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_positive(self.cell, "input_size")


@register_model("gru", cell="gru")
@register_model("lstm", cell="lstm")
@register_model("rnn", cell="rnn")
class RecurrentClassifier(EdgeModule):
    traits = Traits(RecurrentConfig, ("batch,time,feature",), channel_axis=2, sizes=(("input_size", 2),),
                    takes_lengths=True, default_length=48)

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__(config)
        c = config
        self.rnn = Recurrent(c.cell, c.input_size, c.hidden_size, c.num_layers, c.dropout)
        self.rnn_reverse = (Recurrent(c.cell, c.input_size, c.hidden_size, c.num_layers, c.dropout)
                            if c.bidirectional else None)
        self.head = head(c.hidden_size * (2 if c.bidirectional else 1), c)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        c = self.config
        return (
            TensorSpec("x", ("batch", "time", c.input_size), layout="batch,time,feature",
                       description="sequences of readings, padded at the end", min_sizes={"time": 1}),
            TensorSpec("lengths", ("batch",), dtype="int64", layout="batch", role="lengths", counts="time",
                       description="valid steps of each sequence (1..time); the full time length when not padded"),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64, device=x.device)
        x = self.norm(x)
        features = self.rnn.last(x, lengths)
        if self.rnn_reverse is not None:
            out_rev, _ = self.rnn_reverse(reverse_padded(x, lengths))
            features = torch.cat([features, take_last(out_rev, lengths)], dim=1)
        return self.head(features)

    def stream_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)

    def streaming_module(self) -> tuple[nn.Module, ModelSpec]:
        if self.config.bidirectional:
            raise ExportError(f"a bidirectional {self.architecture} reads the future and cannot stream; train with "
                              "bidirectional=false")
        return RecurrentStream(self).eval(), self.streaming_spec("time", 1, self.rnn.state_specs())
