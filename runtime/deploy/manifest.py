"""The bundle manifest (schema edgemed.bundle/1) and the settings `edgemed tune` leaves (edgemed.tuned/1), each
validated as data when read: every name plain, every digest present, every field of its type."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemed.core.errors import BundleError
from edgemed.core.limits import read_bounded
from edgemed.runtime.deploy.safe_zip import check_member_name, check_twins
from edgemed.runtime.engines import engine_names, engine_precisions
from edgemed.runtime.engines.providers import GRAPH_OPTIMIZATIONS

SCHEMA = "edgemed.bundle/1"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 2**20
TUNED_SCHEMA = "edgemed.tuned/1"
PRECISIONS = engine_precisions()
GRAPH_LEVELS = tuple(GRAPH_OPTIMIZATIONS)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class BundledModel:
    """One model's entry in the manifest: its files and what its metadata recorded."""

    file: str
    sha256: str
    size_bytes: int
    sidecar: str
    labels: list[str]
    spec: dict[str, Any] | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None
    exporter: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    checksums: dict[str, Any] = field(default_factory=dict)
    card: str | None = None  # its model card (written by `edgemed evaluate`), when bundled
    backend: str = "onnxruntime"  # the engine it was validated for, and runs on
    precision: str = "fp32"
    reference: str | None = None  # reference inputs and validated outputs (`verify-bundle --run`)
    tuned: dict[str, Any] | None = None  # the settings `edgemed tune` chose (threads, graph options, timing)


@dataclass
class Manifest:
    """`manifest.json` (schema edgemed.bundle/1). `signature` is filled in by verification, not stored."""

    created_utc: str
    device: dict[str, Any]
    requirements: list[str]
    models: list[BundledModel]
    files: dict[str, str]
    schema: str = SCHEMA
    signature: dict[str, Any] = field(default_factory=dict)
    replays: list[Any] = field(default_factory=list)  # filled by `verify_bundle(run=True)`, not stored

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("signature")
        out.pop("replays")
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2).encode()


def read_tuned(folder: Path) -> dict[str, Any]:
    """The settings `edgemed tune` wrote to `folder` (tuned.json), each checked: schema, model file (a plain name
    beside it), backend, precision, threads and graph optimisation."""
    path = Path(folder) / "tuned.json"
    try:
        tuned = json.loads(read_bounded(path, 2**20, "a tune result"))
    except (OSError, ValueError, RecursionError) as exc:
        raise BundleError(f"{path}: not a readable tune result ({exc}); run edgemed tune first") from exc
    if not isinstance(tuned, dict) or tuned.get("schema") != TUNED_SCHEMA:
        raise BundleError(f"{path}: not an edgemed tune result ({TUNED_SCHEMA})")
    problems = []
    if not isinstance(tuned.get("file"), str):
        problems.append("no model file")
    if tuned.get("backend") not in engine_names():
        problems.append(f"backend {str(tuned.get('backend'))[:40]!r} is not one of {', '.join(engine_names())}")
    if tuned.get("precision") not in PRECISIONS:
        problems.append(f"precision {str(tuned.get('precision'))[:40]!r} is not one of {', '.join(PRECISIONS)}")
    threads = tuned.get("threads")
    if "threads" in tuned and (isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1024):
        problems.append(f"threads {str(threads)[:40]!r} is not a whole number from 1 to 1024")
    if "graph_optimization" in tuned and tuned["graph_optimization"] not in GRAPH_LEVELS:
        problems.append(f"graph_optimization is not one of {', '.join(GRAPH_LEVELS)}")
    if problems:
        raise BundleError(f"{path}: not a usable tune result: {'; '.join(problems)}; run edgemed tune again")
    check_member_name(tuned["file"], str(path))
    return tuned


def parse_manifest(files: dict[str, bytes], where: str) -> Manifest:
    """The manifest, validated as data: every name plain, every digest present, every model entry consistent."""
    if MANIFEST not in files:
        raise BundleError(f"{where}: refused: no {MANIFEST}")
    try:
        raw = json.loads(files[MANIFEST])
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{where}: refused: {MANIFEST} is not valid JSON") from exc
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise BundleError(f"{where}: refused: {MANIFEST} is not an edgemed bundle manifest ({SCHEMA})")
    listed, models = raw.get("files"), raw.get("models")
    if not isinstance(listed, dict) or not isinstance(models, list) or not models:
        raise BundleError(f"{where}: refused: {MANIFEST} lists no files or no models")
    check_twins([str(n) for n in listed], where)
    for name, digest in listed.items():
        check_member_name(str(name), where)
        if not isinstance(digest, str) or len(digest) != 64:
            raise BundleError(f"{where}: refused: {MANIFEST} gives {name!r} no sha256")
    entries = []
    names = {f.name for f in dataclasses.fields(BundledModel)}
    for entry in models:
        if (not isinstance(entry, dict) or not isinstance(entry.get("file"), str)
                or not isinstance(entry.get("sidecar"), str) or entry["file"] not in listed
                or entry["sidecar"] not in listed):
            raise BundleError(f"{where}: refused: a model entry names a file (or sidecar) the manifest does not list")
        try:
            entries.append(_entry({k: v for k, v in entry.items() if k in names}, listed))
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{where}: refused: a model entry of {entry['file']!r} is malformed ({exc})") from exc
    device = raw.get("device")
    if not isinstance(device, dict) or not isinstance(device.get("name"), str):
        raise BundleError(f"{where}: refused: {MANIFEST} names no device")
    requirements = raw.get("requirements")
    return Manifest(created_utc=str(raw.get("created_utc", "")), device=device,
                    requirements=[str(r) for r in requirements] if isinstance(requirements, list) else [],
                    models=entries, files={str(k): v for k, v in listed.items()})


def _entry(fields: dict[str, Any], listed: dict[str, Any]) -> BundledModel:
    """A model entry whose every field has its type, and whose reference and card are files the manifest lists."""
    entry = BundledModel(**fields)
    for name in ("reference", "card"):
        value = getattr(entry, name)
        if value is not None and (not isinstance(value, str) or value not in listed):
            raise ValueError(f"its {name} {str(value)[:80]!r} is not a file the manifest lists")
    if entry.backend not in engine_names() or entry.precision not in PRECISIONS:
        raise ValueError(f"backend {str(entry.backend)[:40]!r} / precision {str(entry.precision)[:40]!r} unknown")
    for name in ("parity", "exporter", "provenance", "checksums"):
        if not isinstance(getattr(entry, name), dict):
            raise ValueError(f"{name} is not an object")
    if entry.tuned is not None and not isinstance(entry.tuned, dict):
        raise ValueError("tuned is not an object")
    return entry
