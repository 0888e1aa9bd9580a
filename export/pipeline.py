"""`edgemed export` as a library call: checkpoint in, checked and parity-proven ONNX file out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from edgemed.core.atomic import check_output, private_tempdir, remove_tempdir, sidecar_path
from edgemed.core.digest import file_sha256
from edgemed.core.errors import ExportError, LimitError, ParityError, SpecError, first_line
from edgemed.core.examples import example_inputs, example_sizes
from edgemed.core.spec import ModelSpec
from edgemed.export.cases import as_torch, shape_cases, stream_rows
from edgemed.export.exporters import (
    AUTO_ORDER,
    DEFAULT_OPSET,
    DYNAMO_MIN_OPSET,
    Exporter,
    check_opset,
    export_onnx,
)
from edgemed.export.foreign import (
    FileKind,
    check_model_output,
    describe_source,
    file_kind,
    foreign_spec,
    inspect_file,
    load_foreign,
    parse_axes,
    refuse_untrusted,
)
from edgemed.export.onnx_io import check_model, check_writable, save_model, set_metadata
from edgemed.export.parity import FP32_ATOL, FP32_RTOL, ParityCase, ParityReport, run_parity
from edgemed.export.real_data import real_windows
from edgemed.runtime.engines.onnxruntime import TimedSession
from edgemed.runtime.engines.providers import session_options
from edgemed.train.checkpoint import load_checkpoint
from edgemed.train.models.layers import READOUTS, set_readout


@dataclass
class ExportTarget:
    """What to export: the module, its spec, the PyTorch reference and the shapes to use."""

    module: nn.Module
    spec: ModelSpec
    export_length: int
    original: nn.Module | None = None
    length_multiple: int = 1
    exportable: object | None = None  # what the exporter receives when not `module` (an ExportedProgram)
    exporters: tuple[Exporter, ...] = AUTO_ORDER  # the exporters able to handle this kind of model
    real: tuple[dict[str, np.ndarray], str] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    source: Path | None = None  # the file it came from: never overwritten by the export
    data_source: Path | None = None  # the data file or folder its parity reads: never overwritten either


@dataclass
class ExportResult:
    path: Path
    sha256: str
    exporter: str
    reason: str
    attempts: list[dict[str, str]]
    parity: ParityReport
    spec: ModelSpec


def session(path_or_bytes: Path | bytes) -> TimedSession:
    """CPU session with all graph optimisations, as the runtime builds it (0 threads: onnxruntime's default), its
    runs under the runtime's deadline."""
    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return TimedSession(ort.InferenceSession(src, session_options(0, spinning=False),
                                             providers=["CPUExecutionProvider"]))


def measure_parity(target: ExportTarget, sess: TimedSession, atol: float = FP32_ATOL,
                   rtol: float = FP32_RTOL) -> ParityReport:
    """Random shapes, real windows when available, and for streaming models chunk-by-chunk equivalence."""
    spec, module = target.spec, target.module
    output_names = [o.name for o in sess.get_outputs()]

    def run_onnx(inputs):
        feeds = {i.name: inputs[i.name] for i in sess.get_inputs()}
        try:
            return sess.run(None, feeds)
        except LimitError:
            raise
        except Exception as exc:  # onnxruntime's errors share no base; an exporter may have fixed a dynamic axis
            shapes = ", ".join(f"{k} {'x'.join(map(str, v.shape))}" for k, v in feeds.items())
            raise ExportError(f"the exported graph does not run at {shapes}: {first_line(exc, 200)}") from exc

    def reference(inputs):
        with torch.no_grad():
            out = module(*as_torch(spec, inputs))
        return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]

    cases = shape_cases(spec, target.export_length)
    if target.real is not None and not spec.streaming:
        real, label = target.real
        cases.append(ParityCase(f"{label} data, batch {len(real[spec.signal.name])}", dict(real), label))
    report = run_parity(reference, run_onnx, output_names, cases, atol, rtol)
    if spec.streaming and target.original is not None:
        m = spec.streaming.chunk_multiple
        sizes = {**example_sizes(spec, 3), spec.streaming.chunk_axis: 12 * max(m, 8)}
        signals = [(example_inputs(spec, sizes, seed=7)[spec.signal.name], "random")]
        if target.real is not None:
            real, label = target.real
            signals.append((real[spec.signal.name][:2], label))
        for signal, source in signals:
            for chunk in sorted({m, 4 * m if m > 1 else 10}):
                for state in ("zeros", "random"):
                    report.rows.extend(stream_rows(target.original, module, spec, run_onnx, signal, chunk, state,
                                                   source, atol, rtol))
    return report


