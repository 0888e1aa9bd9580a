"""The two PyTorch-to-ONNX exporters behind one call, with dynamic axes taken from the spec.

`auto` tries them in this order and keeps the first whose output passes parity:
1. torchscript (`dynamo=False`): measured here to export every edgemed family with dynamic batch and
   time axes and a native GRU op, max abs error about 4e-8, in under a second; deprecated upstream.
2. dynamo (`dynamo=True`): the maintained path, but 7-70 s per export here, and upstream reports GRUs
   whose `linear_before_reset` differs from PyTorch with no error (pytorch#189225, onnxscript#2852); its
   dynamic sample axis works for the CNN-GRU only when declared a multiple of the pooling factor.
"""

from __future__ import annotations

import enum
import warnings
from pathlib import Path

import torch
from torch import nn

from edgemed.core.errors import ExportError, first_line
from edgemed.core.spec import ModelSpec

MIN_OPSET = 14  # measured: opset 11 breaks the variable-length GRU (int64 Gather indices); 14-20 all pass
MAX_OPSET = 20
DEFAULT_OPSET = 17
DYNAMO_MIN_OPSET = 18


class Exporter(enum.Enum):
    AUTO = "auto"
    TORCHSCRIPT = "torchscript"
    DYNAMO = "dynamo"


AUTO_ORDER = (Exporter.TORCHSCRIPT, Exporter.DYNAMO)


def _input_specs(spec: ModelSpec):
    return spec.inputs + (spec.streaming.state_inputs if spec.streaming else ())


def _dynamic_axes(spec: ModelSpec) -> dict[str, dict[int, str]]:
    return {t.name: t.dynamic_axes for t in (*_input_specs(spec), *spec.outputs) if t.dynamic_axes}


def _dynamic_shapes(spec: ModelSpec, multiples: dict[str, int]) -> dict[str, dict[int, object]]:
    """torch.export Dims, one per axis name, shared across inputs; a multiple constrains pooled axes."""
    dims: dict[str, object] = {}
    for t in _input_specs(spec):
        for name in t.dynamic_axes.values():
            if name not in dims:
                base = torch.export.Dim(f"{name}_base" if name in multiples else name, min=1)
                dims[name] = base * multiples[name] if name in multiples else base
    return {t.name: {i: dims[n] for i, n in t.dynamic_axes.items()} for t in _input_specs(spec)}


def check_opset(opset: int, exporter: Exporter) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"opset {opset} is outside {MIN_OPSET}..{MAX_OPSET}: below {MIN_OPSET} the exported GRU models do not "
            "load in onnxruntime (measured); choose `opset` between them"
        )
    if exporter is Exporter.DYNAMO and opset < DYNAMO_MIN_OPSET:
        raise ExportError(f"the dynamo exporter needs opset >= {DYNAMO_MIN_OPSET}; got {opset}")


def export_onnx(module: nn.Module | torch.export.ExportedProgram, args: tuple[torch.Tensor, ...], spec: ModelSpec,
                path: Path, exporter: Exporter, opset: int, multiples: dict[str, int] | None = None) -> None:
    """Write `module` to `path` as one ONNX file whose input and output names and dynamic axes follow `spec`."""
    input_names = [t.name for t in _input_specs(spec)]
    output_names = [t.name for t in spec.outputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and tracer notes; parity decides correctness
        try:
            if exporter is Exporter.TORCHSCRIPT:
                torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                                  dynamic_axes=_dynamic_axes(spec), opset_version=opset, dynamo=False)
            else:
                # A GRU export leaves a stale dispatch cache that breaks later dynamic-shape exports in
                # the same process (measured); clearing it first makes each export independent.
                torch.ops.aten.gru.input._dispatch_cache.clear()
                # An ExportedProgram carries its own dynamic shapes.
                shapes = None if isinstance(module, torch.export.ExportedProgram) else _dynamic_shapes(
                    spec, multiples or {})
                torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                                  dynamic_shapes=shapes, opset_version=opset,
                                  dynamo=True, external_data=False, optimize=True, verbose=False)
        except Exception as exc:  # exporters raise many types; the caller reports and tries the next one
            raise ExportError(f"{exporter.value} exporter failed: {type(exc).__name__}: {first_line(exc)}") from exc
