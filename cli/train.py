"""`edgemed train`: translates options into `run_training`. Defaults come from `TrainConfig` and the split."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from edgemed.cli.options import csv_list, parse_pairs, quiet_option, seed_option, user_errors
from edgemed.core.spec import RR_FEATURES
from edgemed.train.cross_validation import CrossValidation
from edgemed.train.data import SYNTHETIC_SOURCES
from edgemed.train.data.beats import DEFAULT_BEAT_WINDOW
from edgemed.train.data.load import DataOptions
from edgemed.train.distributed import world
from edgemed.train.models import list_models
from edgemed.train.recipes import RECIPES
from edgemed.train.request import TrainRequest, train_recipe
from edgemed.train.run import RunSummary
from edgemed.train.split import DEFAULT_VAL_FRACTION
from edgemed.train.trainer import ClassWeighting, Loss, Sampling, TrainConfig

DEFAULTS = TrainConfig()


def _leads(text: str | None) -> int | list[str] | None:
    if not text:
        return None
    if text.strip().isdigit():
        if int(text) < 1:
            raise click.BadParameter("needs at least one lead", param_hint="--leads")
        return int(text)
    return csv_list(text)


def _given_args(ctx: click.Context, leave_out: tuple[str, ...]) -> list[str]:
    """The options given on the command line, written back as arguments (what torchrun passes to every rank)."""
    args: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if name in leave_out or ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[name]
        if isinstance(param, click.Option) and param.is_flag:
            if param.secondary_opts and not value:
                args.append(param.secondary_opts[0])
            elif value:
                args.append(param.opts[0])
            continue
        for v in (value if param.multiple else (value,)):
            args += [param.opts[0], str(v)]
    return args


def _launch(ctx: click.Context, nproc: int) -> None:
    """Run this same command under torchrun with `nproc` processes (without --nproc), and exit with its status."""
    args = _given_args(ctx, ("nproc",))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "edgemed.cli", "train", *args]
    code = subprocess.run(command).returncode
    if code:
        raise click.ClickException(f"torchrun with {nproc} processes exited with status {code}")


def _pair(text: str | None, option: str) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        before, after = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter("give two numbers of seconds, e.g. 0.35,0.45", param_hint=option) from None
    if not (0 <= before and 0 < after and before + after <= 10):
        raise click.BadParameter("seconds before >= 0 and after > 0, 10 s at most in all", param_hint=option)
    return before, after


@click.command("train")
@click.option("--model", "model_name", type=click.Choice(list_models()), help="Architecture (or give --recipe).")
@click.option("--recipe", "recipe_name", type=click.Choice(sorted(RECIPES)),
              help="A recommended recipe: model, data options and training settings; options given override it.")
@click.option("--data", required=True, metavar="SOURCE",
              help=f"A WFDB folder, an image folder, a .npz/.npy/.csv file, or one of: {', '.join(SYNTHETIC_SOURCES)}.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder to create.")
@click.option("--epochs", default=DEFAULTS.epochs, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=DEFAULTS.batch_size, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=DEFAULTS.lr, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate of the one-cycle schedule.")
@click.option("--weight-decay", default=DEFAULTS.weight_decay, show_default=True, type=click.FloatRange(min=0),
              help="AdamW weight decay.")
@click.option("--grad-clip", default=DEFAULTS.grad_clip, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--patience", default=DEFAULTS.patience, show_default=True, type=click.IntRange(1),
              help="Early stopping: stop after this many epochs without a better validation macro-F1.")
@click.option("--class-weighting", default=DEFAULTS.class_weighting.value, show_default=True,
              type=click.Choice([c.value for c in ClassWeighting]))
@click.option("--augment/--no-augment", default=None,
              help="Training augmentation of the model family (images: flips, rotations, brightness and contrast; "
                   "signals: gain and noise). Default: on for images, off for signals.")
@click.option("--max-steps-per-epoch", type=click.IntRange(1), help="Cap batches per epoch (quick runs).")
@click.option("--config", "-c", "config_pairs", multiple=True, metavar="KEY=VALUE",
              help="Model config, e.g. -c hidden_size=128 -c channels=16,32,64 -c causal=true -c dropout=0.3.")
@click.option("--val-fraction", default=DEFAULT_VAL_FRACTION, show_default=True,
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Share of samples held out for validation, by whole groups (records, patients).")
@click.option("--validation", metavar="GROUPS|DATA",
              help="Validation instead of a random split: comma-separated groups of --data (e.g. WFDB records "
                   "208,209), or other data (a folder, file or synthetic source, read with the same options).")
@click.option("--cv", "cv_folds", type=click.IntRange(2), metavar="K",
              help="Patient-wise K-fold cross-validation instead of one model: writes cv.json and cv.md to --out.")
@click.option("--loss", default=DEFAULTS.loss.value, show_default=True, type=click.Choice([v.value for v in Loss]))
@click.option("--sampling", default=DEFAULTS.sampling.value, show_default=True,
              type=click.Choice([v.value for v in Sampling]),
              help="Batches drawn by shuffling, or class-balanced (rare classes repeated).")
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="Fit a temperature on the validation data and store it in the model.")
@click.option("--abstain-below", type=click.FloatRange(0, 1, min_open=True, max_open=True), metavar="P",
              help="Report 'uncertain' where the calibrated top probability is below P.")
@click.option("--samples", type=click.IntRange(10), help="Synthetic data: number of samples.")
@click.option("--records", help="WFDB: comma-separated record names (default: all in RECORDS).")
@click.option("--task", type=click.Choice(["beats", "rhythm"]), help="WFDB: beat windows or rhythm windows.")
@click.option("--leads", help="Leads: names (WFDB, matched by name in every record: --leads MLII,V1), or a count "
              "(synthetic ECG; WFDB: the first record's first N, then found by name).")
@click.option("--sampling-rate", "sampling_rate_hz", type=click.FloatRange(min=1),
              help="Resample ECG to this rate (Hz).")
@click.option("--no-filter", is_flag=True, help="WFDB: skip the 0.5-40 Hz band-pass filter.")
@click.option("--window-seconds", "window_s", type=click.FloatRange(min=0, min_open=True),
              help="Rhythm window length (s).")
@click.option("--beat-window", metavar="BEFORE,AFTER", help="Beats: seconds before and after the R peak "
              f"(default {DEFAULT_BEAT_WINDOW[0]:g},{DEFAULT_BEAT_WINDOW[1]:g}).")
@click.option("--context", type=click.Choice(["causal", "full"]),
              help="Beats: rhythm context from the past only (streams beat by beat), or with the next RR interval "
                   "(one beat more latency). Default causal.")
@click.option("--template-beats", type=click.IntRange(0), help="Beats: previous beats in the template (0: none).")
@click.option("--rr-features", metavar="NAMES", help=f"Beats: the RR features, of {', '.join(RR_FEATURES)} "
              "(default: all the context allows).")
@click.option("--image-size", type=click.IntRange(8, 1024),
              help="Image folders and synthetic fundus: pixels per side images are read at.")
@click.option("--nproc", type=click.IntRange(1), metavar="N",
              help="Train with N processes on this machine (torchrun, DistributedDataParallel: gloo on CPU, NCCL on "
                   "GPUs); for several machines run torchrun yourself with -m edgemed.cli train.")
@click.option("--accelerator", default=DEFAULTS.accelerator, show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]), help="Where PyTorch trains: CUDA when present (auto).")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier edgemed run in --out (never a folder edgemed did not write).")
@seed_option
@quiet_option
@user_errors
@click.pass_context
def train_command(ctx: click.Context, **params: Any) -> None:
    """Train a model and write model.pt, metrics.json and training.png into --out (or, with --cv, cross-validate
    and write cv.json and cv.md)."""
    if params["nproc"] and params["nproc"] > 1:
        _launch(ctx, params["nproc"])
        return
    given = {name for name in params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    result = train_recipe(_request(params, given))
    out = params["out"]
    if isinstance(result, CrossValidation):
        click.echo(result.markdown())
        click.echo(f"wrote {out / 'cv.json'}, {out / 'cv.md'}")
    elif world().is_main:  # under torchrun: rank 0 reports
        _report(result, params, out)


TRAIN_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "grad_clip", "patience", "class_weighting", "loss",
                "sampling", "augment")
ENUMS = {"class_weighting": ClassWeighting, "loss": Loss, "sampling": Sampling}


def _request(p: dict[str, Any], given: set[str]) -> TrainRequest:
    """The options as a library request: with a recipe, only the training settings given on the command line
    override the recipe's."""
    train = {k: ENUMS[k](p[k]) if k in ENUMS else p[k] for k in TRAIN_FIELDS
             if not p["recipe_name"] or k in given}
    train.update(seed=p["seed"], accelerator=p["accelerator"], calibrate=p["calibrate"],
                 abstain_below=p["abstain_below"], max_steps_per_epoch=p["max_steps_per_epoch"],
                 progress=not p["quiet"])
    options = DataOptions(samples=p["samples"], records=csv_list(p["records"]), task=p["task"],
                          leads=_leads(p["leads"]), sampling_rate_hz=p["sampling_rate_hz"],
                          filtered=False if p["no_filter"] else None, window_s=p["window_s"],
                          image_size=p["image_size"], beat_window=_pair(p["beat_window"], "--beat-window"),
                          context=p["context"], template_beats=p["template_beats"],
                          rr_features=tuple(csv_list(p["rr_features"])) if p["rr_features"] else None)
    return TrainRequest(data=p["data"], out=p["out"], model=p["model_name"], recipe=p["recipe_name"], train=train,
                        data_options=options, model_config=parse_pairs(p["config_pairs"], "--config"),
                        val_fraction=p["val_fraction"], validation=p["validation"], cv_folds=p["cv_folds"],
                        overwrite=p["overwrite"])


def _report(summary: RunSummary, p: dict[str, Any], out: Path) -> None:
    held_out = ", ".join(summary.val_groups[:12]) + (" ..." if len(summary.val_groups) > 12 else "")
    click.echo(f"trained {summary.model} on {p['data']}: {summary.train_size} training / {summary.val_size} "
               f"validation samples; held out {held_out}")
    click.echo(f"best epoch {summary.best_epoch} of {summary.epochs_run}; "
               f"{summary.seconds_per_epoch:.1f} s per epoch")
    click.echo(summary.table())
    click.echo(f"wrote {out / 'model.pt'}, {out / 'metrics.json'}, {out / 'training.png'}")
