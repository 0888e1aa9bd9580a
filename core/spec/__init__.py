"""The model spec: the single declaration of a model's inputs, outputs, labels and preprocessing.

A model family builds it from its config; the checkpoint and the ONNX metadata each store it once; the runtime
reads it back (without torch) to check inputs. A dataset carries a `DataSpec` (labels, layout, channel names and
the preprocessing its samples had), from which the model's spec takes what concerns the data. Nothing else
re-declares these facts, and every window length comes from `Window.length`. Every number read back is checked:
finite, of its type and within bounds (`edgemed.core.bounds`).

Modules: `tensors` (inputs, outputs, streaming), `preprocessing` (normalisation, filters, windows, beat context),
`model` (ModelSpec, Calibration), `data` (DataSpec: datasets and training only, so the runtime never loads
it).
"""

from edgemed.core.spec.model import CHANNEL_AXES, SPEC_VERSION, Calibration, ModelSpec
from edgemed.core.spec.preprocessing import (
    MORPHOLOGY_FEATURES,
    RR_FEATURES,
    SIGNAL_CHECKS,
    WINDOW_KINDS,
    BandpassFilter,
    BeatContext,
    InputRange,
    Normalization,
    Preprocessing,
    Window,
)
from edgemed.core.spec.tensors import CONTEXT_SOURCES, DTYPES, ROLES, StreamingSpec, TensorSpec

__all__ = ["CHANNEL_AXES", "CONTEXT_SOURCES", "DTYPES", "MORPHOLOGY_FEATURES", "ROLES", "RR_FEATURES", "SIGNAL_CHECKS",
           "SPEC_VERSION", "WINDOW_KINDS", "BandpassFilter", "BeatContext", "Calibration", "DataSpec", "InputRange",
           "ModelSpec", "Normalization", "Preprocessing", "StreamingSpec", "TensorSpec", "Window"]


def __getattr__(name: str) -> type:
    """`DataSpec` is imported from here as before, but loaded only when asked for: datasets and training use it,
    and the runtime, which imports this package with every model, never does."""
    if name == "DataSpec":
        from edgemed.core.spec.data import DataSpec

        return DataSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
