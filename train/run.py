"""`edgemed train` as a library call: load data, split by group, train, and write the run folder atomically."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from edgemed.core.atomic import private_tempdir, public_mode, remove_tempdir
from edgemed.core.errors import DataError
from edgemed.core.metrics import format_report
from edgemed.train.builder import build_for_data
from edgemed.train.checkpoint import save_checkpoint
from edgemed.train.cross_validation import CrossValidation, cross_validate
from edgemed.train.data import Dataset, load_data
from edgemed.train.data.load import DataOptions
from edgemed.train.distributed import stop as stop_world
from edgemed.train.distributed import world
from edgemed.train.plots import plot_history
from edgemed.train.provenance import provenance
from edgemed.train.run_folder import check_replaceable_run, publish_run, write_marker
from edgemed.train.split import DEFAULT_VAL_FRACTION, group_split
from edgemed.train.trainer import TrainConfig, seed_everything, train


@dataclass
class RunSummary:
    out: Path
    report: dict[str, Any]
    best_epoch: int
    epochs_run: int
    seconds_per_epoch: float
    train_size: int
    val_size: int
    val_groups: list[str]
    model: str = ""

    def table(self) -> str:
        return format_report(self.report)


def _options(data_options: DataOptions | dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(data_options, DataOptions):
        return data_options.to_dict()
    return {k: v for k, v in (data_options or {}).items() if v is not None}


def split_data(data: str, seed: int, data_options: DataOptions | dict[str, Any] | None, val_fraction: float,
               val_groups: list[str] | None, validation_data: str | None) -> tuple[Dataset, Dataset, Dataset]:
    """(all training data, training split, validation split). With `validation_data`, the validation set is that
    other source read with the same options (minus a record list) and must share labels and layout."""
    ds = load_data(data, seed=seed, options=data_options)
    if validation_data is None:
        train_idx, val_idx = group_split(ds, val_fraction, seed, val_groups)
        return ds, ds.subset(train_idx), ds.subset(val_idx)
    options = {k: v for k, v in _options(data_options).items() if k != "records"}
    val = load_data(validation_data, seed=seed + 1, options=options)
    if tuple(val.labels) != tuple(ds.labels) or val.X.shape[1:] != ds.X.shape[1:]:
        raise DataError(f"`validation` {validation_data}: labels {list(val.labels)} and sample shape "
                        f"{list(val.X.shape[1:])} must match the training data's {list(ds.labels)} and "
                        f"{list(ds.X.shape[1:])}")
    if val.sha256 == ds.sha256:
        raise DataError(f"`validation` {validation_data} is the training data itself; validate on other patients")
    return ds, ds, val


def run_training(model_name: str, data: str, out: Path | str, *, train_cfg: TrainConfig,
                 model_overrides: dict[str, Any] | None = None,
                 data_options: DataOptions | dict[str, Any] | None = None,
                 val_fraction: float = DEFAULT_VAL_FRACTION, val_groups: list[str] | None = None,
                 validation_data: str | None = None, overwrite: bool = False) -> RunSummary:
    """Train `model_name` on `data` and write model.pt, metrics.json and training.png into `out`. Validation:
    `val_groups` of the data, or `validation_data` (another source), or a random patient-wise `val_fraction`.

    Everything is written into a temporary folder beside `out` and renamed into place at the end, so
    a failure at any point leaves no half-written run.
    """
    out = Path(out)
    check_replaceable_run(out, overwrite)
    ds, train_ds, val_ds = split_data(data, train_cfg.seed, data_options, val_fraction, val_groups, validation_data)
    seed_everything(train_cfg.seed)  # before the model exists: its initial weights come from this seed
    model = build_for_data(model_name, train_ds, model_overrides)
    w = world()
    if not w.is_main:  # under torchrun: train with the others, rank 0 writes the run
        try:
            result = train(model, train_ds, val_ds, train_cfg)
            w.barrier()
        finally:
            stop_world(w)
        return _summary(out, result, train_ds, val_ds)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_tempdir(out.parent, f".{out.name}.")
    try:
        result = train(model, train_ds, val_ds, train_cfg)
        seconds = [h["seconds"] for h in result.history]
        held_out = sorted(set(val_ds.groups.astype(str).tolist()))
        metrics = {
            "validation": result.val_report,
            "best_epoch": result.best_epoch,
            "history": result.history,
            "seconds_per_epoch": sum(seconds) / len(seconds),
            "split": {"train_size": len(train_ds), "val_size": len(val_ds), "val_groups": held_out,
                      "validation_data": validation_data,
                      "train_class_counts": train_ds.class_counts(), "val_class_counts": val_ds.class_counts()},
            "calibration": dataclasses.asdict(result.calibration) if result.calibration else None,
        }
        config = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(train_cfg).items()}
        prov = provenance(
            data=str(Path(data).resolve()) if Path(data).exists() else data, data_source=ds.source,
            data_sha256=ds.sha256, seed=train_cfg.seed, train_config=config,
            data_options=_options(data_options), accelerator=result.device,
            validation_groups=[] if validation_data else held_out, validation_data=validation_data,
            metrics={k: result.val_report[k] for k in ("accuracy", "macro_f1", "macro_auroc", "n")},
        )
        save_checkpoint(tmp / "model.pt", result.model, prov)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_history(result.history, tmp / "training.png", f"{model_name} on {Path(data).name}")
        write_marker(tmp)
        os.chmod(tmp, public_mode(directory=True))  # mkdtemp makes it owner-only
        publish_run(tmp, out, overwrite)
        w.barrier()
    finally:
        remove_tempdir(tmp)
        stop_world(w)
    return _summary(out, result, train_ds, val_ds)


def _summary(out: Path, result: Any, train_ds: Dataset, val_ds: Dataset) -> RunSummary:
    seconds = [h["seconds"] for h in result.history]
    return RunSummary(out=out, report=result.val_report, best_epoch=result.best_epoch,
                      epochs_run=len(result.history), seconds_per_epoch=sum(seconds) / len(seconds),
                      train_size=len(train_ds), val_size=len(val_ds),
                      val_groups=sorted(set(val_ds.groups.astype(str).tolist())),
                      model=getattr(result.model, "architecture", ""))


def run_cross_validation(model_name: str, data: str, out: Path | str, folds: int, *, train_cfg: TrainConfig,
                         model_overrides: dict[str, Any] | None = None,
                         data_options: DataOptions | dict[str, Any] | None = None,
                         val_fraction: float = DEFAULT_VAL_FRACTION, overwrite: bool = False) -> CrossValidation:
    """Patient-wise `folds`-fold cross-validation of `model_name` on `data`; cv.json and cv.md into `out`
    (written as a run folder: atomically, replacing only an earlier run with `overwrite`)."""
    out = Path(out)
    check_replaceable_run(out, overwrite)
    ds = load_data(data, seed=train_cfg.seed, options=data_options)

    def progress(done: int, total: int, report: dict[str, Any]) -> None:
        if train_cfg.progress:
            tqdm.write(f"fold {done}/{total}: macro-F1 {report['macro_f1']:.3f}")

    cv = cross_validate(model_name, ds, folds, train_cfg, model_overrides, val_fraction, progress)
    cv.config = {"model": model_name, "data": data, "data_sha256": ds.sha256, "data_options": _options(data_options),
                 "model_overrides": model_overrides or {},
                 "train_config": {k: (v.value if hasattr(v, "value") else v)
                                  for k, v in dataclasses.asdict(train_cfg).items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_tempdir(out.parent, f".{out.name}.")
    try:
        (tmp / "cv.json").write_text(json.dumps(cv.to_dict(), indent=1))
        (tmp / "cv.md").write_text(cv.markdown())
        write_marker(tmp)
        os.chmod(tmp, public_mode(directory=True))
        publish_run(tmp, out, overwrite)
    finally:
        remove_tempdir(tmp)
    return cv
