"""Model registry and architectures. Importing this package registers every built-in model."""

from edgemed.train.models import cnn_gru, cnn_gru_frames, gru  # noqa: F401  (registration side effect)
from edgemed.train.models.registry import create_model, list_models, model_config

__all__ = ["create_model", "list_models", "model_config"]
