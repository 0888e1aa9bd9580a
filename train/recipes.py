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


RHYTHM = ("pre_rr", "local_rr", "long_rr", "pre_local", "pre_long", "local_long", "pre_median", "local_cv")
MORPHOLOGY = ("qrs_corr", "p_corr", "qrs_energy", "qrs_width", "residual", "cluster_share", "cluster_rr")

MITDB_RECIPE = Recipe(
    name="mitdb",
    model="beat_ensemble",
    data={"task": "beats", "leads": ["MLII"], "sampling_rate_hz": 180.0, "beat_window": (0.35, 0.45),
          "context": "causal", "template_beats": 16, "rr_features": RHYTHM + MORPHOLOGY},
    train=TrainConfig(epochs=10, batch_size=128, lr=3e-3, patience=5, class_weighting=ClassWeighting.NONE,
                      sampling=Sampling.BALANCED),
    model_config={"members": ({"rr_skip": True, "morphology_dropout": 0.3, "feature_names": RHYTHM},
                              {"rr_skip": False, "morphology_dropout": 0.0})},
    why="AAMI beat classes from MLII at 180 Hz with a causal rhythm context (streams beat by beat) and a per-patient "
        "template with amplitude scaling; two members averaged: one with a direct rhythm path to the logits and "
        "morphology dropout, one reading the unsupervised morphology features (template correlations, widths, "
        "beat clusters) too; class-balanced batches. The best of the patient-wise cross-validations in "
        "docs/results/mitdb_cv.md",
)

RECIPES = {r.name: r for r in (MITDB_RECIPE,)}


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise EdgemedError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]
