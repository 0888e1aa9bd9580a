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


RUNS = {
    "gru": ("synthetic-vitals", {"samples": 60}, {"hidden_size": 24}),
    "cnn_gru": ("synthetic-ecg", {"samples": 40, "leads": 2, "sampling_rate_hz": 100.0}, {"causal": True}),
    "cnn_gru_frames": ("synthetic-frames", {"samples": 30}, {}),
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


