"""Model registry and families. Importing this package registers every built-in model."""

from edgemed.train.models import (  # noqa: F401  (registration side effect)
    beat,
    beat_ensemble,
    cnn2d,
    cnn_recurrent,
    frames,
    recurrent,
)
from edgemed.train.models.registry import create_model, family, list_models, model_config

__all__ = ["create_model", "family", "list_models", "model_config"]
