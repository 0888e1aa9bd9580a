"""A spec from the graph alone, for ONNX files edgemed did not write (no labels, preprocessing or roles: inputs
are checked against the graph's own names, types and fixed sizes)."""

from __future__ import annotations

from pathlib import Path

from edgemed.core.errors import ModelLoadError, SpecError
from edgemed.core.spec import ModelSpec, TensorSpec
from edgemed.runtime.engines.base import Engine, TensorInfo


def spec_from_graph(engine: Engine, path: Path) -> ModelSpec:
    """A spec from the engine's view of the graph's inputs and outputs."""

    def tensor(info: TensorInfo, i: int) -> TensorSpec:
        if info.dtype is None:
            raise ModelLoadError(f"{path}: input {info.name!r} has a type edgemed does not feed")
        shape = tuple(d if isinstance(d, int) and d > 0 else (d if isinstance(d, str) and d else f"dim{i}_{k}")
                      for k, d in enumerate(info.shape))
        return TensorSpec(info.name, shape, info.dtype)

    outputs = engine.outputs()
    classes = outputs[0].shape[-1] if outputs[0].shape else None
    if not isinstance(classes, int) or classes < 2:
        raise ModelLoadError(f"{path}: no edgemed metadata and the first output's class axis is not fixed "
                             f"({outputs[0].shape}); cannot tell the classes")
    try:
        return ModelSpec(architecture="unknown (graph only)",
                         inputs=tuple(tensor(info, n) for n, info in enumerate(engine.inputs())),
                         outputs=(TensorSpec(outputs[0].name, tuple(outputs[0].shape[:-1]) + (classes,)),),
                         labels=tuple(f"class_{k}" for k in range(classes)))
    except SpecError as exc:
        raise ModelLoadError(f"{path}: the graph's inputs cannot be described: {exc}") from exc
