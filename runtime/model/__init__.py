"""The bedside model: `EdgeModel` (load with integrity checks, predict batches, stream chunks), its predictions,
and the input checks and plausibility marks every call goes through."""

from edgemed.runtime.model.edge_model import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_BATCH_SIZE,
    EdgeModel,
    MetadataWarning,
)
from edgemed.runtime.model.prediction import UNCERTAIN, Prediction, check_outputs

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "DEFAULT_BATCH_SIZE", "UNCERTAIN", "EdgeModel", "MetadataWarning",
           "Prediction", "check_outputs"]
