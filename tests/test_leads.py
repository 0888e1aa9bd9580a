"""Lead maps: a recording that names a lead otherwise than the model is refused until `--lead MODEL=RECORD` says
which of its leads stands for the model's; then run, evaluate, score's options and the monitor give exactly what
the same recording with the model's lead names gives."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.core.errors import InputError
from edgemed.runtime.ecg.recording import check_lead_map, map_leads, read_recording
from edgemed.runtime.model import EdgeModel
from edgemed.train.data.synthetic_ecg import synthetic_recording

from helpers import write_wfdb

FS = 360.0
SYMBOL = {"N": "N", "S": "A", "V": "V"}


@pytest.fixture(scope="module")
def model(exported):
    return exported["beat_cnn"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """One synthetic patient twice, with a second lead of noise: leads named as the model's (`lead1`, `aux`) and
    as another database would (`ECG1`, `ECG2`)."""
    folder = tmp_path_factory.mktemp("leads")
    sig, beats, kinds = synthetic_recording("mixed", 60, FS, 1, seed=21)
    symbols = [SYMBOL[k] for k in kinds]
    noise = np.random.default_rng(0).normal(0, 0.05, sig.shape)
    both = np.concatenate([sig, noise])
    named = write_wfdb(folder, "named", both, FS, ["lead1", "aux"], beats, symbols)
    other = write_wfdb(folder, "other", both, FS, ["ECG1", "ECG2"], beats, symbols)
    return named, other


def _rows(path):
    with open(path) as f:
        return [(r["sample"], r["label"], r["p_N"]) for r in csv.DictReader(f)]


def test_map_leads_renames_the_named_lead_and_keeps_a_lead_of_that_name_apart(exported):
    spec = EdgeModel(exported["beat_cnn"]).spec
    assert map_leads(["ECG1", "ECG2"], {"lead1": "ECG2"}, spec, "r") == ["ECG1", "lead1"]
    assert map_leads(["lead1", "V5"], {"lead1": "V5"}, spec, "r") == ["lead1 (unmapped)", "lead1"]
    assert map_leads(["lead1"], None, spec, "r") == ["lead1"]
    with pytest.raises(InputError, match=r"has leads \['ECG1'\], not \['ECG9'\]"):
        map_leads(["ECG1"], {"lead1": "ECG9"}, spec, "r")
    with pytest.raises(InputError, match=r"the model has no lead\(s\) \['MLII'\]; its leads are \['lead1'\]"):
        check_lead_map({"MLII": "II"}, spec)


def test_run_refuses_a_lead_named_otherwise_then_maps_it_exactly(model, pair, tmp_path):
    named, other = pair
    runner = CliRunner()
    refused = runner.invoke(cli, ["run", str(model), str(other)])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "the model needs ['lead1']" in refused.output and "--lead (MODEL=RECORD)" in refused.output
    for name, path, extra in (("a", named, []), ("b", other, ["--lead", "lead1=ECG1"])):
        result = runner.invoke(cli, ["run", str(model), str(path), "--out", str(tmp_path / f"{name}.csv"), *extra])
        assert result.exit_code == 0, result.output
    assert _rows(tmp_path / "a.csv") == _rows(tmp_path / "b.csv")
    wrong = runner.invoke(cli, ["run", str(model), str(other), "--lead", "lead1=ECG2", "--out",
                                str(tmp_path / "c.csv")])
    assert wrong.exit_code == 0 and _rows(tmp_path / "c.csv") != _rows(tmp_path / "a.csv")  # the map is obeyed


@pytest.mark.parametrize("args, message", [
    (["--lead", "MLII=ECG1"], "--lead: the model has no lead(s) ['MLII']"),
    (["--lead", "lead1=ECG7"], "not ['ECG7'] (named by --lead)"),
])
def test_a_wrong_lead_map_is_one_clear_line(model, pair, args, message):
    result = CliRunner().invoke(cli, ["run", str(model), str(pair[1]), *args])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("value, message", [("lead1", "is not MODEL=RECORD"), ("=ECG1", "is not MODEL=RECORD"),
                                            ("lead1=", "is not MODEL=RECORD")])
def test_a_malformed_lead_option_is_a_usage_error(model, pair, value, message):
    result = CliRunner().invoke(cli, ["run", str(model), str(pair[1]), "--lead", value])
    assert result.exit_code == 2 and message in result.output
    twice = CliRunner().invoke(cli, ["run", str(model), str(pair[1]), "--lead", "lead1=ECG1", "--lead", "lead1=ECG2"])
    assert twice.exit_code == 2 and "mapped twice" in twice.output


def test_files_that_name_no_leads_refuse_a_lead_map(model, pair, tmp_path):
    spec = EdgeModel(model).spec
    raw = tmp_path / "raw.npy"
    np.save(raw, np.zeros(3600, np.float32))
    with pytest.raises(InputError, match="a raw array names no leads"):
        read_recording(raw, spec, FS, {"lead1": "ECG1"})
    ready = tmp_path / "ready.npy"
    np.save(ready, np.zeros((2, 1, 12), np.float32))
    result = CliRunner().invoke(cli, ["run", str(model), str(ready), "--lead", "lead1=ECG1"])
    assert result.exit_code == 1 and "model-ready samples" in result.output


def test_evaluate_checks_the_map_first_and_gives_the_named_records_figures(model, pair, tmp_path):
    named, other = pair
    runner = CliRunner()
    figures = []
    for name, path, extra in (("a", named, []), ("b", other, ["--lead", "lead1=ECG1"])):
        result = runner.invoke(cli, ["evaluate", str(model), str(path), "--beats", "detect", "-q", "--out",
                                     str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
        gross = json.loads((tmp_path / name / "evaluation.json").read_text())["gross"]
        figures.append((gross["per_class"], gross["detection"]))
    assert figures[0] == figures[1]
    bad = runner.invoke(cli, ["evaluate", str(model), str(other), "--lead", "V5=ECG1"])
    assert bad.exit_code == 1 and "the model has no lead(s) ['V5']" in bad.output


def test_monitor_maps_a_channel_as_run_does(model, pair, tmp_path):
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", str(model), str(pair[0]), "--out", str(tmp_path / "run.csv")])
    assert ran.exit_code == 0, ran.output
    with open(tmp_path / "run.csv") as f:
        expected = [(round(float(r["time_s"]), 3), r["label"]) for r in csv.DictReader(f)]
    result = runner.invoke(cli, ["monitor", str(model), str(pair[1]), "--speed", "0", "--lead", "lead1=ECG1",
                                 "--jsonl", str(tmp_path / "m.jsonl"), "-q"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [(b["t"], b["label"]) for b in lines if b["type"] == "beat"] == expected
    missing = runner.invoke(cli, ["monitor", str(model), str(pair[1]), "--speed", "0", "--lead", "lead1=ECG5", "-q"])
    assert missing.exit_code == 1 and "not ['ECG5']" in missing.output
    unmapped = runner.invoke(cli, ["monitor", str(model), str(pair[1]), "--speed", "0", "-q"])  # never by position
    assert unmapped.exit_code == 1 and "the model needs ['lead1']" in unmapped.output and "--lead" in unmapped.output


def test_a_rhythm_models_leads_are_mapped_the_same_way(exported):
    from edgemed.core.readers import RawRecording
    from edgemed.runtime.ecg.rhythm import select_leads

    spec = EdgeModel(exported["cnn_gru"]).spec
    wanted = list(spec.channel_names)
    assert len(wanted) == 2
    signal = np.arange(12.0).reshape(3, 4)
    rec = RawRecording("r", signal, 100.0, ["I", "II", "III"])
    with pytest.raises(InputError, match="`lead_map`"):
        select_leads(rec, spec, "r")
    got = select_leads(rec, spec, "r", {wanted[0]: "III", wanted[1]: "I"})
    np.testing.assert_array_equal(got, signal[[2, 0]])
