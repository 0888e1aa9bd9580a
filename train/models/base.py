"""What every model family declares, in one place per family (a subclass of `EdgeModule` in its own module):

- its `traits`: config dataclass (a `BaseConfig`), the data layouts it accepts, the axis holding channels, the
  config values read from a dataset's shape, whether it takes padded variable-length batches, its default example
  length, whether it augments by default;
- its inputs (`input_specs`, each with a role), from which `spec` is built, with an example length per dynamic
  axis (the window's length, else the default length, rounded up to `length_multiple`);
- how it streams (`streaming_module`: the stateful wrapper and its spec), when it can;
- its training augmentation (`augment`).

Training, export and quantisation reach a family only through the registry and this interface; nothing outside
a family's module compares architecture names or names its inputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgemed.core.errors import ExportError, ModelError
from edgemed.core.spec import Calibration, ModelSpec, Preprocessing, StreamingSpec, TensorSpec
from edgemed.train.models.layers import CELLS, Normalize

MAX_LAYERS = 64
SPEC_FIELDS = ("labels", "preprocessing", "channel_names", "calibration")  # in the spec, not the hyper-parameters


@dataclass
class BaseConfig:
    """Fields common to all models: class names, the preprocessing the inputs must have had, channel names, the
    calibration (these four live in the spec) and dropout."""

    labels: tuple[str, ...] = ("negative", "positive")
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    channel_names: tuple[str, ...] = ()
    calibration: Calibration = field(default_factory=Calibration)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        self.labels = tuple(str(v) for v in self.labels)
        self.channel_names = tuple(str(v) for v in self.channel_names)
        if isinstance(self.preprocessing, dict):
            self.preprocessing = Preprocessing.from_dict(self.preprocessing)
        if isinstance(self.calibration, dict):
            self.calibration = Calibration(**self.calibration)
        if len(self.labels) < 2:
            raise ModelError(f"a classifier needs at least two labels, got {list(self.labels)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def hyperparameters(self) -> dict:
        """The config without what the spec holds: what a checkpoint stores beside the spec."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in SPEC_FIELDS}

    def check_positive(self, family: str, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            values = value if isinstance(value, tuple) else (value,)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ModelError(f"{family}: {name} must be whole numbers >= 1, got {value!r}")


@dataclass
class CellConfig(BaseConfig):
    """Config of families ending in a recurrent layer: its width, depth and cell (gru, lstm or rnn)."""

    hidden_size: int = 64
    num_layers: int = 1
    cell: str = "gru"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_positive(self.cell, "hidden_size", "num_layers")
        if self.num_layers > MAX_LAYERS:
            raise ModelError(f"{self.cell}: num_layers {self.num_layers} is more than {MAX_LAYERS}")
        if self.cell not in CELLS:
            raise ModelError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")


class RecurrentStream(nn.Module):
    """The streaming wrapper of a family whose state is its recurrent layer's: (chunk, *state) -> (logits after the
    chunk, *next state). The family's `stream_features` turns a chunk into the recurrent layer's input."""

    def __init__(self, model: EdgeModule) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, new_state = self.model.rnn(self.model.stream_features(x), state)
        return (self.model.head(out[:, -1]), *new_state)


@dataclass(frozen=True)
class Traits:
    """What a family declares about itself, in one line of its module."""

    config: type[BaseConfig]
    layouts: tuple[str, ...]  # data layouts it accepts, e.g. "batch,lead,sample"
    channel_axis: int  # axis of the signal holding channels (normalisation, input range)
    sizes: tuple[tuple[str, int], ...]  # (config field, axis of X it is read from); the channel axis's among them
    takes_lengths: bool = False  # padded variable-length batches with a lengths input
    default_length: int = 64  # example length of the sequence axis when no window states one
    augments_by_default: bool = False
    context: tuple[str, ...] = ()  # context sources its inputs take (see edgemed.runtime.ecg.context)
    streams: bool = True  # has a chunk-by-chunk streaming variant (`streaming_module`)
    members: bool = False  # an ensemble: its `members` are trained one by one, then it is calibrated whole


class EdgeModule(nn.Module):
    """Base of every model family."""

    architecture: str = ""  # the registered name, set on each instance by the registry
    traits: Traits

    def __init__(self, config: BaseConfig) -> None:
        super().__init__()
        self.config = config
        t = self.traits
        channels = next(getattr(config, name) for name, axis in t.sizes if axis == t.channel_axis)
        self.norm = Normalize(channels, axis=t.channel_axis, ndim=len(t.layouts[0].split(",")),
                              preprocessing=config.preprocessing)

    @classmethod
    def data_config(cls, shape: tuple[int, ...]) -> dict:
        """Config values read from the shape of a dataset's X (input sizes)."""
        return {name: shape[axis] for name, axis in cls.traits.sizes}

    @classmethod
    def normalized_view(cls, x: np.ndarray, context: dict[str, np.ndarray], config: dict) -> np.ndarray:
        """The signal as the graph's `Normalize` sees it (what its statistics are computed on); most families
        normalise the input itself."""
        return x

    @classmethod
    def context_config(cls, shapes: dict[str, tuple[int, ...]]) -> dict:
        """Config values read from the shapes of a dataset's context arrays (by source); most families take none."""
        return {}

    def input_specs(self) -> tuple[TensorSpec, ...]:
        raise NotImplementedError

    @property
    def length_multiple(self) -> int:
        """Sequence lengths must be multiples of this (pooling factors)."""
        return 1

    @property
    def trace_multiple(self) -> int:
        """The dynamo exporter traces the sequence axis as a multiple of this: pooling over a free symbolic length
        makes torch.export fix it to the example's (measured on beat_cnn); the graph still takes any length."""
        return self.length_multiple

    def example_sizes(self) -> dict[str, int]:
        """A typical size for each dynamic axis other than batch: the window's length where the preprocessing
        states one, else the family's default, rounded up to `length_multiple`."""
        pre = self.config.preprocessing
        window_length = pre.window.length(pre.rate_hz) if pre.window is not None else None
        sizes = {}
        for t in self.input_specs():
            for name in t.dynamic_axes.values():
                if name != "batch":
                    n = window_length or self.traits.default_length
                    sizes[name] = -(-n // self.length_multiple) * self.length_multiple
        return sizes

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            architecture=self.architecture,
            inputs=self.input_specs(),
            outputs=(TensorSpec("logits", ("batch", self.config.num_classes), layout="batch,class",
                                description="unnormalised class scores; softmax gives probabilities"),),
            labels=self.config.labels,
            preprocessing=self.config.preprocessing,
            channel_names=self.config.channel_names,
            example_sizes=self.example_sizes(),
            calibration=self.config.calibration,
        )

    def set_calibration(self, calibration: Calibration) -> None:
        """Store a fitted calibration: in the spec, and its temperature in the classifier head's logits."""
        self.config.calibration = calibration
        self.head.temperature = float(calibration.temperature)

    def streaming_module(self) -> tuple[nn.Module, ModelSpec]:
        """The stateful wrapper (chunk, *state) -> (logits, *next state) and its spec."""
        raise ExportError(f"{self.architecture} has no streaming variant")

    def streaming_spec(self, chunk_axis: str, multiple: int, states: tuple[TensorSpec, ...]) -> ModelSpec:
        """The batch spec turned into a streaming one: the signal alone as input, plus the carried states."""
        spec = self.spec
        signal = dataclasses.replace(spec.signal, min_sizes={chunk_axis: multiple})
        streaming = StreamingSpec(signal.name, chunk_axis, multiple, states, tuple(f"{s.name}_out" for s in states))
        outputs = spec.outputs + tuple(
            dataclasses.replace(s, name=o, description=f"next value of {s.name}")
            for s, o in zip(streaming.state_inputs, streaming.state_outputs, strict=True))
        chunk = 4 * multiple if multiple > 1 else 10
        return dataclasses.replace(spec, inputs=(signal,), outputs=outputs, streaming=streaming,
                                   example_sizes={chunk_axis: chunk})

    def finish_members(self, train_ds, seed: int) -> None:
        """An ensemble, once its networks are trained and calibrated one by one: grow what is not trained by
        gradient descent (trees) and keep in the config what the members learned outside their weights."""

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Training augmentation of a batch of signals: per-sample, per-channel gain in [0.85, 1.15] plus Gaussian
        noise of 5 % of each channel's spread. Recordings differ in electrode placement and gain between
        patients; this makes the model rely less on absolute amplitude."""
        std = self.norm.std
        gain = 0.85 + 0.3 * torch.rand((x.shape[0], *std.shape[1:]), generator=gen).to(x.device)
        noise = torch.randn(x.shape, generator=gen).to(x.device) * 0.05 * std
        return x * gain + noise
