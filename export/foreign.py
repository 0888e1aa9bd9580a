"""Models from outside edgemed: TorchScript files, ExportedPrograms (.pt2) and, only on request, pickled modules.

These carry no edgemed spec, so the caller states the input shape, which axes are dynamic and the labels.

One trust rule: a file whose loading can run code from it loads only with `trust_pickle` (`--trust-pickle`):
a pickled object (its classes are imported and called while unpickling), an ExportedProgram (`torch.export.load`
unpickles), and every TorchScript file (TorchScript is a program: its `forward()` runs during the parity check and
can read or write files, and custom classes run their `__setstate__` while loading). What the file would run is
found by reading it as data first, and said in the refusal; a trusted load is recorded in the exported model's
provenance.
"""

from __future__ import annotations

import enum
import re
import zipfile
from pathlib import Path

import torch
from torch import nn

from edgemed.core.digest import file_sha256
from edgemed.core.errors import CheckpointError, SpecError, UnsafeFileError, first_line
from edgemed.core.limits import check_file_size
from edgemed.core.pickle_scan import code_globals
from edgemed.core.spec import ModelSpec, TensorSpec
from edgemed.core.zip_errors import ZIP_ERRORS
from edgemed.export.exporters import Exporter

TRUST_HINT = ("pass `trust_pickle` only if you trust its source (the choice is recorded in the exported model's "
              "provenance), or train and save the model with edgemed (checkpoints hold data only)")


class FileKind(enum.Enum):
    CHECKPOINT = "edgemed checkpoint"
    TORCHSCRIPT = "TorchScript"
    EXPORTED_PROGRAM = "ExportedProgram"
    PICKLE = "torch pickle"


def _archive(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    check_file_size(path, "model_mb")
    try:
        return zipfile.ZipFile(path)
    except ZIP_ERRORS as exc:
        raise CheckpointError(f"{path}: not a PyTorch file (not a torch.save, TorchScript or .pt2 archive)") from exc


def _torchscript_why(z: zipfile.ZipFile, names: list[str]) -> str:
    """Why loading a TorchScript archive runs code: always its program, and custom classes' `__setstate__`."""
    custom = []
    for n in names:
        if "/code/" in n and n.endswith(".py"):
            text = z.read(n).decode("utf-8", errors="replace")
            if re.search(r"\bdef\s+__setstate__\b|torch\s*\.\s*classes\b", text):
                custom.append(n.split("/code/", 1)[1])
    why = "it is a TorchScript program, whose code runs when it is loaded and run (its forward() runs for parity)"
    if custom:
        why += f"; its custom classes also run __setstate__ while loading ({', '.join(custom[:3])})"
    return why


def inspect_file(path: Path) -> tuple[FileKind, str | None]:
    """The file's kind and, when loading it would run code from it, why; read as data only, nothing loaded."""
    try:
        return _inspect(path)
    except ZIP_ERRORS as exc:
        raise CheckpointError(f"{path}: a damaged archive: {first_line(exc, 200)}") from exc


def _inspect(path: Path) -> tuple[FileKind, str | None]:
    with _archive(path) as z:
        names = z.namelist()
        if len(set(names)) != len(names):
            raise UnsafeFileError(f"{path}: refused: the archive holds two members with one name (readers would "
                                  "disagree on which one is loaded)")
        if any(n.endswith("/archive_format") or n.endswith("/models/model.json") or "/serialized_" in n
               for n in names):
            return FileKind.EXPORTED_PROGRAM, "torch.export.load unpickles objects from an ExportedProgram (.pt2)"
        if any(n.rsplit("/", 1)[-1] == "constants.pkl" or n.split("/", 1)[-1].startswith("code/") for n in names):
            return FileKind.TORCHSCRIPT, _torchscript_why(z, names)
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) > 1:
            raise UnsafeFileError(f"{path}: refused: an ambiguous archive ({len(pickles)} data.pkl members): what is "
                                  "checked might not be what loads")
        if not pickles:
            raise CheckpointError(f"{path}: unrecognised PyTorch archive layout (no data.pkl)")
        found = code_globals(z.read(pickles[0]))
    if found:
        shown = ", ".join(sorted(set(found))[:3]) + (" ..." if len(set(found)) > 3 else "")
        return FileKind.PICKLE, f"it pickles Python objects ({shown}), and unpickling imports and calls them"
    return FileKind.CHECKPOINT, None


