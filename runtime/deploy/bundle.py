"""Deployment bundles: models with their sidecars, a manifest with every checksum and report, and a README, as a
folder or a zip, optionally signed.

Reading a bundle never trusts its layout: `verify_bundle` validates the archive or folder as data
(`safe_zip`), checks every file's sha256 against the manifest, each model against its own sidecar and integrity
record, and the Ed25519 signature when a key is given, then loads every model from a fresh private folder that is
removed afterwards. `load_bundle` refuses a bundle that fails. Everything here needs the runtime only (signing
needs the `sign` extra).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from edgemed.core.atomic import (
    check_output,
    inside_folder,
    private_tempdir,
    public_mode,
    publish_file,
    remove_tempdir,
    sidecar_path,
)
from edgemed.core.errors import BundleError, EdgemedError
from edgemed.core.limits import read_bounded
from edgemed.runtime.deploy.acceptance import REFERENCE_SUFFIX, reference_case, replay
from edgemed.runtime.deploy.safe_zip import check_member_name, check_twins, private_copy, read_bundle_files
from edgemed.runtime.deploy.signing import SIGNATURE_FILE, sign, verify
from edgemed.runtime.ecg.model_card import card_model_sha256
from edgemed.runtime.engines import engine_names, engine_precisions
from edgemed.runtime.engines.providers import GRAPH_OPTIMIZATIONS
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.onnx.info import describe
from edgemed.runtime.onnx.integrity import verify_file

SCHEMA = "edgemed.bundle/1"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 2**20

__all__ = ["BundleError", "BundledModel", "MANIFEST", "Manifest", "SCHEMA", "load_bundle", "make_bundle",
           "verify_bundle"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _requirements(backend: str = "onnxruntime") -> list[str]:
    pins = []
    for pkg in ("edgemed", "numpy", "onnxruntime", *(["openvino"] if backend == "openvino" else [])):
        try:
            pins.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pins.append(pkg)
    return pins


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


def _readme(manifest: Manifest) -> str:
    dev = manifest.device
    lines = [f"# edgemed bundle for {dev['name']}", "", dev["description"], "",
             "Install the runtime only (no torch), then check the bundle and run a model:", "", "```",
             f"pip install {' '.join(manifest.requirements)}", "edgemed verify-bundle .",
             f"edgemed run {manifest.models[0].file} INPUT.npz --device {dev['name']}", "```", "",
             "| model | labels | parity | quantisation | model card |", "|---|---|---|---|---|"]
    for m in manifest.models:
        parity = "passed" if m.parity.get("passed") else "not recorded"
        quant = m.quantization or {}
        q = f"{quant['mode']}, macro-F1 drop {quant['macro_f1_drop_points']:.2f} pts" if quant else "fp32"
        lines.append(f"| {m.file} | {', '.join(m.labels)} | {parity} | {q} | {m.card or '-'} |")
    lines += ["", f"Latency budget {dev['latency_budget_ms']} ms, memory budget {dev['memory_budget_mb']} MB, "
              f"{dev['threads']} thread(s), providers {', '.join(p['name'] for p in dev['providers'])}.",
              "Every file's sha256 is in manifest.json, and every model carries its .sha256 sidecar and an in-file "
              "integrity record; the runtime refuses the bundle if any differs. A signed bundle also carries "
              "manifest.sig: check it with `edgemed verify-bundle . --key PUBLIC.pem`."]
    return "\n".join(lines) + "\n"


def _check_replaceable(path: Path) -> None:
    """`--force` replaces an earlier bundle only: a folder or zip holding an edgemed manifest and nothing but the
    files that manifest lists (and the signature). Anything else in it was not written by edgemed, and stays."""
    try:
        if path.is_dir() and not path.is_symlink():
            present = {p.name + ("/" if p.is_dir() and not p.is_symlink() else "") for p in path.iterdir()}
            manifest = json.loads(read_bounded(path / MANIFEST, MAX_MANIFEST_BYTES, MANIFEST))
        elif path.is_file():
            with zipfile.ZipFile(path) as z:
                present = set(z.namelist())
                with z.open(MANIFEST) as f:
                    manifest = json.loads(f.read(MAX_MANIFEST_BYTES))
        else:
            raise BundleError(f"{path}: exists and is not an edgemed bundle; --force replaces only earlier bundles")
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            raise ValueError("not an edgemed manifest")
        listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    except (OSError, ValueError, KeyError, RecursionError, zipfile.BadZipFile, EdgemedError) as exc:
        raise BundleError(f"{path}: exists and is not an edgemed bundle; --force replaces only earlier bundles") \
            from exc
    foreign = sorted(present - set(listed) - {MANIFEST, SIGNATURE_FILE})
    if foreign:
        raise BundleError(f"{path}: holds files edgemed did not write ({', '.join(foreign[:5])}); --force replaces "
                          "only what an earlier bundle wrote: move them away first")


def _check_isa(path: Path, quantization: dict[str, Any] | None, profile: Any) -> None:
    """An int8 model ships only to a device whose instruction-set class its quantiser checked it on."""
    scheme = ((quantization or {}).get("graph_passes") or {}).get("scheme")
    isa = getattr(profile, "isa", "")
    if not isinstance(scheme, dict) or not isa or isa == "detected":
        return
    targets = scheme.get("targets") or []
    if isa not in targets:
        raise BundleError(f"{path}: quantised for {', '.join(targets)} CPUs, but {profile.name} is {isa}, where its "
                          f"int8 results may differ; quantise it again with --device {profile.name}")


TUNED_SCHEMA = "edgemed.tuned/1"
PRECISIONS = engine_precisions()
GRAPH_LEVELS = tuple(GRAPH_OPTIMIZATIONS)


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


def _cards(cards: list[Path], entries: list[BundledModel]) -> dict[str, bytes]:
    """Each model card as `<model stem>.card.md`, linked to the bundled model whose sha256 its first line names."""
    by_sha = {e.sha256: e for e in entries}
    out = {}
    for path in cards:
        try:
            data = Path(path).read_bytes()
            sha = card_model_sha256(data.decode("utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path}: cannot read the model card ({exc})") from exc
        entry = by_sha.get(sha)
        if entry is None:
            raise BundleError(f"{path}: a card for model sha256 {sha[:12]}..., which is not among the bundled models")
        if entry.card is not None:
            raise BundleError(f"{path}: {entry.file} already has a card")
        entry.card = f"{Path(entry.file).stem}.card.md"
        out[entry.card] = data
    return out


def make_bundle(models: list[Path], device: str, out: Path, sign_key: Path | None = None,
                force: bool = False, cards: list[Path] | None = None, backend: str = "onnxruntime",
                precision: str = "fp32", tuned: dict[str, Any] | None = None) -> Manifest:
    """Write models (each with its sidecar and, from `cards`, its model card), manifest.json, README.md and, with
    `sign_key`, manifest.sig to folder `out` or zip `out` (ending .zip), atomically. Every model must pass its own
    integrity checks (sidecar and integrity record) and load. An existing `out` is replaced only with `force`, and
    only if it is a bundle."""
    from edgemed.runtime.engines.providers import resolve_device

    profile = resolve_device(device)
    models = [Path(m) for m in models]
    if not models:
        raise BundleError("no models given")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise BundleError(f"model file names must differ inside a bundle: {names}")
    for name in names:
        check_member_name(name, "bundle")
    check_twins([n for m in models for n in (m.name, sidecar_path(m).name)], "bundle")
    check_output(out, force, [*models, *map(sidecar_path, models), *(cards or [])], what="bundle", folder_ok=True)
    for given in (*models, *(cards or [])):
        if inside_folder(Path(given), out):
            raise BundleError(f"{given} lies inside the bundle {out} it would replace; copy it elsewhere first")
    if out.exists() or out.is_symlink():
        _check_replaceable(out)
    if not out.parent.is_dir():
        raise BundleError(f"{out}: folder {out.parent} does not exist")
    entries, payload = [], {}
    for path in models:
        try:
            verify_file(path, strict=True)  # sidecar and integrity record both present and matching
            loaded = EdgeModel(path, require_integrity=True, backend=backend, precision=precision)  # it loads here
        except EdgemedError as exc:
            raise BundleError(f"{path}: not bundled: {exc}") from exc
        info = describe(path)
        meta = info.metadata
        _check_isa(path, meta.quantization, profile)
        payload[path.name] = path.read_bytes()
        payload[sidecar_path(path).name] = sidecar_path(path).read_bytes()
        reference = path.stem + REFERENCE_SUFFIX
        payload[reference] = reference_case(loaded)
        entries.append(BundledModel(
            file=path.name, sha256=info.sha256, size_bytes=info.size_bytes, sidecar=sidecar_path(path).name,
            labels=list(meta.spec.labels) if meta.spec else [], spec=meta.spec.to_dict() if meta.spec else None,
            parity=meta.parity, quantization=meta.quantization, exporter=meta.exporter, provenance=meta.provenance,
            checksums=meta.checksums, backend=backend, precision=precision, reference=reference, tuned=tuned))
    payload.update(_cards(list(cards or []), entries))
    manifest = Manifest(created_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), device=profile.to_dict(),
                        requirements=_requirements(backend), models=entries, files={})
    payload["README.md"] = _readme(manifest).encode()
    manifest.files = {name: _sha256(data) for name, data in payload.items()}
    payload[MANIFEST] = manifest.to_json()
    if sign_key is not None:
        payload[SIGNATURE_FILE] = sign(payload[MANIFEST], sign_key)
    _publish(payload, out, force)
    return manifest


def _publish(payload: dict[str, bytes], out: Path, force: bool) -> None:
    stage = private_tempdir(out.parent, prefix=f".{out.name}.")
    old = None
    try:
        if out.suffix == ".zip":
            target = stage / "bundle.zip"
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
                for name, data in payload.items():
                    z.writestr(name, data)
            os.chmod(target, public_mode())
        else:
            target = stage / "bundle"
            target.mkdir()
            for name, data in payload.items():
                (target / name).write_bytes(data)
                os.chmod(target / name, public_mode())
            os.chmod(target, public_mode(directory=True))
        if out.suffix == ".zip":
            publish_file(target, out, replace=force)  # exclusive unless --force
            return
        if out.exists() and not force:
            raise BundleError(f"{out} appeared while the bundle was being written and was left as it is")
        if out.is_dir():  # an earlier bundle, checked by the caller: moved aside, then deleted
            old = stage / "replaced"
            os.replace(out, old)
        os.replace(target, out)
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old, out)
        raise
    finally:
        remove_tempdir(stage)


def _manifest(files: dict[str, bytes], where: str) -> Manifest:
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


def _checked(path: Path, key: Path | None) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and files of a bundle whose every checksum (and signature, with `key`) holds."""
    where = str(path)
    files = read_bundle_files(path)
    manifest = _manifest(files, where)
    problems = []
    unlisted = sorted(set(files) - set(manifest.files) - {MANIFEST, SIGNATURE_FILE})
    if unlisted:
        problems.append(f"{', '.join(unlisted)} not listed in the manifest")
    for name, digest in manifest.files.items():
        if name not in files:
            problems.append(f"{name} is missing")
        elif _sha256(files[name]) != digest:
            problems.append(f"{name} was altered (sha256 {_sha256(files[name])[:12]}..., manifest {digest[:12]}...)")
    if problems:
        raise BundleError(f"{where}: refused: " + "; ".join(problems))
    if key is not None:
        manifest.signature = verify(files[MANIFEST], files.get(SIGNATURE_FILE), key, where)
    elif SIGNATURE_FILE in files:
        raise BundleError(f"{where}: refused: the bundle is signed, but no key was given to check the signature; "
                          "pass --key with the signer's public key (an unchecked signature proves nothing)")
    else:
        manifest.signature = {"present": False, "checked": False}
    return manifest, files


