"""Writing a bundle: models with their sidecars, reference inputs and outputs, model cards, a manifest with every
checksum and report, and a README, as a folder or a zip, published whole (exclusively unless `force`, which
replaces only an earlier bundle holding nothing but what its manifest lists), optionally signed."""

from __future__ import annotations

import datetime as dt
import json
import os
import zipfile
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
from edgemed.runtime.deploy.acceptance import REFERENCE_SUFFIX, reference_case
from edgemed.runtime.deploy.manifest import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    SCHEMA,
    BundledModel,
    Manifest,
    sha256_of,
)
from edgemed.runtime.deploy.safe_zip import check_member_name, check_twins
from edgemed.runtime.deploy.signing import SIGNATURE_FILE, sign
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.model.card import card_model_sha256
from edgemed.runtime.onnx.info import describe
from edgemed.runtime.onnx.integrity import verify_file


def _requirements(backend: str = "onnxruntime") -> list[str]:
    pins = []
    for pkg in ("edgemed", "numpy", "onnxruntime", *(["openvino"] if backend == "openvino" else [])):
        try:
            pins.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pins.append(pkg)
    return pins


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


def _cards(cards: list[Path], entries: list[BundledModel]) -> dict[str, bytes]:
    """Each model card as `<model stem>.card.md`, linked to the bundled model whose sha256 its first line names."""
    by_sha = {e.sha256: e for e in entries}
    out = {}
    for path in cards:
        try:
            data = read_bounded(path, MAX_MANIFEST_BYTES, "a model card")
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
    manifest.files = {name: sha256_of(data) for name, data in payload.items()}
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
