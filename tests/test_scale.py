"""Past one machine: `edgemed score` on a local two-worker Ray (skipped without the scale extra)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.train.data.synthetic_ecg import synthetic_recording

from helpers import write_wfdb

ray = pytest.importorskip("ray", reason="needs the scale extra")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local two-CPU Ray for the module (edgemed score uses a running Ray rather than starting its own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _parquet_rows(folder):
    return [r for part in sorted((folder / "predictions").glob("*.parquet")) for r in pq.read_table(part).to_pylist()]


def test_score_an_archive_resumably_with_a_bad_record(exported, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(3):
        sig, beats, _ = synthetic_recording("mixed", 40, 360.0, 1, seed=70 + i)
        write_wfdb(archive, f"r{i}", sig, 360.0, ["lead1"], beats)
    (archive / "bad.hea").write_text("bad 1 360 100000\nbad.dat 16 200 16 0 0 0 0 lead1\n")
    (archive / "bad.dat").write_bytes(b"\x00" * 64)
    model = str(exported["beat_cnn"])
    runner = CliRunner()
    res = runner.invoke(cli, ["score", model, str(archive), "--out", str(tmp_path / "out"), "--workers", "2", "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["items"] == 4 and summary["scored_now"] == 3 and len(summary["failed"]) == 1
    assert 0 < summary["scoring_seconds"] <= summary["seconds"]
    assert "bad" in summary["failed"][0]["item"] and (tmp_path / "out" / "failures").is_dir()
    rows = _parquet_rows(tmp_path / "out")
    expected = []
    for i in range(3):
        res = runner.invoke(cli, ["run", model, str(archive / f"r{i}"), "--out", str(tmp_path / f"r{i}.json")])
        assert res.exit_code == 0, res.output
        expected += json.loads((tmp_path / f"r{i}.json").read_text())["predictions"]
    assert len(rows) == len(expected) == summary["rows_now"]
    key = lambda r: (r["record"], r["sample"])  # noqa: E731
    for got, want in zip(sorted(rows, key=key), sorted(expected, key=key), strict=True):
        assert got["label"] == want["label"] and got["quality"] == want["quality"]
        assert abs(got["p_N"] - want["p_N"]) < 1e-6
    res = runner.invoke(cli, ["score", model, str(archive), "--out", str(tmp_path / "out"), "--workers", "2", "-q"])
    again = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert again["already_done"] == 3 and again["scored_now"] == 0 and len(again["failed"]) == 1
    assert len(_parquet_rows(tmp_path / "out")) == len(rows)  # resumed: nothing duplicated


def test_score_real_records(mitdb, tmp_path):
    from edgemed.export.pipeline import export_target, target_from_checkpoint
    from edgemed.train.run import run_training
    from edgemed.train.trainer import TrainConfig

    run_training("beat_cnn", str(mitdb), tmp_path / "run", train_cfg=TrainConfig(epochs=1, progress=False),
                 data_options={"records": ["101", "106"], "leads": ["MLII"], "sampling_rate_hz": 180.0,
                               "beat_window": (0.35, 0.45)}, val_groups=["106"], model_overrides={"channels": (8,)})
    onnx = export_target(target_from_checkpoint(tmp_path / "run" / "model.pt"), tmp_path / "m.onnx").path
    res = CliRunner().invoke(cli, ["score", str(onnx), str(mitdb / "115"), str(mitdb / "122"), "--out",
                                   str(tmp_path / "out"), "--beats", "reference", "-q"])
    assert res.exit_code == 0, res.output
    rows = _parquet_rows(tmp_path / "out")
    assert len(rows) == 1953 + 2476  # every annotated beat of 115 and 122


def test_score_npz_shards_with_the_run_columns(tmp_path):
    import shutil
    from pathlib import Path

    data = Path(__file__).parent / "data"
    shards = tmp_path / "shards"
    shards.mkdir()
    for k in range(2):
        shutil.copy(data / "tiny_vitals.npz", shards / f"part{k}.npz")
    res = CliRunner().invoke(cli, ["score", str(data / "tiny_gru.onnx"), str(shards), "--out", str(tmp_path / "o"),
                                   "-q"])
    assert res.exit_code == 0, res.output
    rows = _parquet_rows(tmp_path / "o")
    assert len(rows) == 24 and {"index", "id", "label", "true", "quality", "item"} <= set(rows[0])


def test_score_maps_leads_and_shows_a_failures_hint_as_a_flag(exported, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    sig, beats, _ = synthetic_recording("mixed", 40, 360.0, 1, seed=80)
    write_wfdb(archive, "r0", sig, 360.0, ["ECG1"], beats)
    model, runner = str(exported["beat_cnn"]), CliRunner()
    res = runner.invoke(cli, ["score", model, str(archive), "--out", str(tmp_path / "a"), "--workers", "1", "-q"])
    assert res.exit_code == 0 and "failed: " in res.output and "with --lead (MODEL=RECORD)" in res.output
    res = runner.invoke(cli, ["score", model, str(archive), "--out", str(tmp_path / "b"), "--workers", "1", "-q",
                              "--lead", "lead1=ECG1"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["scored_now"] == 1
    ran = runner.invoke(cli, ["run", model, str(archive / "r0"), "--lead", "lead1=ECG1", "--out",
                              str(tmp_path / "r0.json")])
    assert ran.exit_code == 0, ran.output
    expected = json.loads((tmp_path / "r0.json").read_text())["predictions"]
    assert [r["label"] for r in _parquet_rows(tmp_path / "b")] == [r["label"] for r in expected]