def export_target(target: ExportTarget, out: Path, exporter: Exporter = Exporter.AUTO,
                  opset: int = DEFAULT_OPSET, force: bool = False, readout: str = "final_state") -> ExportResult:
    """Export, check and prove parity; write the model (and its sidecar) only if some exporter passes. An existing
    output is replaced only with `force`; the source file never. `readout`: how recurrent stacks are read out
    (`edgemed.train.models.layers.READOUTS`), set on the model for this export only."""
    if readout not in READOUTS:
        raise ExportError(f"recurrent readout must be one of {READOUTS}, not {readout!r}")
    module = target.exportable if isinstance(target.exportable, nn.Module) else target.module
    previous = set_readout(module, readout)
    try:
        return _export_target(target, out, exporter, opset, force, readout)
    finally:
        set_readout(module, previous)


def _export_target(target: ExportTarget, out: Path, exporter: Exporter, opset: int, force: bool,
                   readout: str) -> ExportResult:
    out = Path(out)
    check_writable(out)
    sources = [p for p in (target.source, target.data_source) if p is not None]
    check_output(out, force, sources)
    check_output(sidecar_path(out), force, sources, what="sidecar")
    order = target.exporters if exporter is Exporter.AUTO else (exporter,)
    if exporter is not Exporter.AUTO and exporter not in target.exporters:
        raise ExportError(f"this model exports with {', '.join(e.value for e in target.exporters)} only, "
                          f"not `exporter` {exporter.value}")
    for candidate in order:
        if exporter is not Exporter.AUTO or candidate is not Exporter.DYNAMO:
            check_opset(opset, candidate)
    spec = target.spec
    axis = spec.sequence_axis
    # Batch 2: an example of batch 1 leaves the dynamo output's batch fixed at 1 (measured).
    sizes = example_sizes(spec, 2) if axis is None else {**example_sizes(spec, 2), axis: target.export_length}
    args = as_torch(spec, example_inputs(spec, sizes, mixed_lengths=False))
    multiples = {axis: target.length_multiple} if target.length_multiple > 1 else {}
    attempts: list[dict[str, str]] = []
    tmpdir = private_tempdir(out.parent, ".edgemed-export-")
    try:
        for candidate in order:
            use_opset = (max(opset, DYNAMO_MIN_OPSET) if candidate is Exporter.DYNAMO and exporter is Exporter.AUTO
                         else opset)
            path = tmpdir / f"{candidate.value}.onnx"
            try:
                export_onnx(target.exportable or target.module, args, spec, path, candidate, use_opset, multiples)
                model = onnx.load(str(path))  # pulls in any external data the exporter wrote
                check_model(model)
                report = measure_parity(target, session(model.SerializeToString()))
            except ExportError as exc:
                attempts.append({"exporter": candidate.value, "outcome": str(exc)})
                continue
            if not report.passed:
                worst = max(r.max_abs for r in report.failures)
                attempts.append({"exporter": candidate.value,
                                 "outcome": f"parity failed on {len(report.failures)} outputs, max abs {worst:.2e}"})
                if exporter is not Exporter.AUTO:
                    report.raise_for_failures(f"{candidate.value} export")
                continue
            attempts.append({"exporter": candidate.value, "outcome": "passed parity"})
            reason = (f"first in auto order ({', '.join(e.value for e in order)}) to pass parity"
                      if exporter is Exporter.AUTO else "asked for with `exporter`")
            _annotate(model, target, candidate, reason, attempts, report, use_opset, readout)
            digest = save_model(model, out, replace=force)
            return ExportResult(out, digest, candidate.value, reason, attempts, report, spec)
    finally:
        remove_tempdir(tmpdir)
    summary = "; ".join(f"{a['exporter']}: {a['outcome']}" for a in attempts)
    if any(a["outcome"].startswith("parity failed") for a in attempts):
        raise ParityError(f"no exporter produced a model matching PyTorch ({summary}); nothing written")
    raise ExportError(f"export failed ({summary}); nothing written")


