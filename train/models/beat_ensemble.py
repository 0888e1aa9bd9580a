"""The beat ensemble: `beat_ensemble` averages several `beat_cnn` members that see the same beat, template and
context features but are configured differently (e.g. one with a direct rhythm path on the RR features, one reading
the morphology features too), each trained on its own (`Traits.members`). The graph takes the members' inputs once
and returns the mean of their log-probabilities (the normalised geometric mean of their probabilities), divided by
the ensemble's calibrated temperature: one ONNX graph, one parity check. Measured on MIT-BIH DS1 (patient-wise
cross-validation) the average of two members beat either member on S and V together (docs/results/mitdb_cv.md).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import nn

from edgemed.core.errors import ModelError
from edgemed.core.spec import TensorSpec
from edgemed.train.models.beat import BeatClassifier, BeatConfig
from edgemed.train.models.registry import model_config, register_model


@dataclass
class BeatEnsembleConfig(BeatConfig):
    members: tuple[dict, ...] = ({}, {})  # each member's BeatConfig fields, over the ensemble's own

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.members, tuple | list) or not 1 <= len(self.members) <= 8 or not all(
                isinstance(m, dict) for m in self.members):
            raise ModelError("beat_ensemble: members must be 1 to 8 mappings of beat_cnn config fields")
        self.members = tuple(dict(m) for m in self.members)


class _Temperature(nn.Module):
    """The ensemble's calibration: its log-probabilities divided by a fitted temperature (1 until fitted)."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.temperature = float(temperature)


@register_model("beat_ensemble")
class BeatEnsemble(BeatClassifier):
    traits = replace(BeatClassifier.traits, config=BeatEnsembleConfig, members=True)

    def __init__(self, config: BeatEnsembleConfig) -> None:
        nn.Module.__init__(self)
        self.config = config
        shared = {f.name: getattr(config, f.name) for f in fields(BeatConfig)}
        members = []
        for overrides in config.members:
            member = BeatClassifier(model_config("beat_cnn", **{**shared, **overrides}))
            member.architecture = "beat_cnn"
            members.append(member)
        self.members = nn.ModuleList(members)
        self.head = _Temperature(config.calibration.temperature)

    @property
    def norm(self) -> nn.Module:
        """The input normalisation (the members share the training data's statistics)."""
        return self.members[0].norm

    @property
    def trace_multiple(self) -> int:
        return max(m.trace_multiple for m in self.members)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        return self.members[0].input_specs()

    def forward(self, x: torch.Tensor, rr: torch.Tensor, template: torch.Tensor | None = None) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(m(x, rr, template), dim=1) for m in self.members]).mean(dim=0)
        return logp / self.head.temperature if self.head.temperature != 1.0 else logp
