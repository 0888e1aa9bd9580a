"""Training with torchrun: two CPU processes (gloo) train one model, deterministically, that loads and exports."""

from __future__ import annotations

import numpy as np
import torch
from click.testing import CliRunner

from edgemed.cli.main import cli


def test_torchrun_two_processes_train_a_model_that_loads_and_exports(tmp_path):
    from edgemed.export.pipeline import export_target, target_from_checkpoint
    from edgemed.train.checkpoint import load_checkpoint

    runner = CliRunner()
    weights = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        res = runner.invoke(cli, ["train", "--model", "gru", "--data", "synthetic-vitals", "--samples", "80",
                                  "--epochs", "2", "-c", "hidden_size=16", "--nproc", "2", "--out", str(out), "-q"])
        assert res.exit_code == 0, res.output
        model, ckpt = load_checkpoint(out / "model.pt")
        assert "2 processes" in ckpt["provenance"]["accelerator"]
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    for name in weights[0]:  # one seed, one world size: one result
        assert torch.equal(weights[0][name], weights[1][name]), name
    result = export_target(target_from_checkpoint(tmp_path / "run0" / "model.pt"), tmp_path / "m.onnx")
    assert result.parity.passed and np.isfinite(result.parity.rows[0].max_abs)


def test_torchrun_trains_a_beat_model_with_context_inputs(tmp_path):
    """A family fed by context inputs (RR features, template) goes through the same distributed path."""
    from edgemed.train.checkpoint import load_checkpoint

    res = CliRunner().invoke(cli, ["train", "--model", "beat_cnn", "--data", "synthetic-beats", "--samples", "10",
                                   "--epochs", "1", "-c", "channels=8", "--nproc", "2", "--out",
                                   str(tmp_path / "b"), "-q"])
    assert res.exit_code == 0, res.output
    model, ckpt = load_checkpoint(tmp_path / "b" / "model.pt")
    assert model.architecture == "beat_cnn" and "2 processes" in ckpt["provenance"]["accelerator"]
