"""Deployment bundles: `make_bundle` writes one (`make`), `verify_bundle` checks one and `load_bundle` loads a model
from one.

Reading a bundle never trusts its layout: `verify_bundle` validates the archive or folder as data
(`safe_zip`), the manifest field by field (`manifest`), every file's sha256 against the manifest, each model against
its own sidecar and integrity record, and the Ed25519 signature (required when the bundle is signed), then loads
every model from a fresh private folder that is removed afterwards. `load_bundle` refuses a bundle that fails.
Everything here needs the runtime only (signing needs the `sign` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgemed.core.atomic import remove_tempdir
from edgemed.core.errors import BundleError, EdgemedError
from edgemed.runtime.deploy.acceptance import replay
from edgemed.runtime.deploy.make import make_bundle
from edgemed.runtime.deploy.manifest import (
    MANIFEST,
    SCHEMA,
    BundledModel,
    Manifest,
    parse_manifest,
    read_tuned,
    sha256_of,
)
from edgemed.runtime.deploy.safe_zip import private_copy, read_bundle_files
from edgemed.runtime.deploy.signing import SIGNATURE_FILE, verify
from edgemed.runtime.model import EdgeModel

__all__ = ["BundleError", "BundledModel", "MANIFEST", "Manifest", "SCHEMA", "load_bundle", "make_bundle",
           "read_tuned", "verify_bundle"]


def _checked(path: Path, key: Path | None) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and files of a bundle whose every checksum (and signature, with `key`) holds."""
    where = str(path)
    files = read_bundle_files(path)
    manifest = parse_manifest(files, where)
    problems = []
    unlisted = sorted(set(files) - set(manifest.files) - {MANIFEST, SIGNATURE_FILE})
    if unlisted:
        problems.append(f"{', '.join(unlisted)} not listed in the manifest")
    for name, digest in manifest.files.items():
        if name not in files:
            problems.append(f"{name} is missing")
        elif sha256_of(files[name]) != digest:
            problems.append(f"{name} was altered (sha256 {sha256_of(files[name])[:12]}..., manifest {digest[:12]}...)")
    if problems:
        raise BundleError(f"{where}: refused: " + "; ".join(problems))
    if key is not None:
        manifest.signature = verify(files[MANIFEST], files.get(SIGNATURE_FILE), key, where)
    elif SIGNATURE_FILE in files:
        raise BundleError(f"{where}: refused: the bundle is signed, but no key was given to check the signature; "
                          "pass `key` with the signer's public key (an unchecked signature proves nothing)")
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