def file_kind(path: Path) -> FileKind:
    return inspect_file(path)[0]


def refuse_untrusted(path: Path, why: str | None, trust_pickle: bool) -> None:
    if why and not trust_pickle:
        raise UnsafeFileError(f"{path}: refused: {why}; loading it would run code from the file. {TRUST_HINT}")


def parse_axes(items: tuple[str, ...], rank: int) -> dict[int, str]:
    """`--dynamic-axis 0=batch --dynamic-axis 2=samples` to {0: "batch", 2: "samples"}."""
    axes: dict[int, str] = {}
    for item in items:
        index, sep, name = item.partition("=")
        if not sep or not index.strip().lstrip("-").isdigit() or not name.strip():
            raise SpecError(f"`dynamic_axes` {item!r}: expected INDEX=NAME, e.g. 0=batch")
        i = int(index)
        if not -rank <= i < rank:
            raise SpecError(f"`dynamic_axes` {item!r}: index {i} outside an input of rank {rank}")
        axes[i % rank] = name.strip()
    if axes.get(0) != "batch":
        raise SpecError("`dynamic_axes` must name axis 0 'batch' (0=batch): edgemed models take batches")
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


def load_foreign(path: Path, trust_pickle: bool) -> tuple[nn.Module, object, tuple[Exporter, ...], dict]:
    """(reference module, object to hand the exporter, exporters that can handle it, trust record)."""
    kind, why = inspect_file(path)
    refuse_untrusted(path, why, trust_pickle)
    trust = {"trusted_code_on_load": {"reason": why, "granted_by": "`trust_pickle`"}} if why else {}
    if kind is FileKind.TORCHSCRIPT:
        module = torch.jit.load(str(path), map_location="cpu").eval()
        return module, module, (Exporter.TORCHSCRIPT,), trust
    if kind is FileKind.EXPORTED_PROGRAM:
        program = torch.export.load(str(path))
        # The TorchScript exporter cannot trace an ExportedProgram's module ("Calling train() is not
        # supported"), so only dynamo applies; the program keeps the dynamic axes it was exported with.
        return program.module(), program, (Exporter.DYNAMO,), trust
    if kind is FileKind.CHECKPOINT:
        raise CheckpointError(f"{path}: holds plain data (an edgemed checkpoint or a state_dict), not a model "
                              "module; export an edgemed checkpoint without `input_shape` and `labels`")
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(obj, nn.Module):
        raise CheckpointError(f"{path}: the pickle holds a {type(obj).__name__}, not an nn.Module")
    return obj.eval(), obj.eval(), (Exporter.TORCHSCRIPT, Exporter.DYNAMO), trust


def check_model_output(module: nn.Module, spec: ModelSpec, input_shape: tuple[int, ...]) -> None:
    """Run once at the stated shape: the output must be [batch, number of labels]."""
    try:
        with torch.no_grad():
            out = module(torch.zeros(input_shape))
    except Exception as exc:
        raise SpecError(f"the model does not run on `input_shape` {list(input_shape)}: "
                        f"{first_line(exc, 200)}") from exc
    if isinstance(out, tuple | list):
        out = out[0]
    expected = (input_shape[0], len(spec.labels))
    if tuple(out.shape) != expected:
        raise SpecError(f"the model outputs shape {list(out.shape)}, but `labels` names {len(spec.labels)} "
                        f"classes (expected {list(expected)})")


def describe_source(path: Path, kind: FileKind) -> dict[str, str]:
    return {"source_file": str(path.resolve()), "source_kind": kind.value, "source_sha256": file_sha256(path)}
