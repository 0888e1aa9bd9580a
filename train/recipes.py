"""Recommended recipes: a model, its data options and its training settings, named, so that `edgemed train
--recipe NAME`, `make mitdb` and the cross-validation benchmark train exactly the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgemed.core.errors import EdgemedError
from edgemed.core.spec import MORPHOLOGY_FEATURES
from edgemed.train.trainer import ClassWeighting, Sampling, TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str
    model: str
    data: dict[str, Any]  # options of the data source (see DataOptions)
    train: TrainConfig
    model_config: dict[str, Any] = field(default_factory=dict)
    why: str = ""

    def describe(self) -> str:
        data = ", ".join(f"{k}={v}" for k, v in self.data.items())
        t = self.train
        return (f"{self.model} ({data}); {t.epochs} epochs at most, batch {t.batch_size}, lr {t.lr}, "
                f"{t.class_weighting.value} class weights, {t.loss.value} loss, {t.sampling.value} sampling, "
                f"patience {t.patience}")


RHYTHM = ("pre_rr", "local_rr", "long_rr", "pre_local", "pre_long", "local_long", "pre_median", "local_cv")
MORPHOLOGY = MORPHOLOGY_FEATURES

MITDB_RECIPE = Recipe(
    name="mitdb",
    model="beat_cnn",
    data={"task": "beats", "leads": ["MLII"], "sampling_rate_hz": 180.0, "beat_window": (0.35, 0.45),
          "context": "causal", "template_beats": 16, "rr_features": RHYTHM},
    train=TrainConfig(epochs=10, batch_size=128, lr=3e-3, patience=5, class_weighting=ClassWeighting.NONE,
                      sampling=Sampling.BALANCED),
    model_config={"rr_skip": True},
    why="AAMI beat classes from MLII at 180 Hz with a causal rhythm context (streams beat by beat), the RR "
        "features as ratios to the local and long-term rhythm, a per-patient template with amplitude scaling, a "
        "direct rhythm path to the logits, class-balanced batches. The morphology features and the two-member "
        "ensemble did not beat it over two seeds of the patient-wise cross-validation (docs/results/mitdb_cv.md)",
)

RECIPES = {r.name: r for r in (MITDB_RECIPE,)}


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise EdgemedError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]
