"""Reading edgemed's metadata from an ONNX file: the one reader on the runtime side (torch- and onnx-free), as
`export.onnx_io` is the one writer on the export side.

Keys (each `edgemed.<key>` in metadata_props, JSON): `format_version`, `spec` (the ModelSpec, once: inputs,
outputs, labels, preprocessing, streaming), `provenance`, `exporter`, `parity`, `checksums`, `quantization`
(quantised models), `integrity` (see runtime.integrity).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgemed.core.errors import EdgemedError, SpecError
from edgemed.core.record import Record
from edgemed.core.spec import ModelSpec
from edgemed.runtime.onnx.proto import ModelSummary

PREFIX = "edgemed."
KNOWN = ("format_version", "spec", "provenance", "exporter", "parity", "checksums", "quantization", "integrity")


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value


def _version(value: Any) -> int:
    """The format version: a plain whole number of at most 9 ASCII digits, else 0 (unknown). Crafted values
    (`'²'`, which str.isdigit accepts and int refuses, or 5,000 digits) read as unknown, never as an error."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 0
    text = str(value) if isinstance(value, str) or abs(value) < 10**9 else ""
    return int(text) if 0 < len(text) <= 9 and text.isascii() and text.isdigit() else 0


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(eq=False, repr=False)
class ModelMetadata(Record):
    """edgemed's metadata entries of one file, decoded: the spec (or why it could not be read), format version,
    provenance, exporter, parity, checksums, quantisation, and any other `edgemed.` entries."""

    spec: ModelSpec | None = None
    spec_error: str | None = None  # why the stored spec could not be read, when it could not
    format_version: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    exporter: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    checksums: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None
    other: dict[str, Any] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        """True when the file carries any edgemed metadata."""
        return self.format_version is not None or self.spec is not None or self.spec_error is not None

    @classmethod
    def from_summary(cls, summary: ModelSummary) -> ModelMetadata:
        raw = {k[len(PREFIX):]: _decode(v) for k, v in summary.metadata.items() if k.startswith(PREFIX)}
        meta = cls()
        if "spec" in raw:
            try:
                spec = raw["spec"]
                meta.spec = ModelSpec.from_dict(spec) if isinstance(spec, dict) else ModelSpec.from_json(str(spec))
            except (SpecError, EdgemedError) as exc:
                meta.spec_error = str(exc)
        meta.format_version = _version(raw.get("format_version")) if raw else None
        meta.provenance = _object(raw.get("provenance"))
        meta.exporter = _object(raw.get("exporter"))
        meta.parity = _object(raw.get("parity"))
        meta.checksums = _object(raw.get("checksums"))
        meta.quantization = raw["quantization"] if isinstance(raw.get("quantization"), dict) else None
        meta.other = {k: v for k, v in raw.items() if k not in KNOWN}
        return meta

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format_version": self.format_version,
                               "spec": self.spec.to_dict() if self.spec else None, "provenance": self.provenance,
                               "exporter": self.exporter, "parity": self.parity, "checksums": self.checksums,
                               "quantization": self.quantization}
        if self.spec_error:
            out["spec_error"] = self.spec_error
        out.update(self.other)
        return out
