"""Models from outside edgemed: TorchScript files, ExportedPrograms (.pt2) and, only on request, pickled modules.

These carry no edgemed spec, so the caller states the input shape, which axes are dynamic and the labels.
A plain pickled `nn.Module` is refused unless `trust_pickle`: unpickling runs whatever code the file names.
"""

from __future__ import annotations

import enum
import zipfile
from pathlib import Path

import torch
from torch import nn

from edgemed.core.digest import file_sha256
from edgemed.core.errors import CheckpointError, SpecError
from edgemed.core.spec import ModelSpec, TensorSpec
from edgemed.export.exporters import Exporter


class FileKind(enum.Enum):
    CHECKPOINT = "edgemed checkpoint"
    TORCHSCRIPT = "TorchScript"
    EXPORTED_PROGRAM = "ExportedProgram"
    PICKLE = "torch pickle"


def file_kind(path: Path) -> FileKind:
    """Tell the formats apart by their archive layout, without loading anything."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        names = zipfile.ZipFile(path).namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: not a PyTorch file (not a torch.save, TorchScript or .pt2 archive)") from exc
    if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
        return FileKind.TORCHSCRIPT
    if any(n.endswith("/archive_format") or n.endswith("/models/model.json") for n in names):
        return FileKind.EXPORTED_PROGRAM
    if any(n.endswith("/data.pkl") for n in names):
        return FileKind.PICKLE
    raise CheckpointError(f"{path}: unrecognised PyTorch archive layout")


def parse_axes(items: tuple[str, ...], rank: int) -> dict[int, str]:
    """`--dynamic-axis 0=batch --dynamic-axis 2=samples` to {0: "batch", 2: "samples"}."""
    axes: dict[int, str] = {}
    for item in items:
        index, sep, name = item.partition("=")
        if not sep or not index.strip().lstrip("-").isdigit() or not name.strip():
            raise SpecError(f"--dynamic-axis {item!r}: expected INDEX=NAME, e.g. 0=batch")
        i = int(index)
        if not -rank <= i < rank:
            raise SpecError(f"--dynamic-axis {item!r}: index {i} outside an input of rank {rank}")
        axes[i % rank] = name.strip()
    if axes.get(0) != "batch":
        raise SpecError("--dynamic-axis must name axis 0 'batch' (0=batch): edgemed models take batches")
    return axes


def foreign_spec(kind: FileKind, input_shape: tuple[int, ...], axes: dict[int, str], labels: tuple[str, ...],
                 input_name: str = "x") -> ModelSpec:
    shape = tuple(axes.get(i, d) for i, d in enumerate(input_shape))
    return ModelSpec(
        architecture=f"foreign:{kind.name.lower()}",
        inputs=(TensorSpec(input_name, shape, description=f"input of a {kind.value} model"),),
        outputs=(TensorSpec("logits", ("batch", len(labels)), layout="batch,class"),),
        labels=labels,
    )


def load_foreign(path: Path, kind: FileKind, trust_pickle: bool) -> tuple[nn.Module, object, tuple[Exporter, ...]]:
    """(reference module, object to hand the exporter, exporters that can handle it)."""
    if kind is FileKind.TORCHSCRIPT:
        module = torch.jit.load(str(path), map_location="cpu").eval()
        return module, module, (Exporter.TORCHSCRIPT,)
    if kind is FileKind.EXPORTED_PROGRAM:
        program = torch.export.load(str(path))
        # The TorchScript exporter cannot trace an ExportedProgram's module ("Calling train() is not
        # supported"), so only dynamo applies; the program keeps the dynamic axes it was exported with.
        return program.module(), program, (Exporter.DYNAMO,)
    if not trust_pickle:
        raise CheckpointError(
            f"{path}: a pickled PyTorch object, not an edgemed checkpoint. Loading it would run arbitrary code "
            "from the file; pass --trust-pickle only if you trust its source, or save the model with "
            "torch.jit.save or torch.export.save instead"
        )
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(obj, nn.Module):
        raise CheckpointError(f"{path}: the pickle holds a {type(obj).__name__}, not an nn.Module")
    return obj.eval(), obj.eval(), (Exporter.TORCHSCRIPT, Exporter.DYNAMO)


def check_output(module: nn.Module, spec: ModelSpec, input_shape: tuple[int, ...]) -> None:
    """Run once at the stated shape: the output must be [batch, number of labels]."""
    try:
        with torch.no_grad():
            out = module(torch.zeros(input_shape))
    except Exception as exc:
        raise SpecError(f"the model does not run on --input-shape {list(input_shape)}: "
                        f"{str(exc).splitlines()[0][:200]}") from exc
    if isinstance(out, tuple | list):
        out = out[0]
    expected = (input_shape[0], len(spec.labels))
    if tuple(out.shape) != expected:
        raise SpecError(f"the model outputs shape {list(out.shape)}, but --labels names {len(spec.labels)} "
                        f"classes (expected {list(expected)})")


def describe_source(path: Path, kind: FileKind) -> dict[str, str]:
    return {"source_file": str(path.resolve()), "source_kind": kind.value, "source_sha256": file_sha256(path)}
