"""Ed25519 signatures for bundles (the `sign` extra: `pip install 'edgemed[sign]'`, which brings `cryptography`).

The signature covers `manifest.json` byte for byte, and the manifest holds the sha256 of every other file, so a
bundle altered and re-hashed still fails. Keys are PEM files: PKCS#8 private keys, SubjectPublicKeyInfo public
keys (`edgemed keygen`, or `openssl genpkey -algorithm ed25519`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from edgemed.core.atomic import check_output, write_bytes_atomic
from edgemed.core.errors import BundleError, EdgemedError
from edgemed.core.limits import read_bounded

KEY_BYTES = 16 * 1024  # an Ed25519 PEM key is a few hundred bytes

SIGNATURE_FILE = "manifest.sig"


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise EdgemedError("signing needs the 'sign' extra: pip install 'edgemed[sign]'") from exc
    return serialization, ed25519, InvalidSignature


def _read_key(path: Path, private: bool):
    serialization, ed25519, _ = _crypto()
    try:
        data = read_bounded(path, KEY_BYTES, "a PEM key")
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the key ({exc.strerror})") from exc
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        kind = "private" if private else "public"
        raise BundleError(f"{path}: not a PEM {kind} key without a password ({exc})") from exc
    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise BundleError(f"{path}: not an Ed25519 key; make one with `edgemed keygen`")
    return key


def _raw_public(public_key) -> bytes:
    serialization, _, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key) -> str:
    return hashlib.sha256(_raw_public(public_key)).hexdigest()


def sign(manifest: bytes, private_key_path: Path) -> bytes:
    """The contents of `manifest.sig` for these manifest bytes."""
    key = _read_key(private_key_path, private=True)
    signature = key.sign(manifest)
    return json.dumps({"algorithm": "ed25519", "public_key_sha256": fingerprint(key.public_key()),
                       "signature": base64.b64encode(signature).decode()}, indent=1).encode()


def verify(manifest: bytes, signature_file: bytes | None, public_key_path: Path, where: str) -> dict[str, Any]:
    """Raise BundleError unless `signature_file` is a valid signature of `manifest` by the key's owner."""
    _, _, InvalidSignature = _crypto()
    key = _read_key(public_key_path, private=False)
    if signature_file is None:
        raise BundleError(f"{where}: refused: the bundle is not signed ({SIGNATURE_FILE} missing), but `key` asks "
                          "for a signature")
    try:
        record = json.loads(signature_file)
        signature = base64.b64decode(record["signature"], validate=True)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise BundleError(f"{where}: refused: {SIGNATURE_FILE} is malformed") from exc
    try:
        key.verify(signature, manifest)
    except InvalidSignature as exc:
        raise BundleError(f"{where}: refused: the signature does not match manifest.json for key "
                          f"{fingerprint(key)[:16]}... (altered after signing, or signed by another key)") from exc
    return {"signed_by": fingerprint(key)}


def keygen(private_path: Path, public_path: Path, force: bool = False) -> str:
    """Write a new Ed25519 key pair (the private key readable by its owner only); returns the fingerprint."""
    serialization, ed25519, _ = _crypto()
    for path in (private_path, public_path):
        check_output(path, force, what="key file")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_bytes_atomic(public_path, public, replace=force)
    write_bytes_atomic(private_path, private, mode=0o600, replace=force)
    return fingerprint(key.public_key())
