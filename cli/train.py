"""`edgemed train`: translates options into `run_training`. Defaults come from `TrainConfig` and the split."""

from __future__ import annotations

from pathlib import Path

import click

from edgemed.cli.options import csv_list, parse_pairs, quiet_option, seed_option, user_errors
from edgemed.train.data import SYNTHETIC_SOURCES
from edgemed.train.data.load import DataOptions
from edgemed.train.models import list_models
from edgemed.train.run import run_training
from edgemed.train.split import DEFAULT_VAL_FRACTION
from edgemed.train.trainer import ClassWeighting, TrainConfig

DEFAULTS = TrainConfig()


def _leads(text: str | None) -> int | list[str] | None:
    if not text:
        return None
    if text.strip().isdigit():
        if int(text) < 1:
            raise click.BadParameter("needs at least one lead", param_hint="--leads")
        return int(text)
    return csv_list(text)


@click.command("train")
@click.option("--model", "model_name", required=True, type=click.Choice(list_models()), help="Architecture.")
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
              help="Share of samples held out, by whole groups (records, patients).")
@click.option("--val-groups", help="Comma-separated groups (e.g. WFDB record names) to hold out instead.")
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
@click.option("--image-size", type=click.IntRange(8, 1024),
              help="Image folders and synthetic fundus: pixels per side images are read at.")
@click.option("--accelerator", default=DEFAULTS.accelerator, show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]), help="Where PyTorch trains: CUDA when present (auto).")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier edgemed run in --out (never a folder edgemed did not write).")
@seed_option
@quiet_option
@user_errors
def train_command(model_name, data, out, epochs, batch_size, lr, weight_decay, grad_clip, patience,
                  class_weighting, augment, max_steps_per_epoch, config_pairs, val_fraction, val_groups, samples,
                  records, task, leads, sampling_rate_hz, no_filter, window_s, image_size, accelerator, overwrite,
                  seed, quiet):
    """Train a model and write model.pt, metrics.json and training.png into --out."""
    cfg = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, grad_clip=grad_clip,
        patience=patience, seed=seed, accelerator=accelerator, class_weighting=ClassWeighting(class_weighting),
        max_steps_per_epoch=max_steps_per_epoch, augment=augment, progress=not quiet,
    )
    options = DataOptions(samples=samples, records=csv_list(records), task=task, leads=_leads(leads),
                          sampling_rate_hz=sampling_rate_hz, filtered=False if no_filter else None, window_s=window_s,
                          image_size=image_size)
    summary = run_training(
        model_name, data, out, train_cfg=cfg, model_overrides=parse_pairs(config_pairs, "--config"),
        data_options=options, val_fraction=val_fraction, val_groups=csv_list(val_groups), overwrite=overwrite,
    )
    held_out = ", ".join(summary.val_groups[:12]) + (" ..." if len(summary.val_groups) > 12 else "")
    click.echo(f"trained {model_name} on {data}: {summary.train_size} training / {summary.val_size} validation "
               f"samples; held out {held_out}")
    click.echo(f"best epoch {summary.best_epoch} of {summary.epochs_run}; "
               f"{summary.seconds_per_epoch:.1f} s per epoch")
    click.echo(summary.table())
    click.echo(f"wrote {out / 'model.pt'}, {out / 'metrics.json'}, {out / 'training.png'}")
