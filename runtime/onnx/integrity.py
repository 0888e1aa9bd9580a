"""Integrity of a model file, checked on every load with numpy-free, onnx-free code.

Two records guard an edgemed model:
- the `.sha256` sidecar: the digest of the whole file, written beside it;
- `edgemed.integrity`, inside the file: the digest of every byte except that entry itself (graph, weights,
  opsets and all metadata: spec, labels, preprocessing, provenance), plus `edgemed.checksums.weights_sha256`,
  the digest of the initializers alone.

A file whose bytes differ from either record is refused (`IntegrityError`). A missing sidecar or a missing
integrity record is a visible `IntegrityWarning`, and an error in strict mode and inside bundles. Neither record
stops someone who rewrites the file and both digests; a signed bundle does (`edgemed bundle --sign`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from edgemed.core.digest import sidecar_path
from edgemed.core.errors import IntegrityError
from edgemed.core.limits import read_bounded
from edgemed.core.record import Record
from edgemed.runtime.onnx.file import read_model_file
from edgemed.runtime.onnx.proto import ModelSummary

INTEGRITY_KEY = "edgemed.integrity"
CHECKSUMS_KEY = "edgemed.checksums"
INTEGRITY_VERSION = 1
SIDECAR_BYTES = 4096
COVERS = "every byte of the file except this entry: graph, weights, opsets and all metadata (spec, labels, ...)"


class IntegrityWarning(UserWarning):
    """A model has no sidecar or no integrity record, so tampering would go unnoticed."""


def weights_sha256(summary: ModelSummary) -> str:
    """Digest of every initializer (its name and serialized tensor), in name order."""
    h = hashlib.sha256()
    for name, raw in sorted(summary.initializer_bytes):
        encoded = name.encode()
        h.update(len(encoded).to_bytes(8, "little") + encoded + len(raw).to_bytes(8, "little"))
        h.update(raw)
    return h.hexdigest()


def content_sha256(data: bytes, summary: ModelSummary) -> str:
    """Digest of the file with the integrity entry's bytes left out."""
    span = summary.metadata_spans.get(INTEGRITY_KEY)
    if span is None:
        return hashlib.sha256(data).hexdigest()
    h = hashlib.sha256()
    h.update(data[: span[0]])
    h.update(data[span[1] :])
    return h.hexdigest()


def integrity_record(data: bytes, summary: ModelSummary) -> str:
    """The JSON value of `edgemed.integrity` for a file serialised without that entry."""
    return json.dumps({"version": INTEGRITY_VERSION, "algorithm": "sha256",
                       "content_sha256": content_sha256(data, summary), "covers": COVERS}, sort_keys=True)


def read_sidecar(path: Path) -> tuple[str | None, Path | None]:
    """(digest, sidecar file) for `path`, looking beside a symbolic link and then beside its target;
    (None, None) when there is none."""
    candidates = [sidecar_path(path)]
    if path.is_symlink():
        candidates.append(sidecar_path(path.resolve()))
    for sidecar in candidates:
        if sidecar.is_file():
            data = read_bounded(sidecar, SIDECAR_BYTES, "a .sha256 sidecar (one line)")
            text = data.decode("utf-8", errors="replace").split()
            digest = text[0].lower() if text else ""
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise IntegrityError(f"{sidecar}: not a sha256 sidecar (expected '<64 hex digits>  {path.name}')")
            return digest, sidecar
    return None, None


@dataclass(eq=False, repr=False)
class IntegrityReport(Record):
    """How a loaded file's integrity was checked: its sha256, the sidecar and in-file record outcomes, warnings."""

    sha256: str
    sidecar: str  # "matches", or "missing"
    record: str  # "verified" or "missing"
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "sidecar": self.sidecar, "record": self.record, "warnings": self.warnings}


def check_record(data: bytes, summary: ModelSummary, where: str) -> str:
    """Verify the in-file records; returns "verified", or "missing" when the file carries none (written by another
    tool or an older edgemed)."""
    meta = summary.metadata
    if INTEGRITY_KEY not in meta:
        return "missing"
    try:
        record = json.loads(meta[INTEGRITY_KEY])
        expected = record["content_sha256"]
        version = int(record.get("version", 0))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, ArithmeticError) as exc:
        raise IntegrityError(f"{where}: the integrity record is malformed ({type(exc).__name__}); refusing to load "
                             "it") from exc
    if version > INTEGRITY_VERSION:
        raise IntegrityError(f"{where}: integrity record version {version} is newer than this edgemed reads; upgrade")
    try:
        recorded_weights = json.loads(meta.get(CHECKSUMS_KEY, "{}")).get("weights_sha256")
    except (ValueError, AttributeError, RecursionError):
        recorded_weights = None
    actual_weights = weights_sha256(summary)
    if recorded_weights is None:
        raise IntegrityError(f"{where}: the metadata records no weights digest (edgemed.checksums); refusing to load")
    if recorded_weights != actual_weights:
        raise IntegrityError(f"{where}: the weights differ from the digest recorded at export "
                             f"(recorded {recorded_weights[:12]}..., found {actual_weights[:12]}...); the model was "
                             "altered. Refusing to load it")
    if content_sha256(data, summary) != expected:
        raise IntegrityError(f"{where}: the graph or metadata (labels, spec, preprocessing...) differ from the "
                             "integrity record written at export; the file was altered. Refusing to load it")
    return "verified"


def verify_model(path: Path, data: bytes, summary: ModelSummary, strict: bool = False) -> IntegrityReport:
    """Check `data` (the bytes read from `path`) against its sidecar and its in-file records. Mismatches raise
    IntegrityError; a missing sidecar or integrity record warns, or raises when `strict`."""
    digest = hashlib.sha256(data).hexdigest()
    expected, sidecar = read_sidecar(path)
    if expected is not None and expected != digest:
        raise IntegrityError(f"{path}: sha256 {digest[:16]}... does not match its sidecar {sidecar.name} "
                             f"({expected[:16]}...); the file changed after export. Refusing to load it")
    report = IntegrityReport(digest, "matches" if expected else "missing", check_record(data, summary, str(path)))
    if expected is None:
        report.warnings.append(f"{path.name} has no {sidecar_path(path).name} sidecar: a changed file would go "
                               "unnoticed")
    if report.record == "missing":
        report.warnings.append(f"{path.name} carries no integrity record (not exported by edgemed, or by an older "
                               "one): altered weights or labels would go unnoticed; export it with edgemed")
    if strict and report.warnings:
        raise IntegrityError(f"{path}: refused: " + "; ".join(report.warnings))
    for message in report.warnings:
        warnings.warn(message, IntegrityWarning, stacklevel=3)
    return report


def verified_copy(path: Path | str, folder: Path) -> Path:
    """Read `path` once, verify it strictly and write the verified bytes to `folder`: a command that reads a model
    several times (quantize, tune) works on this copy, so a file swapped after the check is never used."""
    data, summary = read_model_file(path)
    verify_model(Path(path), data, summary, strict=True)
    copy = Path(folder) / "verified-input.onnx"
    copy.write_bytes(data)
    return copy


def verify_file(path: Path | str, strict: bool = True) -> IntegrityReport:
    """Read `path` and verify it (strictly by default: sidecar and integrity record both required), for commands
    that build on a model (quantize, bundle, verify): they must not launder a file that fails its own checks."""
    data, summary = read_model_file(path)
    return verify_model(Path(path), data, summary, strict=strict)