def _annotate(model: onnx.ModelProto, target: ExportTarget, exporter: Exporter, reason: str,
              attempts: list[dict[str, str]], report: ParityReport, opset: int, readout: str) -> None:
    spec = target.spec
    model.producer_name = "edgemed"
    model.doc_string = f"{spec.architecture} classifier ({', '.join(spec.labels)}), exported by edgemed"
    provenance = {**target.provenance, "exported_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  "export_packages": {p: metadata.version(p) for p in ("torch", "onnx", "onnxruntime")}}
    set_metadata(model, {
        "spec": spec.to_dict(),
        "provenance": provenance,
        "exporter": {"name": exporter.value, "reason": reason, "attempts": attempts, "opset": opset,
                     "recurrent_readout": readout},
        "parity": report.to_dict(),
        "checksums": dict(target.checksums),  # save_model adds the weights digest of the bytes it writes
    })


def target_from_model(model: nn.Module, streaming: bool = False, real: tuple[dict[str, np.ndarray], str] | None = None,
                      length: int | None = None, **fields: Any) -> ExportTarget:
    """What to export for a model in memory (the streaming variant if asked), at its example length or `length`."""
    multiple = model.trace_multiple  # dynamo's dynamic axis needs pooled lengths declared as multiples
    if streaming:
        wrapper, spec = model.streaming_module()
        return ExportTarget(wrapper, spec, spec.example_sizes[spec.streaming.chunk_axis], original=model,
                            length_multiple=multiple, real=real, **fields)
    axis = model.spec.sequence_axis
    if length is None:
        length = model.spec.example_sizes.get(axis, 0) if axis else 0
        if real is not None and axis:
            length = real[0][model.spec.signal.name].shape[model.spec.signal.shape.index(axis)]
    length = -(-length // multiple) * multiple
    return ExportTarget(model, model.spec, length, original=model, length_multiple=multiple, real=real, **fields)


def target_from_checkpoint(path: Path, streaming: bool = False, use_real_data: bool = True) -> ExportTarget:
    """Load an edgemed checkpoint and describe what to export (the streaming variant if asked)."""
    model, ckpt = load_checkpoint(path)
    provenance = {**ckpt.get("provenance", {}), "model_config": ckpt.get("config", {})}  # what was shipped
    checksums = {"checkpoint_sha256": file_sha256(Path(path))}
    if provenance.get("data_sha256"):
        checksums["data_sha256"] = provenance["data_sha256"]
    real = real_windows(provenance, model.spec) if use_real_data else None
    data = provenance.get("data")
    data_source = Path(data) if isinstance(data, str) and data and Path(data).exists() else None
    return target_from_model(model, streaming, real, provenance=provenance, checksums=checksums, source=Path(path),
                             data_source=data_source)


def target_from_foreign(path: Path, input_shape: tuple[int, ...], dynamic_axes: tuple[str, ...],
                        labels: tuple[str, ...], trust_pickle: bool = False) -> ExportTarget:
    """A TorchScript file, an ExportedProgram or a pickled module, described by the caller. Files whose loading
    runs code need `trust_pickle` (see edgemed.export.foreign), checked before anything is loaded."""
    kind, why = inspect_file(path)
    if kind is FileKind.CHECKPOINT:
        raise ExportError(f"{path}: an edgemed checkpoint; export it without `input_shape`, `dynamic_axes` and "
                          "`labels`")
    refuse_untrusted(path, why, trust_pickle)
    if not input_shape or not labels:
        raise SpecError(f"{path} is a {kind.value} file without an edgemed spec: give `input_shape`, "
                        "`dynamic_axes` (at least 0=batch) and `labels`")
    spec = foreign_spec(kind, input_shape, parse_axes(dynamic_axes, len(input_shape)), labels)
    module, exportable, exporters, trust = load_foreign(path, trust_pickle)
    check_model_output(module, spec, input_shape)
    axis = spec.sequence_axis
    length = input_shape[spec.signal.shape.index(axis)] if axis else 0
    source = describe_source(path, kind)
    return ExportTarget(module, spec, length, exportable=exportable, exporters=exporters,
                        provenance={**source, **trust}, checksums={"source_sha256": source["source_sha256"]},
                        source=path)


def export_file(model: Path, output: Path | None = None, *, streaming: bool = False,
                exporter: Exporter = Exporter.AUTO, opset: int | None = None, real_data: bool = True,
                readout: str = "final_state", input_shape: tuple[int, ...] = (), dynamic_axes: tuple[str, ...] = (),
                labels: tuple[str, ...] = (), trust_pickle: bool = False, force: bool = False) -> ExportResult:
    """`edgemed export` as a library call: an edgemed checkpoint (with its recorded data for parity unless
    `real_data` is off), or a foreign model described by `input_shape`, `dynamic_axes` and `labels`, to ONNX at
    `output` (default: beside `model`, `.onnx` or `.stream.onnx`)."""
    model = Path(model)
    output = Path(output) if output else model.with_suffix(".stream.onnx" if streaming else ".onnx")
    if file_kind(model) is FileKind.CHECKPOINT and not (input_shape or labels or dynamic_axes):
        target = target_from_checkpoint(model, streaming=streaming, use_real_data=real_data)
    else:
        if streaming:
            raise ExportError("`streaming` needs an edgemed checkpoint of a family that streams")
        target = target_from_foreign(model, tuple(input_shape), tuple(dynamic_axes), tuple(labels), trust_pickle)
    if opset is None:
        opset = DYNAMO_MIN_OPSET if exporter is Exporter.DYNAMO else DEFAULT_OPSET
    return export_target(target, output, exporter, opset, force=force, readout=readout)
