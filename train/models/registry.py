"""A timm-style registry: `create_model(name, **config)` builds any registered architecture."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from edgemed.core.errors import ModelError
from edgemed.core.spec import Preprocessing

_REGISTRY: dict[str, tuple[type[nn.Module], type]] = {}


def register_model(name: str, config_cls: type):
    """Class decorator that makes a model available to `create_model(name)`."""

    def wrap(model_cls: type[nn.Module]) -> type[nn.Module]:
        model_cls.architecture = name
        model_cls.config_cls = config_cls
        _REGISTRY[name] = (model_cls, config_cls)
        return model_cls

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _lookup(name: str) -> tuple[type[nn.Module], type]:
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    return _REGISTRY[name]


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    """Turn plain values (from JSON, a checkpoint or the CLI) into the field's declared type."""
    if field.name == "preprocessing" and isinstance(value, dict):
        return Preprocessing(**value)
    if isinstance(value, list):
        return tuple(value)
    return value


def model_config(name: str, **config: Any):
    """Build the config dataclass of model `name`, rejecting unknown or ill-typed keys."""
    _, config_cls = _lookup(name)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ModelError(f"{name}: unknown config key(s) {unknown}; valid keys: {sorted(fields)}")
    try:
        return config_cls(**{k: _coerce(fields[k], v) for k, v in config.items()})
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{name}: invalid config: {exc}") from exc


def create_model(name: str, **config: Any) -> nn.Module:
    """Instantiate a registered model from keyword config (see each model's config dataclass)."""
    model_cls, _ = _lookup(name)
    return model_cls(model_config(name, **config))
