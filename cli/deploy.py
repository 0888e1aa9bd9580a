"""`edgemed bundle`, `verify-bundle` and `keygen` (torch-free): what ships to a device, and its checks."""

from __future__ import annotations

from pathlib import Path

import click

from edgemed.cli.options import (
    backend_option,
    force_option,
    user_errors,
)


@click.command("bundle")
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option("--device", required=True, metavar="NAME", help="Device profile the bundle targets.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="A folder, or a file.zip.")
@click.option("--sign", "sign_key", type=click.Path(path_type=Path), metavar="KEY",
              help="Sign manifest.json with this Ed25519 private key (PEM; needs the sign extra).")
@click.option("--card", "cards", multiple=True, type=click.Path(path_type=Path), metavar="CARD",
              help="A model card written by `edgemed evaluate` for one of the MODELS (repeatable).")
@click.option("--tuned", "tuned_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="The result of `edgemed tune` (its model, backend, precision and threads) instead of MODELS.")
@backend_option
@force_option
@user_errors
def bundle_command(models, device, output, sign_key, cards, tuned_dir, backend, precision, force):
    """Bundle models with their sidecars, a manifest (checksums, spec, reports, device, pinned requirements),
    model cards and a README; optionally signed."""
    from edgemed.runtime.deploy.bundle import make_bundle, read_tuned

    tuned = None
    if tuned_dir is not None:
        if models:
            raise click.UsageError("--tuned bundles the tuned model; give no MODELS beside it")
        tuned = read_tuned(tuned_dir)
        models, backend, precision = (tuned_dir / tuned["file"],), tuned["backend"], tuned["precision"]
    elif not models:
        raise click.UsageError("give MODELS, or --tuned DIR")
    manifest = make_bundle(list(models), device, output, sign_key=sign_key, force=force, cards=list(cards),
                           backend=backend, precision=precision, tuned=tuned)
    click.echo(f"wrote {output}: {len(manifest.models)} model(s) for {manifest.device['name']}, "
               f"{len(manifest.files)} files with their sha256 in manifest.json" + (", signed" if sign_key else ""))


@click.command("verify-bundle")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--key", type=click.Path(path_type=Path), metavar="PUB",
              help="Require a valid Ed25519 signature by this public key (PEM).")
@click.option("--run", "replay", is_flag=True,
              help="Also run each model's reference inputs here and compare with the outputs validated when it was "
                   "bundled (an on-device acceptance check).")
@user_errors
def verify_bundle_command(path, key, replay):
    """Check a bundle: its layout, every checksum in its manifest, each model's own sidecar and integrity record,
    the signature (with --key), that every model loads, and with --run that it computes here what it computed
    when validated; exit 1 otherwise."""
    from edgemed.runtime.deploy.bundle import verify_bundle

    manifest = verify_bundle(path, key=key, run=replay)
    for result in manifest.replays:
        click.echo(f"replayed {result.describe()}")
    sig = manifest.signature
    signed = f"signature valid (key {sig['signed_by'][:16]}...)" if "signed_by" in sig else "not signed"
    click.echo(f"{path}: OK: {len(manifest.files)} files match their sha256, {len(manifest.models)} model(s) load "
               f"with matching sidecars and integrity records; {signed}; device {manifest.device['name']}")


@click.command("keygen")
@click.argument("prefix", type=click.Path(path_type=Path))
@force_option
@user_errors
def keygen_command(prefix, force):
    """Make an Ed25519 key pair for signing bundles: PREFIX.key (private, owner-only) and PREFIX.pub."""
    from edgemed.runtime.deploy.signing import keygen

    private, public = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    fingerprint = keygen(private, public, force=force)
    click.echo(f"wrote {private} (keep it secret) and {public}; fingerprint {fingerprint}")
