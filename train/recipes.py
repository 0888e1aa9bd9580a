"""Recommended recipes: a model, its data options and its training settings, named, so that `edgemed train
--recipe NAME`, `make mitdb` and the cross-validation benchmark train exactly the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgemed.core.errors import EdgemedError
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


MITDB_RECIPE = Recipe(
    name="mitdb",
    model="beat_cnn",
    data={"task": "beats", "leads": ["MLII"], "sampling_rate_hz": 180.0, "beat_window": (0.35, 0.45),
          "context": "causal", "template_beats": 16},
    train=TrainConfig(epochs=10, batch_size=128, lr=3e-3, patience=5, class_weighting=ClassWeighting.NONE,
                      sampling=Sampling.BALANCED),
    model_config={"rr_skip": True, "morphology_dropout": 0.3},
    why="AAMI beat classes from MLII at 180 Hz; a causal rhythm context (streams beat by beat), a per-patient "
        "template with amplitude scaling, a direct rhythm path to the logits with morphology dropout, and "
        "class-balanced batches: the best of the patient-wise cross-validations in docs/results/mitdb_cv.md",
)

RECIPES = {r.name: r for r in (MITDB_RECIPE,)}


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise EdgemedError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]
