"""`edgemed train` as a library call: load data, split by group, train, and write the run folder atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgemed.core.atomic import public_mode
from edgemed.core.metrics import format_report
from edgemed.train.builder import build_for_data
from edgemed.train.checkpoint import save_checkpoint
from edgemed.train.data import load_data
from edgemed.train.data.load import DataOptions
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

    def table(self) -> str:
        return format_report(self.report)


def run_training(model_name: str, data: str, out: Path | str, *, train_cfg: TrainConfig,
                 model_overrides: dict[str, Any] | None = None,
                 data_options: DataOptions | dict[str, Any] | None = None,
                 val_fraction: float = DEFAULT_VAL_FRACTION, val_groups: list[str] | None = None,
                 overwrite: bool = False) -> RunSummary:
    """Train `model_name` on `data` and write model.pt, metrics.json and training.png into `out`.

    Everything is written into a temporary folder beside `out` and renamed into place at the end, so
    a failure at any point leaves no half-written run.
    """
    out = Path(out)
    check_replaceable_run(out, overwrite)
    ds = load_data(data, seed=train_cfg.seed, options=data_options)
    train_idx, val_idx = group_split(ds, val_fraction, train_cfg.seed, val_groups)
    train_ds, val_ds = ds.subset(train_idx), ds.subset(val_idx)
    seed_everything(train_cfg.seed)  # before the model exists: its initial weights come from this seed
    model = build_for_data(model_name, train_ds, model_overrides)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
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
                      "train_class_counts": train_ds.class_counts(), "val_class_counts": val_ds.class_counts()},
        }
        config = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(train_cfg).items()}
        prov = provenance(
            data=str(Path(data).resolve()) if Path(data).exists() else data, data_source=ds.source,
            data_sha256=ds.sha256, seed=train_cfg.seed, train_config=config,
            data_options=(data_options.to_dict() if isinstance(data_options, DataOptions)
                          else {k: v for k, v in (data_options or {}).items() if v is not None}),
            accelerator=result.device, validation_groups=held_out,
            metrics={k: result.val_report[k] for k in ("accuracy", "macro_f1", "macro_auroc", "n")},
        )
        save_checkpoint(tmp / "model.pt", result.model, prov)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_history(result.history, tmp / "training.png", f"{model_name} on {Path(data).name}")
        write_marker(tmp)
        os.chmod(tmp, public_mode(directory=True))  # mkdtemp makes it owner-only
        publish_run(tmp, out, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return RunSummary(out=out, report=result.val_report, best_epoch=result.best_epoch,
                      epochs_run=len(result.history), seconds_per_epoch=metrics["seconds_per_epoch"],
                      train_size=len(train_ds), val_size=len(val_ds), val_groups=held_out)
