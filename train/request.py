"""`train_recipe`: one training (or cross-validation) request, as the CLI, `make mitdb` and the benchmarks give it,
resolved against a named recipe and run. The CLI only parses its options into a `TrainRequest`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemed.core.errors import OptionError
from edgemed.train.cross_validation import CrossValidation
from edgemed.train.data import SYNTHETIC_SOURCES
from edgemed.train.data.load import DataOptions
from edgemed.train.recipes import recipe
from edgemed.train.run import RunSummary, run_cross_validation, run_training
from edgemed.train.split import DEFAULT_VAL_FRACTION
from edgemed.train.trainer import TrainConfig


@dataclass
class TrainRequest:
    """What to train. `train` holds the TrainConfig fields given explicitly (a recipe's own settings fill the
    rest); `validation` is either groups of `data` (comma-separated, e.g. WFDB records) or another data source;
    `cv_folds` asks for patient-wise cross-validation instead of one model."""

    data: str
    out: Path
    model: str | None = None
    recipe: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    data_options: DataOptions = field(default_factory=DataOptions)
    model_config: dict[str, Any] = field(default_factory=dict)
    val_fraction: float = DEFAULT_VAL_FRACTION
    validation: str | None = None
    cv_folds: int | None = None
    overwrite: bool = False


def resolve(request: TrainRequest) -> tuple[str, TrainConfig, DataOptions, dict[str, Any]]:
    """(model name, training config, data options, model config): the recipe's, overridden by what was given."""
    if request.recipe is None:
        if not request.model:
            raise OptionError("name a `model` (or a `recipe`)")
        return (request.model, dataclasses.replace(TrainConfig(), **request.train), request.data_options,
                dict(request.model_config))
    chosen = recipe(request.recipe)
    if request.model and request.model != chosen.model:
        raise OptionError(f"the {request.recipe} `recipe` trains {chosen.model}; drop `model` {request.model}")
    options = DataOptions(**{**chosen.data, **request.data_options.to_dict()})
    return (chosen.model, dataclasses.replace(chosen.train, **request.train), options,
            _merged(chosen.model_config, request.model_config))


def _merged(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The recipe's model config with what was given: a mapping given for a mapping changes only its keys."""
    out = dict(base)
    for key, value in given.items():
        out[key] = ({**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict)
                    else value)
    return out


def train_recipe(request: TrainRequest) -> RunSummary | CrossValidation:
    """Train one model into `request.out` (model.pt, metrics.json, training.png), or cross-validate (cv.json,
    cv.md)."""
    model, cfg, options, config = resolve(request)
    if request.cv_folds:
        if request.validation:
            raise OptionError("cross-validation (`cv_folds`) splits the data itself; drop `validation`")
        return run_cross_validation(model, request.data, request.out, request.cv_folds, train_cfg=cfg,
                                    model_overrides=config, data_options=options, val_fraction=request.val_fraction,
                                    overwrite=request.overwrite)
    given = request.validation
    outside = bool(given) and (Path(given).exists() or given in SYNTHETIC_SOURCES)
    groups = [g.strip() for g in given.split(",") if g.strip()] if given and not outside else None
    return run_training(model, request.data, request.out, train_cfg=cfg, model_overrides=config,
                        data_options=options, val_fraction=request.val_fraction, val_groups=groups,
                        validation_data=given if outside else None, overwrite=request.overwrite)
