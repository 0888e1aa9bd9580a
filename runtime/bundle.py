"""Deployment bundles: models, a manifest with every checksum and report, and a README, as a folder or a zip.

`verify_bundle` checks every file's sha256 against the manifest and that every model loads; `load_bundle`
refuses a bundle that fails. Everything here needs the runtime only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from edgemed.core.atomic import public_mode
from edgemed.core.errors import EdgemedError
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.model_info import describe

SCHEMA = "edgemed.bundle/1"
MANIFEST = "manifest.json"


class BundleError(EdgemedError):
    """A bundle with a missing, altered or unloadable file."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _requirements() -> list[str]:
    pins = []
    for pkg in ("edgemed", "numpy", "onnxruntime"):
        try:
            pins.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pins.append(pkg)
    return pins


def _readme(manifest: dict[str, Any]) -> str:
    dev = manifest["device"]
    lines = [f"# edgemed bundle for {dev['name']}", "", dev["description"], "",
             "Install the runtime only (no torch), then check the bundle and run a model:", "", "```",
             f"pip install {' '.join(manifest['requirements'])}", "edgemed verify-bundle .",
             f"edgemed run {manifest['models'][0]['file']} INPUT.npz --device {dev['name']}", "```", "",
             "| model | labels | parity | quantisation |", "|---|---|---|---|"]
    for m in manifest["models"]:
        parity = "passed" if (m.get("parity") or {}).get("passed") else "not recorded"
        quant = m.get("quantization") or {}
        q = f"{quant['mode']}, macro-F1 drop {quant['macro_f1_drop_points']:.2f} pts" if quant else "fp32"
        lines.append(f"| {m['file']} | {', '.join(m['labels'])} | {parity} | {q} |")
    lines += ["", f"Latency budget {dev['latency_budget_ms']} ms, memory budget {dev['memory_budget_mb']} MB, "
              f"{dev['threads']} thread(s), providers {', '.join(p['name'] for p in dev['providers'])}.",
              "Every file's sha256 is in manifest.json; the runtime refuses the bundle if one differs."]
    return "\n".join(lines) + "\n"


def make_bundle(models: list[Path], device: str, out: Path) -> dict[str, Any]:
    """Write models, manifest.json and README.md to folder `out` or zip `out` (ending .zip), atomically."""
    from edgemed.runtime.providers import resolve_device

    profile = resolve_device(device)
    if not models:
        raise BundleError("no models given")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise BundleError(f"model file names must differ inside a bundle: {names}")
    if out.exists():
        raise BundleError(f"{out}: already exists; choose another output")
    if not out.parent.is_dir():
        raise BundleError(f"{out}: folder {out.parent} does not exist")
    entries, files = [], {}
    for path in models:
        EdgeModel(path)  # it must load here (and match its own sidecar) before it ships
        info = describe(path)
        meta = info["edgemed"]
        files[path.name] = info["sha256"]
        entries.append({"file": path.name, "sha256": info["sha256"], "size_bytes": info["size_bytes"],
                        "spec": meta.get("spec"), "labels": meta.get("labels") or [], "parity": meta.get("parity"),
                        "quantization": meta.get("quantization"), "exporter": meta.get("exporter"),
                        "provenance": meta.get("provenance"), "checksums": meta.get("checksums")})
    manifest = {"schema": SCHEMA, "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "device": profile.to_dict(), "requirements": _requirements(), "models": entries}
    readme = _readme(manifest)
    files["README.md"] = _sha256(readme.encode())
    manifest["files"] = files
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for path in models:
            shutil.copyfile(path, stage / path.name)
        (stage / "README.md").write_text(readme)
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out.suffix == ".zip":
            tmp_zip = stage / "bundle.zip"
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as z:
                for name in [*files, MANIFEST]:
                    z.write(stage / name, name)
            os.chmod(tmp_zip, public_mode())
            os.replace(tmp_zip, out)
        else:
            os.chmod(stage, public_mode(directory=True))
            os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return manifest


def _read_files(path: Path) -> dict[str, bytes]:
    if not path.exists():
        raise BundleError(f"{path}: no such bundle")
    if path.is_dir():
        return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    try:
        with zipfile.ZipFile(path) as z:
            return {n: z.read(n) for n in z.namelist()}
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{path}: neither a bundle folder nor a zip") from exc


def verify_bundle(path: Path) -> dict[str, Any]:
    """The manifest, if every listed file is present with its sha256 and every model loads; else BundleError
    listing every problem."""
    files = _read_files(path)
    if MANIFEST not in files:
        raise BundleError(f"{path}: no {MANIFEST}")
    try:
        manifest = json.loads(files[MANIFEST])
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: {MANIFEST} is not valid JSON") from exc
    problems = []
    for name, digest in manifest.get("files", {}).items():
        if name not in files:
            problems.append(f"{name} is missing")
        elif _sha256(files[name]) != digest:
            problems.append(f"{name} was altered (sha256 {_sha256(files[name])[:12]}..., manifest {digest[:12]}...)")
    if problems:
        raise BundleError(f"{path}: refused: " + "; ".join(problems))
    with tempfile.TemporaryDirectory() as tmp:
        for entry in manifest["models"]:
            target = Path(tmp) / entry["file"]
            target.write_bytes(files[entry["file"]])
            try:
                EdgeModel(target)
            except EdgemedError as exc:
                problems.append(f"{entry['file']} does not load: {exc}")
    if problems:
        raise BundleError(f"{path}: refused: " + "; ".join(problems))
    return manifest


def load_bundle(path: Path, model: str | None = None, **options: Any) -> EdgeModel:
    """A model from a verified bundle (the first unless `model` names one), on the bundle's device profile
    unless `device` is given; a bundle whose checksums do not match is refused."""
    manifest = verify_bundle(path)
    names = [m["file"] for m in manifest["models"]]
    name = model or names[0]
    if name not in names:
        raise BundleError(f"{path}: no model {name!r}; it holds {names}")
    files = _read_files(path)
    folder = Path(tempfile.mkdtemp(prefix="edgemed-bundle-"))
    (folder / name).write_bytes(files[name])
    device = options.pop("device", manifest["device"]["name"])
    return EdgeModel(folder / name, device=device, **options)
