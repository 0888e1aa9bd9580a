"""The beat family: `beat_cnn` classifies one heartbeat [batch, leads, samples] with what a cardiologist looks at
besides its shape: its rhythm (RR intervals and their ratios, input `rr`) and the patient's own usual beat (the
median of the previous beats, input `template`). Both come from beat positions through
`edgemed.runtime.ecg.context`, the one function training, evaluation and the runtime share.

Graph: the beat and its difference from the template (both normalised with the training data's statistics) go
through conv blocks (conv, batch norm, ReLU, max-pool); average and max pooling over time give a morphology
vector; the RR features pass through batch norm (a fixed affine map after training) and a small dense layer;
both are concatenated and classified by a two-layer head. The model does not stream chunk by chunk: a stream
is classified beat by beat by the runtime (`edgemed.runtime.ecg.beats`), each beat once its window and context are
known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgemed.core.errors import ModelError
from edgemed.core.spec import TensorSpec
from edgemed.train.models.base import BaseConfig, EdgeModule, Traits
from edgemed.train.models.layers import ConvBlock1d, head, pairs
from edgemed.train.models.registry import register_model

RR_SOURCE, TEMPLATE_SOURCE = "rr_features", "beat_template"
SCALE_FLOOR = 0.01  # mV: a flat template does not blow the beat up


@dataclass
class BeatConfig(BaseConfig):
    leads: int = 1
    rr_features: int = 6
    template: bool = True
    scale_by_template: bool = True  # divide beat and template by the template's spread: per-patient gain
    channels: tuple[int, ...] = (16, 32, 48)
    kernel_size: int = 5
    rr_hidden: int = 16
    hidden: int = 64
    dropout: float = 0.2
    morphology_dropout: float = 0.0  # drops whole morphology features in training: leans on the rhythm too
    rr_skip: bool = False  # a linear path from the RR features straight to the logits
    feature_names: tuple[str, ...] = ()  # the context features it reads, of those the data has (empty: all)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.channels = tuple(int(c) for c in self.channels)
        self.check_positive("beat_cnn", "leads", "rr_features", "channels", "kernel_size", "rr_hidden", "hidden")
        if not 0.0 <= self.morphology_dropout < 1.0:
            raise ModelError(f"beat_cnn: morphology_dropout must be in [0, 1), got {self.morphology_dropout}")


@register_model("beat_cnn")
class BeatClassifier(EdgeModule):
    traits = Traits(BeatConfig, ("batch,lead,sample",), channel_axis=1, sizes=(("leads", 1),), default_length=144,
                    context=(RR_SOURCE, TEMPLATE_SOURCE), streams=False)

    def __init__(self, config: BeatConfig) -> None:
        super().__init__(config)
        c = config
        self.blocks = nn.Sequential(*(ConvBlock1d(a, b, c.kernel_size, 2, causal=False)
                                      for a, b in pairs(c.leads * (2 if c.template else 1), c.channels)))
        available = c.preprocessing.beat_context.features if c.preprocessing.beat_context else ()
        chosen = [available.index(f) for f in c.feature_names if f in available] if c.feature_names else []
        if len(chosen) != len(c.feature_names):
            raise ModelError(f"beat_cnn: feature_names {list(c.feature_names)} are not all among the data's "
                             f"features {list(available)}")
        self.register_buffer("rr_index", torch.tensor(chosen, dtype=torch.long), persistent=False)
        n_rr = len(chosen) or c.rr_features
        self.rr_norm = nn.BatchNorm1d(n_rr)
        self.rr = nn.Sequential(nn.Linear(n_rr, c.rr_hidden), nn.ReLU())
        self.morph_drop = nn.Dropout(c.morphology_dropout)
        self.mix = nn.Sequential(nn.Linear(2 * c.channels[-1] + c.rr_hidden, c.hidden), nn.ReLU())
        self.head = head(c.hidden, c)
        self.rr_direct = nn.Linear(n_rr, c.num_classes) if c.rr_skip else None

    @property
    def trace_multiple(self) -> int:
        return 2 ** len(self.config.channels)  # one 2x max-pool per block

    @classmethod
    def context_config(cls, shapes: dict[str, tuple[int, ...]]) -> dict:
        if RR_SOURCE not in shapes:
            raise ModelError("beat_cnn needs RR features: train on beat data (a WFDB folder with `task` beats, or "
                             "synthetic-beats)")
        return {"rr_features": shapes[RR_SOURCE][1], "template": TEMPLATE_SOURCE in shapes}

    @classmethod
    def normalized_view(cls, x: np.ndarray, context: dict[str, np.ndarray], config: dict) -> np.ndarray:
        template = context.get(TEMPLATE_SOURCE)
        if template is None or not config.get("scale_by_template", True) or not config.get("template", True):
            return x
        return x / (template.std(axis=2, keepdims=True).mean(axis=1, keepdims=True) + SCALE_FLOOR)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        c = self.config
        steps = 2 ** len(c.channels)
        specs = [TensorSpec("x", ("batch", c.leads, "samples"), layout="batch,lead,sample",
                            description=f"one beat, {c.leads} lead(s), centred as the window says",
                            min_sizes={"samples": steps}),
                 TensorSpec("rr", ("batch", c.rr_features), layout="batch,feature", role="context",
                            source=RR_SOURCE, description="RR features of the beat, as the spec's beat_context lists")]
        if c.template:
            specs.append(TensorSpec("template", ("batch", c.leads, "samples"), layout="batch,lead,sample",
                                    role="context", source=TEMPLATE_SOURCE, min_sizes={"samples": steps},
                                    description="median of the patient's previous beat windows"))
        return tuple(specs)

    def forward(self, x: torch.Tensor, rr: torch.Tensor, template: torch.Tensor | None = None) -> torch.Tensor:
        if self.config.template:
            if template is None:
                raise ModelError("beat_cnn with a template needs the template input")
            if self.config.scale_by_template:
                spread = template.std(dim=2, keepdim=True).mean(dim=1, keepdim=True) + SCALE_FLOOR
                x, template = x / spread, template / spread
            x = self.norm(x)
            x = torch.cat([x, x - self.norm(template)], dim=1)
        else:
            x = self.norm(x)
        z = self.blocks(x)
        morphology = self.morph_drop(torch.cat([z.mean(dim=2), z.amax(dim=2)], dim=1))
        rhythm = self.rr_norm(rr.index_select(1, self.rr_index) if self.rr_index.numel() else rr)
        features = self.mix(torch.cat([morphology, self.rr(rhythm)], dim=1))
        if self.rr_direct is None:
            return self.head(features)
        temperature = self.head.temperature
        return self.head(features) + self.rr_direct(rhythm) / temperature
