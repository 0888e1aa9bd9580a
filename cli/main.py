"""The `edgemed` group. Commands that need heavy extras (torch) are imported only when invoked, so the
runtime-only install has a working CLI whose heavy commands say which extra to install."""

from __future__ import annotations

import importlib
import warnings

import click

from edgemed.core.interrupt import install as install_sigterm

# command name -> (module, attribute, extra that provides its dependencies, one-line help for listings)
LAZY_COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "train": ("edgemed.cli.train", "train_command", "train", "Train a model on recordings, images, arrays or CSV."),
    "export": ("edgemed.cli.export", "export_command", "export", "Export to ONNX with measured parity and metadata."),
    "quantize": ("edgemed.cli.export", "quantize_command", "export", "Quantise to int8 or fp16, gated on accuracy."),
    "tune": ("edgemed.cli.export", "tune_command", "export",
             "Find the fastest validated backend, precision and threads for a device."),
    "verify": ("edgemed.cli.export", "verify_command", "export", "Rerun parity between a checkpoint and its ONNX."),
    "info": ("edgemed.cli.describe", "info_command", "runtime", "Describe an ONNX model (works without torch)."),
    "run": ("edgemed.cli.run", "run_command", "runtime", "Run an ONNX model on a file, by batch or stream."),
    "evaluate": ("edgemed.cli.run", "evaluate_command", "runtime",
                 "Evaluate a beat model on annotated records (AAMI EC57)."),
    "score": ("edgemed.cli.run", "score_command", "runtime",
              "Score an archive on Ray Data, resumably (the scale extra)."),
    "profile": ("edgemed.cli.describe", "profile_command", "runtime", "Profile latency, cold start and memory."),
    "devices": ("edgemed.cli.describe", "devices_group", "runtime", "List and show device profiles."),
    "bundle": ("edgemed.cli.deploy", "bundle_command", "runtime", "Bundle models for a device, with a manifest."),
    "verify-bundle": ("edgemed.cli.deploy", "verify_bundle_command", "runtime",
                      "Check a bundle: layout, checksums, signature."),
    "keygen": ("edgemed.cli.deploy", "keygen_command", "runtime", "Make an Ed25519 key pair to sign bundles."),
    "monitor": ("edgemed.cli.monitor", "monitor_command", "runtime",
                "Monitor a live ECG: beats, alarms, JSON lines, FHIR and a report."),
}
HEAVY_MODULES = {"torch", "tqdm", "matplotlib", "onnx", "onnxscript"}


def _missing_extra(name: str, extra: str, missing: str) -> click.Command:
    """A stand-in command that explains how to install what `name` needs."""

    def callback(**_: object) -> None:
        raise click.ClickException(
            f"'edgemed {name}' needs the '{extra}' extra ({missing} is not installed): "
            f"pip install 'edgemed[{extra}]'"
        )

    return click.Command(
        name, callback=callback, help=f"(unavailable: install the '{extra}' extra) pip install 'edgemed[{extra}]'",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in LAZY_COMMANDS:
            return super().get_command(ctx, name)
        module, attr, extra, _ = LAZY_COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            root = (exc.name or "").split(".")[0]
            if root not in HEAVY_MODULES:
                raise
            return _missing_extra(name, extra, root)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands without importing the lazy ones, so `edgemed --help` stays fast and torch-free."""
        rows = [(name, LAZY_COMMANDS[name][3] if name in LAZY_COMMANDS
                 else self.commands[name].get_short_help_str(limit=formatter.width))
                for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "--version", package_name="edgemed", prog_name="edgemed")  # looked up only when asked
def cli() -> None:
    """edgemed: take a medical sequence model from training to the bedside, proving parity at each step."""
    # SIGTERM unwinds like Ctrl-C, so every command's clean-up (temporary files and folders) runs, even from
    # inside a long native call (edgemed.core.interrupt).
    install_sigterm()
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning reaches the user as one line, `warning: ...`, never as Python's file, line and source text."""
    click.echo(f"warning: {message}", err=True)
