"""`edgemed train`: translates options into `run_training`. Defaults come from `TrainConfig` and the split."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from edgemed.cli.options import csv_list, parse_pairs, quiet_option, seed_option, user_errors
from edgemed.core.spec import RR_FEATURES
from edgemed.train.data import SYNTHETIC_SOURCES
from edgemed.train.data.beats import DEFAULT_BEAT_WINDOW
from edgemed.train.data.load import DataOptions
from edgemed.train.distributed import world
from edgemed.train.models import list_models
from edgemed.train.recipes import RECIPES, recipe
from edgemed.train.run import run_cross_validation, run_training
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
               "-m", "edgemed.train", *args]
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
                   "GPUs); for several machines run torchrun yourself with -m edgemed.train.")
@click.option("--accelerator", default=DEFAULTS.accelerator, show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]), help="Where PyTorch trains: CUDA when present (auto).")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier edgemed run in --out (never a folder edgemed did not write).")
@seed_option
@quiet_option
@user_errors
@click.pass_context
def train_command(ctx, model_name, recipe_name, data, out, epochs, batch_size, lr, weight_decay, grad_clip, patience,
                  class_weighting, augment, max_steps_per_epoch, config_pairs, val_fraction, validation, cv_folds,
                  loss, sampling, calibrate, abstain_below, samples, records, task, leads, sampling_rate_hz,
                  no_filter, window_s, beat_window, context, template_beats, rr_features, image_size, nproc,
                  accelerator, overwrite,
                  seed, quiet):
    """Train a model and write model.pt, metrics.json and training.png into --out (or, with --cv, cross-validate
    and write cv.json and cv.md)."""
    if nproc and nproc > 1:
        _launch(ctx, nproc)
        return
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    train_values = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                    "grad_clip": grad_clip, "patience": patience, "class_weighting": ClassWeighting(class_weighting),
                    "loss": Loss(loss), "sampling": Sampling(sampling), "augment": augment}
    options = DataOptions(samples=samples, records=csv_list(records), task=task, leads=_leads(leads),
                          sampling_rate_hz=sampling_rate_hz, filtered=False if no_filter else None, window_s=window_s,
                          image_size=image_size, beat_window=_pair(beat_window, "--beat-window"), context=context,
                          template_beats=template_beats,
                          rr_features=tuple(csv_list(rr_features)) if rr_features else None)
    overrides = parse_pairs(config_pairs, "--config")
    if recipe_name:
        chosen = recipe(recipe_name)
        if model_name and model_name != chosen.model:
            raise click.UsageError(f"--recipe {recipe_name} trains {chosen.model}; drop --model {model_name}")
        model_name = chosen.model
        train_values = {k: v for k, v in train_values.items() if k in given}
        base = chosen.train
        options = DataOptions(**{**chosen.data, **options.to_dict()})
        overrides = {**chosen.model_config, **overrides}
    elif not model_name:
        raise click.UsageError("give --model (or --recipe)")
    else:
        base = TrainConfig()
    cfg = dataclasses.replace(base, seed=seed, accelerator=accelerator, calibrate=calibrate,
                              abstain_below=abstain_below, max_steps_per_epoch=max_steps_per_epoch,
                              progress=not quiet, **train_values)
    if cv_folds:
        if validation:
            raise click.UsageError("--cv splits the data itself; drop --validation")
        report = run_cross_validation(model_name, data, out, cv_folds, train_cfg=cfg, model_overrides=overrides,
                                      data_options=options, val_fraction=val_fraction, overwrite=overwrite)
        click.echo(report.markdown())
        click.echo(f"wrote {out / 'cv.json'}, {out / 'cv.md'}")
        return
    outside = validation and (Path(validation).exists() or validation in SYNTHETIC_SOURCES)
    summary = run_training(
        model_name, data, out, train_cfg=cfg, model_overrides=overrides, data_options=options,
        val_fraction=val_fraction, val_groups=None if outside else csv_list(validation),
        validation_data=validation if outside else None, overwrite=overwrite,
    )
    if not world().is_main:
        return  # under torchrun: rank 0 reports
    held_out = ", ".join(summary.val_groups[:12]) + (" ..." if len(summary.val_groups) > 12 else "")
    click.echo(f"trained {model_name} on {data}: {summary.train_size} training / {summary.val_size} validation "
               f"samples; held out {held_out}")
    click.echo(f"best epoch {summary.best_epoch} of {summary.epochs_run}; "
               f"{summary.seconds_per_epoch:.1f} s per epoch")
    click.echo(summary.table())
    click.echo(f"wrote {out / 'model.pt'}, {out / 'metrics.json'}, {out / 'training.png'}")
