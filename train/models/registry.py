"""A timm-style registry: `create_model(name, **config)` builds any registered architecture.

One family class may be registered under several names with some config fixed: `gru`, `lstm` and `rnn` are the
same recurrent family with `cell` fixed to each.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from edgemed.core.errors import ModelError
from edgemed.core.spec import Preprocessing
from edgemed.train.models.base import SPEC_FIELDS, EdgeModule

_REGISTRY: dict[str, tuple[type[EdgeModule], dict[str, Any]]] = {}
MAX_CONFIG_INT = 2**16  # no size, width or count of a model here comes near it; a crafted config would
MAX_CONFIG_ITEMS = 64


def register_model(name: str, **fixed: Any):
    """Class decorator making `model_cls` available as `create_model(name)`, with `fixed` config values."""

    def wrap(model_cls: type[EdgeModule]) -> type[EdgeModule]:
        _REGISTRY[name] = (model_cls, fixed)
        return model_cls

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def family(name: str) -> type[EdgeModule]:
    """The family class registered as `name`."""
    return _lookup(name)[0]


def _lookup(name: str) -> tuple[type[EdgeModule], dict[str, Any]]:
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    return _REGISTRY[name]


def _check_bounds(name: str, key: str, value: Any) -> None:
    """Numbers in a config (from a checkpoint, maybe crafted) must be finite and of a plausible size."""
    values = value if isinstance(value, list | tuple) else [value]
    if len(values) > MAX_CONFIG_ITEMS:
        raise ModelError(f"{name}: config {key} lists {len(values)} values (at most {MAX_CONFIG_ITEMS})")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if not math.isfinite(v) or abs(v) > MAX_CONFIG_INT:
            raise ModelError(f"{name}: config {key}={v!r} is out of range (at most {MAX_CONFIG_INT:,})")


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    """Turn plain values (from JSON, a checkpoint or the CLI) into the field's declared type."""
    if field.name == "preprocessing" and isinstance(value, dict):
        return Preprocessing.from_dict(value)
    if isinstance(value, list):
        return tuple(value)
    if str(field.type).startswith("tuple") and isinstance(value, int | float | str):
        return (value,)  # one value where the config takes several (-c channels=8)
    return value


def model_config(name: str, **config: Any):
    """Build the config dataclass of model `name`, rejecting unknown, ill-typed or fixed keys."""
    model_cls, fixed = _lookup(name)
    clash = sorted(k for k in set(config) & set(fixed) if config[k] != fixed[k])
    if clash:
        raise ModelError(f"{name}: {', '.join(f'{k}={fixed[k]!r}' for k in clash)} is fixed for this model")
    config_cls = model_cls.traits.config
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    merged = {**config, **fixed}
    unknown = sorted(set(merged) - set(fields))
    if unknown:
        raise ModelError(f"{name}: unknown config key(s) {unknown}; valid keys: {sorted(set(fields) - set(fixed))}")
    for key, value in merged.items():
        if key not in SPEC_FIELDS:
            _check_bounds(name, key, value)
    try:
        return config_cls(**{k: _coerce(fields[k], v) for k, v in merged.items()})
    except (TypeError, ValueError, OverflowError) as exc:
        raise ModelError(f"{name}: invalid config: {exc}") from exc


def create_model(name: str, **config: Any) -> EdgeModule:
    """Instantiate a registered model from keyword config (see each family's config dataclass)."""
    model_cls, _ = _lookup(name)
    model = model_cls(model_config(name, **config))
    model.architecture = name
    return model
