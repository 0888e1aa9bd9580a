"""Shared fixtures: paths to the real data beside the project, and small trained runs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MITDB = ROOT.parent / "shared" / "data" / "mitdb"


def pytest_collection_modifyitems(config, items):
    """GPU tests skip cleanly on machines without CUDA."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mitdb() -> Path:
    if not (MITDB / "RECORDS").exists():
        pytest.skip(f"MIT-BIH records not found at {MITDB}")
    return MITDB


# One tiny run per registered family: (data source, data options, model config).
RUNS = {
    "gru": ("synthetic-vitals", {"samples": 60}, {"hidden_size": 24}),
    "lstm": ("synthetic-vitals", {"samples": 60}, {"hidden_size": 16}),
    "rnn": ("synthetic-vitals", {"samples": 60}, {"hidden_size": 16, "num_layers": 1}),
    "cnn_gru": ("synthetic-ecg", {"samples": 40, "leads": 2, "sampling_rate_hz": 100.0}, {"causal": True}),
    "cnn_lstm": ("synthetic-ecg", {"samples": 40, "leads": 2, "sampling_rate_hz": 100.0},
                 {"causal": True, "channels": (8, 16, 16, 16), "hidden_size": 16}),
    "cnn_gru_frames": ("synthetic-frames", {"samples": 30}, {}),
    "cnn2d": ("synthetic-fundus", {"samples": 30, "image_size": 32}, {"channels": (8, 16)}),
    "beat_cnn": ("synthetic-beats", {"samples": 12}, {"channels": (8, 16)}),
    "beat_ensemble": ("synthetic-beats", {"samples": 12},
                      {"channels": (8, 16), "members": ({"rr_skip": True}, {"rr_skip": False, "dropout": 0.0}),
                       "trees": {"rounds": 4, "leaves": 4, "min_samples_leaf": 5}}),
}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One briefly trained checkpoint per family, with provenance pointing at regenerable data."""
    from edgemed.train.run import run_training
    from edgemed.train.trainer import TrainConfig

    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for name, (data, options, config) in RUNS.items():
        run_training(name, data, root / name, train_cfg=TrainConfig(epochs=1, progress=False),
                     model_overrides=config, data_options=options)
        out[name] = root / name / "model.pt"
    return out




@pytest.fixture(scope="session")
def exported(checkpoints, tmp_path_factory) -> dict[str, Path]:
    """Every family exported (batch), and gru and causal cnn_gru as streaming models: read-only for tests."""
    from edgemed.export.pipeline import export_target, target_from_checkpoint

    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for family, ckpt in checkpoints.items():
        out[family] = export_target(target_from_checkpoint(ckpt), root / f"{family}.onnx").path
    for family in ("gru", "cnn_gru"):
        out[f"{family}-stream"] = export_target(target_from_checkpoint(checkpoints[family], streaming=True),
                                                root / f"{family}.stream.onnx").path
    return out


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Fuzz counts: calls and unexpected exceptions per target (tests/fuzzing.py)."""
    import json
    import os

    from fuzzing import CALLS, PROFILE, UNEXPECTED

    if not CALLS:
        return
    terminalreporter.write_sep("-", f"fuzz counts ({PROFILE} profile)")
    for target in sorted(CALLS):
        terminalreporter.write_line(f"{target:<28} {CALLS[target]:>8} calls  {UNEXPECTED[target]:>4} unexpected")
    calls, unexpected = sum(CALLS.values()), sum(UNEXPECTED.values())
    terminalreporter.write_line(f"{'total':<28} {calls:>8} calls  {unexpected:>4} unexpected")
    report = os.environ.get("EDGEMED_FUZZ_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump({"profile": PROFILE, "calls": dict(CALLS), "unexpected": dict(UNEXPECTED)}, f, indent=1)
