"""The beat ensemble: `beat_ensemble` averages several `beat_cnn` members that see the same beat, template and
context features but are configured differently (e.g. one with a direct rhythm path on the RR features, one reading
the morphology features too), each trained on its own (`Traits.members`), and optionally gradient-boosted trees over
the context features (`trees`, `edgemed.train.models.trees`), grown after the networks. The graph takes the inputs
once and returns the weighted mean of the members' log-probabilities (the normalised geometric mean of their
probabilities; each network, calibrated on its own first, counts 1, the trees `trees.weight`), divided by the
ensemble's calibrated temperature: one ONNX graph, one parity check. Measured on MIT-BIH DS1 (patient-wise
cross-validation, docs/results/mitdb_cv.md) one network with the trees beats the network alone on S and V at two
seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import torch
from torch import nn

from edgemed.core.errors import ModelError
from edgemed.core.spec import TensorSpec
from edgemed.train.models.beat import RR_SOURCE, BeatClassifier, BeatConfig
from edgemed.train.models.registry import model_config, register_model
from edgemed.train.models.trees import BoostedTrees, TreeOptions


@dataclass
class BeatEnsembleConfig(BeatConfig):
    members: tuple[dict, ...] = ({}, {})  # each member's BeatConfig fields, over the ensemble's own
    trees: dict = field(default_factory=dict)  # TreeOptions fields of a boosted-tree member; empty: none

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.members, tuple | list) or not 1 <= len(self.members) <= 8 or not all(
                isinstance(m, dict) for m in self.members):
            raise ModelError("beat_ensemble: members must be 1 to 8 mappings of beat_cnn config fields")
        self.members = tuple(dict(m) for m in self.members)
        if not isinstance(self.trees, dict):
            raise ModelError("beat_ensemble: trees must be a mapping of tree options (empty: no trees)")
        if self.trees:
            self.trees = asdict(TreeOptions.from_dict(self.trees, self.num_classes))


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
        available = config.preprocessing.beat_context.features if config.preprocessing.beat_context else ()
        self.trees = (BoostedTrees(TreeOptions.from_dict(config.trees, config.num_classes), config.num_classes,
                                   available, config.rr_features) if config.trees else None)
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

    def finish_members(self, train_ds, seed: int) -> None:
        """Record each network's own calibration in its member config (a checkpoint rebuilds the members from
        it), then grow the trees on the training data's context features."""
        self.config.members = tuple({**config, "calibration": asdict(member.config.calibration)}
                                    for config, member in zip(self.config.members, self.members, strict=True))
        if self.trees is not None:
            options = self.trees.fit(np.asarray(train_ds.context[RR_SOURCE]), train_ds.y, seed)
            self.config.trees = asdict(options)

    def forward(self, x: torch.Tensor, rr: torch.Tensor, template: torch.Tensor | None = None) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(m(x, rr, template), dim=1) for m in self.members]).sum(dim=0)
        count = float(len(self.members))
        if self.trees is not None:
            weight = float(self.trees.options.weight)
            logp = logp + weight * torch.log_softmax(self.trees(rr), dim=1)
            count += weight
        logp = logp / count
        return logp / self.head.temperature if self.head.temperature != 1.0 else logp
