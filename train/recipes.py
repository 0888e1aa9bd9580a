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
        model = "".join(f", {k}={v}" for k, v in self.model_config.items())
        return (f"{self.model} ({data}{model}); {t.epochs} epochs at most, batch {t.batch_size}, lr {t.lr}, "
                f"{t.class_weighting.value} class weights, {t.loss.value} loss, {t.sampling.value} sampling, "
                f"patience {t.patience}")


RHYTHM = ("pre_rr", "local_rr", "long_rr", "pre_local", "pre_long", "local_long", "pre_median", "local_cv")
MORPHOLOGY = MORPHOLOGY_FEATURES

MITDB_RECIPE = Recipe(
    name="mitdb",
    model="beat_ensemble",
    data={"task": "beats", "leads": ["MLII"], "sampling_rate_hz": 180.0, "beat_window": (0.35, 0.45),
          "context": "causal", "template_beats": 16, "rr_features": RHYTHM + MORPHOLOGY + ("pre_prev",)},
    train=TrainConfig(epochs=10, batch_size=128, lr=3e-3, patience=5, class_weighting=ClassWeighting.NONE,
                      sampling=Sampling.BALANCED),
    model_config={"members": ({"rr_skip": True, "feature_names": RHYTHM},),
                  "trees": {"rounds": 30, "leaves": 15, "learning_rate": 0.05, "min_samples_leaf": 200,
                            "weight": 4.0}},
    why="AAMI beat classes from MLII at 180 Hz with a causal rhythm context (streams beat by beat). One network "
        "reads the beat against the patient's template (amplitude-scaled) and the RR features as ratios to the "
        "local and long-term rhythm, with a direct rhythm path to the logits, trained on class-balanced batches; "
        "beside it, a short boost of trees over the RR and morphology features (template correlation, P-wave "
        "region, QRS width, cluster prematurity, how abruptly the RR interval changed), weighted 4 to 1 in the "
        "mean of log-probabilities. In the "
        "patient-wise cross-validation the trees rank S beats far better than the network, and a short boost "
        "(30 rounds) generalises to new patients where a long one learns the training patients' own rhythms "
        "(docs/results/mitdb_cv.md)",
)

RECIPES = {r.name: r for r in (MITDB_RECIPE,)}


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise EdgemedError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]