def verify_bundle(path: Path, key: Path | None = None, run: bool = False) -> Manifest:
    """The manifest, if every file is present with its sha256, the signature holds (when `key` is given), and every
    model loads strictly (its sidecar and integrity record match), and with `run` reproduces its reference outputs
    here (`edgemed.runtime.deploy.acceptance`); else BundleError listing every problem. Replays go to
    `manifest.replays`."""
    path = Path(path)
    manifest, files = _checked(path, key)
    wanted = [n for m in manifest.models for n in (m.file, m.sidecar, *([m.reference] if run and m.reference else []))]
    folder = private_copy({n: files[n] for n in wanted})
    problems = []
    try:
        for entry in manifest.models:
            try:
                loaded = EdgeModel(folder / entry.file, require_integrity=True, backend=entry.backend,
                                   precision=entry.precision)
                if run:
                    if not entry.reference:
                        problems.append(f"{entry.file} has no reference outputs to replay (bundled before they "
                                        "were added); bundle it again")
                        continue
                    result = replay(loaded, folder / entry.reference)
                    manifest.replays.append(result)
                    if not result.passed:
                        problems.append(f"{result.describe()}: this device computes something else than the "
                                        "machine that validated the model")
            except EdgemedError as exc:
                problems.append(f"{entry.file} does not load: {str(exc).replace(str(folder) + os.sep, '')}")
    finally:
        remove_tempdir(folder)
    if problems:
        raise BundleError(f"{path}: refused: " + "; ".join(problems))
    return manifest


def load_bundle(path: Path, model: str | None = None, key: Path | None = None, **options: Any) -> EdgeModel:
    """A model from a verified bundle (the first unless `model` names one), on the bundle's device profile unless
    `device` is given. A bundle that fails any check is refused; nothing stays on disk afterwards."""
    path = Path(path)
    manifest, files = _checked(path, key)
    entries = {m.file: m for m in manifest.models}
    name = model or manifest.models[0].file
    if name not in entries:
        raise BundleError(f"{path}: no model {name!r}; it holds {sorted(entries)}")
    folder = private_copy({name: files[name], entries[name].sidecar: files[entries[name].sidecar]})
    try:
        device = options.pop("device", manifest.device["name"])
        entry = entries[name]
        tuned = entry.tuned if isinstance(entry.tuned, dict) else {}
        chosen = {k: tuned[k] for k in ("threads", "graph_optimization") if k in tuned}
        options = {"backend": entry.backend, "precision": entry.precision, **chosen, **options}
        loaded = EdgeModel(folder / name, device=device, require_integrity=True, **options)
    finally:
        remove_tempdir(folder)
    loaded.path = path / name
    return loaded
