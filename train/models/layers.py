"""Torch building blocks the families share: in-graph normalisation, a recurrent layer with the cell as a
parameter (GRU, LSTM or plain Elman RNN), the classifier head, conv blocks and padded-sequence helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from edgemed.core.errors import ModelError
from edgemed.core.spec import Preprocessing, TensorSpec

if TYPE_CHECKING:
    from edgemed.train.models.base import BaseConfig

CELLS: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}
# How an ONNX export reads a recurrent stack's last valid step: "final_state" (the native op's `sequence_lens` and
# `Y_h`: lean, onnxruntime's fastest) or "gather" (step lengths - 1 gathered from `Y`: for engines that mis-handle
# `sequence_lens`, as OpenVINO 2026.4 does). An option of each `Recurrent` layer (`set_readout`), given by the export.
READOUTS = ("final_state", "gather")


def set_readout(module: nn.Module, readout: str) -> str:
    """Set how every recurrent stack in `module` is read out when exported; returns the previous setting."""
    if readout not in READOUTS:
        raise ModelError(f"recurrent readout must be one of {READOUTS}, not {readout!r}")
    previous = "final_state"
    for layer in module.modules():
        if isinstance(layer, Recurrent):
            previous, layer.readout = layer.readout, readout
    return previous


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


class Recurrent(nn.Module):
    """A batch-first recurrent stack whose state is a tuple: (h,) for GRU and RNN, (h, c) for LSTM. An explicit
    zero initial state sized from the input's batch keeps the exported batch axis dynamic (without it the
    TorchScript exporter may bake the example's batch size into the initial state)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ModelError(f"unknown recurrent cell {cell!r}; choose one of {sorted(CELLS)}")
        self.cell, self.readout = cell, "final_state"
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers, batch_first=True,
                               dropout=dropout if num_layers > 1 else 0.0)

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("h", "c") if self.cell == "lstm" else ("h",)

    def zero_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        shape = (self.rnn.num_layers, x.shape[0], self.rnn.hidden_size)
        return tuple(x.new_zeros(shape) for _ in self.state_names)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        state = self.zero_state(x) if state is None else state
        if self.cell == "lstm":
            out, (h, c) = self.rnn(x, (state[0], state[1]))
            return out, (h, c)
        out, h = self.rnn(x, state[0])
        return out, (h,)

    def last(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The top layer's output at step `lengths - 1` of each sequence [batch, hidden], from a zero state.

        Under the TorchScript ONNX exporter this becomes the lean graph: each layer is the native ONNX op fed the
        lengths as its own `sequence_lens`, and the result is the last layer's final state `Y_h`, instead of
        gathering step `lengths - 1` from the full output `Y` (the same numbers; parity checks it)."""
        if torch.onnx.is_in_onnx_export() and torch.jit.is_tracing() and self.readout == "final_state":
            return _LeanRecurrent.apply(x, lengths, self.cell, self.rnn.hidden_size, self.rnn.num_layers,
                                        *_onnx_weights(self.rnn, self.cell))
        out, _ = self(x)
        return take_last(out, lengths)

    def state_specs(self) -> tuple[TensorSpec, ...]:
        """The carried state of a streaming export, one tensor per state name."""
        return tuple(TensorSpec(name, (self.rnn.num_layers, "batch", self.rnn.hidden_size), layout="layer,batch,hidden",
                                description=f"{self.cell.upper()} {'cell' if name == 'c' else 'hidden'} state "
                                            "carried between chunks", role="state")
                     for name in self.state_names)


# PyTorch's gate order within the stacked weights, as ONNX orders them: GRU r,z,n -> z,r,h; LSTM i,f,g,o -> i,o,f,c.
_ONNX_GATES = {"gru": (1, 0, 2), "lstm": (0, 3, 1, 2), "rnn": (0,)}
_ONNX_OPS = {"gru": "GRU", "lstm": "LSTM", "rnn": "RNN"}


def _onnx_weights(rnn: nn.RNNBase, cell: str) -> list[torch.Tensor]:
    """Per layer: W [1, gates*hidden, in], R [1, gates*hidden, hidden], B [1, 2*gates*hidden], in ONNX gate order."""
    order = _ONNX_GATES[cell]

    def gates(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t.chunk(len(order))[i] for i in order])

    out = []
    for k in range(rnn.num_layers):
        w, r = getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")
        b = torch.cat([gates(getattr(rnn, f"bias_ih_l{k}")), gates(getattr(rnn, f"bias_hh_l{k}"))])
        out += [gates(w).unsqueeze(0), gates(r).unsqueeze(0), b.unsqueeze(0)]
    return out


class _LeanRecurrent(torch.autograd.Function):
    """Export-only: a recurrent stack as native ONNX ops with `sequence_lens`, read out through `Y_h`. Its forward
    gives the right shape only (tracing needs no more); the real computation is the exported graph's, and parity
    against the PyTorch model proves it."""

    @staticmethod
    def forward(ctx, x, lengths, cell, hidden, layers, *weights):  # noqa: ARG004 (signature fixed by autograd)
        return x.new_zeros((x.shape[0], hidden))

    @staticmethod
    def symbolic(g, x, lengths, cell, hidden, layers, *weights):
        seq = g.op("Transpose", x, perm_i=[1, 0, 2])  # [time, batch, features]
        lens = g.op("Cast", lengths, to_i=6)  # int32
        squeeze_dir = g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64))
        squeeze_first = g.op("Constant", value_t=torch.tensor([0], dtype=torch.int64))
        attrs = {"hidden_size_i": hidden, **({"linear_before_reset_i": 1} if cell == "gru" else {})}
        outputs = 3 if cell == "lstm" else 2
        last = None
        for k in range(layers):
            w, r, b = weights[3 * k : 3 * k + 3]
            y, y_h, *_ = g.op(_ONNX_OPS[cell], seq, w, r, b, lens, outputs=outputs, **attrs)
            seq = g.op("Squeeze", y, squeeze_dir)  # [time, 1, batch, hidden] -> [time, batch, hidden]
            last = y_h
        return g.op("Squeeze", last, squeeze_first)  # [1, batch, hidden] -> [batch, hidden]


def pairs(inputs: int, channels: tuple[int, ...]) -> list[tuple[int, int]]:
    """(in, out) channel counts of a stack of conv blocks starting from `inputs` channels."""
    widths = (inputs, *channels)
    return list(zip(widths[:-1], widths[1:], strict=True))


class Head(nn.Sequential):
    """Dropout and the linear classifier, its logits divided by the calibration temperature (a constant in the
    exported graph; left out when it is 1)."""

    def __init__(self, features: int, classes: int, dropout: float, temperature: float = 1.0) -> None:
        super().__init__(nn.Dropout(dropout), nn.Linear(features, classes))
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        return logits / self.temperature if self.temperature != 1.0 else logits


def head(features: int, config: BaseConfig) -> Head:
    """The classifier head of a model with `config` (a BaseConfig: classes, dropout, calibration)."""
    return Head(features, config.num_classes, config.dropout, config.calibration.temperature)


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


class ConvBlock1d(nn.Module):
    """Conv1d (no bias), batch norm, ReLU, max-pool. Causal padding puts all `kernel - 1` pad samples on the left."""

    def __init__(self, cin: int, cout: int, kernel: int, pool: int, causal: bool) -> None:
        super().__init__()
        self.pad = (kernel - 1, 0) if causal else ((kernel - 1) // 2, kernel // 2)
        self.conv = nn.Conv1d(cin, cout, kernel, bias=False)
        self.bn = nn.BatchNorm1d(cout)
        self.pool = nn.MaxPool1d(pool) if pool > 1 else nn.Identity()

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Everything after padding: what a streaming wrapper runs on (context + chunk)."""
        return self.pool(torch.relu(self.bn(self.conv(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(F.pad(x, self.pad))


def conv2d_block(cin: int, cout: int, dropout: float = 0.0) -> nn.Sequential:
    """Conv2d 3x3 (no bias), batch norm, ReLU, 2x2 max-pool, and optional spatial dropout."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                               nn.MaxPool2d(2)]
    if dropout:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)
