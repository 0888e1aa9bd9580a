"""Beats from raw ECG to labels: conditioning, rhythm context, the beat pipeline whole and streamed, `run` on
recordings, `evaluate` with both beat sources, cross-validation, calibration and abstention, model cards."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.core.calibration import coverage, expected_calibration_error, fit_temperature, softmax
from edgemed.core.spec import BandpassFilter, BeatContext, Calibration, Preprocessing, Window
from edgemed.runtime.ecg.beats import BeatClassifier, BeatRows
from edgemed.runtime.ecg.conditioning import Conditioner, condition, to_conditioned
from edgemed.runtime.ecg.context import MIN_RR_S, RESTART_S, beat_inputs
from edgemed.runtime.model import UNCERTAIN, EdgeModel, Prediction
from edgemed.train.data.synthetic_ecg import synthetic_recording

from helpers import write_wfdb

SYMBOL = {"N": "N", "S": "A", "V": "V"}


@pytest.fixture(scope="module")
def beat_model(exported):
    return EdgeModel(exported["beat_cnn"])


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Three synthetic patients as WFDB records at 360 Hz with their true beats, and one unannotated copy."""
    folder = tmp_path_factory.mktemp("wfdb")
    truth = {}
    for i in range(3):
        sig, beats, kinds = synthetic_recording("mixed", 90, 360.0, 1, seed=40 + i)
        write_wfdb(folder, f"p{i}", sig, 360.0, ["lead1"], beats, [SYMBOL[k] for k in kinds])
        truth[f"p{i}"] = (beats, list(kinds))
    (folder / "RECORDS").write_text("p0\np1\np2\n")
    return folder, truth


def test_causal_conditioning_streams_exactly_and_states_its_delay():
    pre = Preprocessing(sampling_rate_hz=180, bandpass=BandpassFilter(0.5, 40, 2, zero_phase=False), causal=True)
    x = np.random.default_rng(0).standard_normal((2, 7200)) + 2.0
    whole, delay = condition(x, 360.0, pre)
    c = Conditioner(pre, 360.0, 2)
    cuts = [0, 1, 7, 500, 501, 3333, 7200]
    parts = np.concatenate([c.push(x[:, a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)], axis=1)
    np.testing.assert_allclose(parts, whole, atol=1e-6)
    assert whole.shape == (2, 3600) and delay > 0
    # an impulse at raw sample 1800 peaks at its delayed conditioned position
    impulse = np.zeros((1, 7200))
    impulse[0, 1800] = 1.0
    out, delay = condition(impulse, 360.0, Preprocessing(sampling_rate_hz=180, causal=True))
    assert abs(int(np.argmax(out[0])) - int(to_conditioned(np.array([1800]), 360.0, 180.0, delay)[0])) <= 1


def test_beat_inputs_keep_every_beat_and_compute_rhythm_from_the_past():
    fs, rr = 100.0, 80
    sig = np.random.default_rng(1).standard_normal((1, 1950)).astype(np.float32)
    beats = np.arange(5, 1950, rr)
    beats[10] -= 30  # a premature beat
    ctx = BeatContext(features=("pre_rr", "local_rr", "pre_local", "pre_prev"), align_s=0.0, template_beats=4)
    inputs = beat_inputs(sig, beats, fs, Window("beat", before_s=0.3, after_s=0.4), ctx)
    assert len(inputs) == len(beats) and inputs.padded[0] and inputs.padded[-1] and not inputs.padded[5]
    assert inputs.rr[5, 0] == pytest.approx(0.8) and inputs.rr[5, 2] == pytest.approx(1.0)
    assert inputs.rr[10, 0] == pytest.approx(0.5) and inputs.rr[10, 2] == pytest.approx(0.5 / 0.8)
    assert inputs.rr[11, 0] == pytest.approx(1.1)  # the pause after it, seen only at the next beat (causal)
    assert inputs.rr[5, 3] == pytest.approx(1.0) and inputs.rr[10, 3] == pytest.approx(0.5 / 0.8)
    assert inputs.rr[11, 3] == pytest.approx(1.1 / 0.5) and inputs.rr[0, 3] == pytest.approx(1.0)
    np.testing.assert_allclose(inputs.template[6], np.median(inputs.windows[2:6], axis=0), atol=1e-6)
    twin = beat_inputs(sig, np.array([100, 100, 300]), fs, Window("beat", before_s=0.1, after_s=0.1), ctx)
    assert twin.rr[1, 0] == pytest.approx(MIN_RR_S)  # two positions on one beat do not divide by zero


def test_a_gap_in_the_signal_starts_the_context_afresh():
    """Beats after a gap longer than RESTART_S get exactly the inputs of the same beats at a recording's start (a
    20-minute gap once held `long_rr` for five minutes and made every beat look premature); before the gap, the
    last beat's next interval is missing, as at a recording's end."""
    fs = 100.0
    sig = np.random.default_rng(2).standard_normal((1, 3000)).astype(np.float32)
    beats = np.arange(50, 1450, 80)
    gap = int(RESTART_S * fs) + 1
    joined = np.concatenate([sig[:, :1500], np.zeros((1, gap), np.float32), sig[:, :1500]], axis=1)
    after = np.concatenate([beats, beats + 1500 + gap])
    win = Window("beat", before_s=0.3, after_s=0.4)
    for causal, features in ((True, ("pre_rr", "local_rr", "long_rr", "pre_long", "pre_prev")),
                             (False, ("pre_rr", "post_rr", "post_pre"))):
        ctx = BeatContext(features=features, causal=causal, align_s=0.0, template_beats=4)
        alone, both = beat_inputs(sig[:, :1500], beats, fs, win, ctx), beat_inputs(joined, after, fs, win, ctx)
        np.testing.assert_array_equal(both.rr[: len(beats)], alone.rr)
        np.testing.assert_array_equal(both.rr[len(beats) :], alone.rr)
        np.testing.assert_array_equal(both.template[len(beats) :], alone.template)
    short = np.concatenate([beats, beats + 1500 + int(3 * fs)])  # a 3 s pause is rhythm: the context goes on
    ctx = BeatContext(features=("pre_rr",), causal=True, align_s=0.0, template_beats=0)
    assert beat_inputs(joined, short, fs, win, ctx).rr[len(beats), 0] > 3.0


def test_full_context_reads_the_next_interval():
    with pytest.raises(Exception, match="causal model cannot use post_rr"):
        BeatContext(features=("post_rr",), causal=True)
    ctx = BeatContext(features=("pre_rr", "post_rr", "post_pre"), causal=False, align_s=0.0, template_beats=0)
    beats = np.array([100, 180, 230, 340, 420])
    inputs = beat_inputs(np.zeros((1, 600), np.float32), beats, 100.0, Window("beat", before_s=0.1, after_s=0.1), ctx)
    assert inputs.rr[2].tolist() == pytest.approx([0.5, 1.1, 2.2])
    assert inputs.template is None


def test_stream_gives_the_same_beats_labels_and_probabilities_as_a_whole_record(beat_model):
    classifier = BeatClassifier(beat_model)
    sig, true_beats, _ = synthetic_recording("mixed", 60, 360.0, 1, seed=11)
    whole = classifier.classify(sig, 360.0)
    stream = classifier.stream(360.0, 1)
    rng = np.random.default_rng(2)
    parts, i = [], 0
    while i < sig.shape[1]:
        n = int(rng.integers(1, 700))
        parts.append(stream.push(sig[:, i : i + n]))
        i += n
    parts.append(stream.flush())
    streamed = BeatRows.concat(parts, "s", 360.0, beat_model.labels)
    assert np.array_equal(streamed.samples, whole.samples) and streamed.labels == whole.labels
    np.testing.assert_allclose(streamed.probabilities, whole.probabilities, atol=1e-6)
    assert stream._buffer.shape[1] < 30 * 180 + 200  # bounded memory
    assert (streamed.emitted_at >= streamed.samples).all()
    assert len(whole) == len(true_beats)


def test_run_on_raw_signals_records_and_folders(beat_model, records, tmp_path):
    folder, truth = records
    runner = CliRunner()
    sig, _, _ = synthetic_recording("mixed", 40, 250.0, 1, seed=3)
    np.save(tmp_path / "raw.npy", sig[0])
    (tmp_path / "raw.csv").write_text("time,lead1\n" + "".join(f"{i / 250},{v}\n" for i, v in enumerate(sig[0])))
    model = str(beat_model.path)
    res = runner.invoke(cli, ["run", model, str(tmp_path / "raw.npy"), "--sampling-rate", "250",
                              "--out", str(tmp_path / "a.csv")])
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "record,sample,time_s,label," + ",".join(f"p_{c}" for c in beat_model.labels) + ",quality"
    assert len(lines) > 30
    res = runner.invoke(cli, ["run", model, str(tmp_path / "raw.csv"), "--sampling-rate", "250", "--stream",
                              "--out", str(tmp_path / "b.csv")])
    assert res.exit_code == 0 and "stream latency" in res.output, res.output
    streamed = [r.split(",") for r in (tmp_path / "b.csv").read_text().splitlines()[1:]]
    batch = [r.split(",") for r in lines[1:]]
    assert [r[:4] + r[-1:] for r in streamed] == [r[:4] + r[-1:] for r in batch]  # record, sample, time, label
    np.testing.assert_allclose(np.array([r[4:-1] for r in streamed], float), np.array([r[4:-1] for r in batch], float),
                               atol=1e-5)
    res = runner.invoke(cli, ["run", model, str(tmp_path / "raw.csv")])
    assert res.exit_code == 1 and "--sampling-rate" in res.output
    res = runner.invoke(cli, ["run", model, str(folder), "--out", str(tmp_path / "f.json")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "f.json").read_text())["predictions"]
    assert {r["record"] for r in rows} == set(truth)
    res = runner.invoke(cli, ["run", model, str(folder / "p1"), "--beats", "reference", "--out",
                              str(tmp_path / "r.json")])
    rows = json.loads((tmp_path / "r.json").read_text())["predictions"]
    assert [r["sample"] for r in rows] == sorted(truth["p1"][0].tolist())


def test_evaluate_counts_every_beat_with_both_sources_and_writes_a_card(beat_model, records, tmp_path):
    folder, truth = records
    (folder / "bad.hea").write_text("bad 1 360 1000\nbad.dat 16 200 16 0 0 0 0 lead1\n")
    (folder / "bad.dat").write_bytes(b"\x00" * 10)  # truncated signal
    write_annotation = __import__("helpers").write_annotations
    write_annotation(folder / "bad.atr", np.array([100, 400]), ["N", "V"], {})
    runner = CliRunner()
    out = tmp_path / "ev"
    res = runner.invoke(cli, ["evaluate", str(beat_model.path), str(folder), "--records", "p0,p1,p2,bad",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "evaluation.json").read_text())
    total = sum(len(b) for b, _ in truth.values()) + 2
    assert report["gross"]["reference_beats"] == total
    counts = np.array(report["gross"]["confusion"]["counts"])
    assert counts[:-1].sum() == total and counts[-1].sum() == 0  # no extra row from reference beats
    bad = next(r for r in report["records"] if r["record"] == "bad")
    assert bad["error"] and bad["reference_beats"] == 2
    unclassified = report["gross"]["confusion"]["columns"].index("unclassified")
    assert counts[:, unclassified].sum() == 2
    for name in ("evaluation.md", "confusion.png", "model_card.md"):
        assert (out / name).stat().st_size > 100
    card = (out / "model_card.md").read_text()
    assert beat_model.sha256 in card.splitlines()[0] and "## Known limitations" in card
    res = runner.invoke(cli, ["evaluate", str(beat_model.path), str(folder), "--records", "p0,p1,p2",
                              "--beats", "detect", "--out", str(out)])
    assert res.exit_code == 1 and "--force" in res.output
    res = runner.invoke(cli, ["evaluate", str(beat_model.path), str(folder), "--records", "p0,p1,p2",
                              "--beats", "detect", "--out", str(out), "--force", "-q"])
    assert res.exit_code == 0, res.output
    detect = json.loads((out / "evaluation.json").read_text())
    det = detect["gross"]["detection"]
    assert det["se"] > 0.99 and det["ppv"] > 0.99
    assert det["tp"] + det["fn"] == total - 2 == detect["gross"]["reference_beats"]
    card = (out / "model_card.md").read_text()
    assert f"({det['fn']:,} missed, {det['fp']:,} extra)" in card
    assert ("## Runs and rhythm episodes" in card) == bool(detect["gross"]["episodes"])

    bundle = tmp_path / "bundle"
    res = runner.invoke(cli, ["bundle", str(beat_model.path), "--device", "cpu", "-o", str(bundle), "--card",
                              str(out / "model_card.md")])
    assert res.exit_code == 0, res.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["models"][0]["card"] == beat_model.path.stem + ".card.md"
    assert runner.invoke(cli, ["verify-bundle", str(bundle)]).exit_code == 0
    (tmp_path / "other.md").write_text("<!-- edgemed.model_card/1 model_sha256=" + "0" * 64 + " -->\n# x\n")
    res = runner.invoke(cli, ["bundle", str(beat_model.path), "--device", "cpu", "-o", str(tmp_path / "b2"),
                              "--card", str(tmp_path / "other.md")])
    assert res.exit_code == 1 and "not among the bundled models" in res.output


def test_evaluate_refuses_a_model_that_is_not_a_beat_model_in_one_line(exported, records):
    res = CliRunner().invoke(cli, ["evaluate", str(exported["gru"]), str(records[0]), "--records", "p0"])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and "is not a beat model" in res.output


def test_temperature_scaling_and_abstention():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 4000)
    logits = rng.standard_normal((4000, 3))
    logits[np.arange(4000), y] += 1.5
    over = 4.0 * logits  # overconfident
    t = fit_temperature(over, y)
    assert t > 2.0
    assert expected_calibration_error(softmax(over / t), y) < 0.5 * expected_calibration_error(softmax(over), y)
    from edgemed.core.spec import ModelSpec, TensorSpec

    spec = ModelSpec("x", (TensorSpec("x", ("batch", 2)),), (TensorSpec("logits", ("batch", 2)),), ("a", "b"),
                     calibration=Calibration(temperature=1.0, abstain_below=0.8))
    pred = Prediction(np.array([[3.0, 0.0], [0.2, 0.0]], np.float32), ("a", "b"), None, spec)
    assert pred.predicted == ["a", UNCERTAIN]
    assert coverage(pred.probabilities, 0.8) == 0.5


def test_cross_validation_tests_every_group_once(tmp_path):
    from edgemed.train.cross_validation import patient_folds
    from edgemed.train.data.beats import synthetic_beats
    from edgemed.train.run import run_cross_validation
    from edgemed.train.trainer import TrainConfig

    ds = synthetic_beats(samples=6, seconds=40.0)
    folds = patient_folds(ds, 3)
    assert sorted(g for f in folds for g in f) == sorted(set(ds.groups.tolist())) and all(folds)
    cv = run_cross_validation("beat_cnn", "synthetic-beats", tmp_path / "cv", 3,
                              train_cfg=TrainConfig(epochs=1, progress=False),
                              model_overrides={"channels": (8,)}, data_options={"samples": 6})
    assert cv.pooled["n"] == len(synthetic_beats(samples=6)) and len(cv.folds) == 3
    saved = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert set(saved["summary"]) == {"N", "S", "V"} and "Se % pooled" in (tmp_path / "cv" / "cv.md").read_text()


def test_training_options_validation_loss_sampling_and_recipe(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["train", "--model", "beat_cnn", "--data", "synthetic-beats", "--samples", "10",
                              "--validation", "synthetic-beats", "--epochs", "1", "--loss", "focal", "--sampling",
                              "balanced", "--abstain-below", "0.6", "-c", "channels=8", "--out",
                              str(tmp_path / "run"), "-q"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["split"]["validation_data"] == "synthetic-beats" and metrics["calibration"]["abstain_below"] == 0.6
    assert metrics["calibration"]["ece_after"] <= metrics["calibration"]["ece_before"] + 1e-9
    res = runner.invoke(cli, ["train", "--recipe", "mitdb", "--model", "gru", "--data", "x", "--out", "y"])
    assert res.exit_code == 2 and "trains beat_ensemble" in res.output
    res = runner.invoke(cli, ["train", "--data", "synthetic-beats", "--out", "y"])
    assert res.exit_code == 2 and "--recipe" in res.output


def test_real_records_detect_and_classify(mitdb, tmp_path):
    """A beat model trained briefly on two MIT-BIH records, then run and evaluated on a third with both beat
    sources (skips without ../shared)."""
    from edgemed.export.pipeline import export_target, target_from_checkpoint
    from edgemed.train.run import run_training
    from edgemed.train.trainer import TrainConfig

    run_training("beat_cnn", str(mitdb), tmp_path / "run", train_cfg=TrainConfig(epochs=1, progress=False),
                 data_options={"records": ["101", "119", "106"], "leads": ["MLII"], "sampling_rate_hz": 180.0,
                               "beat_window": (0.35, 0.45)}, val_groups=["106"], model_overrides={"channels": (8, 16)})
    onnx = export_target(target_from_checkpoint(tmp_path / "run" / "model.pt"), tmp_path / "m.onnx").path
    runner = CliRunner()
    res = runner.invoke(cli, ["evaluate", str(onnx), str(mitdb), "--records", "115", "--beats", "detect", "--out",
                              str(tmp_path / "ev"), "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    det = report["gross"]["detection"]
    assert det["se"] > 0.99 and det["ppv"] > 0.99 and det["tp"] + det["fn"] == 1953  # record 115's beats
    res = runner.invoke(cli, ["run", str(onnx), str(mitdb / "115"), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "p.csv").read_text().splitlines()) - 1 == det["tp"] + det["fp"]


def test_edf_recordings_are_read_by_lead_name(beat_model, tmp_path):
    edfio = pytest.importorskip("edfio")
    from edgemed.runtime.ecg.recording import read_recording

    sig, beats, _ = synthetic_recording("mixed", 30, 256.0, 1, seed=8)
    noise = np.zeros_like(sig[0])
    edf = edfio.Edf([edfio.EdfSignal(noise, 256.0, label="EMG", physical_range=(-5, 5)),
                     edfio.EdfSignal(sig[0].astype(np.float64), 256.0, label="lead1", physical_dimension="mV",
                                     physical_range=(-5, 5))])
    edf.write(tmp_path / "rec.edf")
    rec = read_recording(tmp_path / "rec.edf", beat_model.spec)
    assert rec.fs == 256.0 and rec.model_leads == 1 and rec.signal.shape == (1, sig.shape[1])
    np.testing.assert_allclose(rec.signal[0], sig[0], atol=1e-3)  # 16-bit digital resolution
    res = CliRunner().invoke(cli, ["run", str(beat_model.path), str(tmp_path / "rec.edf")])
    assert res.exit_code == 0 and f"{len(beats)} beats" in res.output, res.output
    (tmp_path / "bad.edf").write_bytes(b"0       garbage")
    res = CliRunner().invoke(cli, ["run", str(beat_model.path), str(tmp_path / "bad.edf")])
    assert res.exit_code == 1 and "not a readable EDF" in res.output


@pytest.mark.parametrize("text", ["", "time\n0\n1\n", "LEAD\n"])
def test_csv_recordings_without_leads_or_samples_are_refused(beat_model, tmp_path, text):
    """Found by the long fuzz run: an empty CSV reached numpy as a ValueError."""
    from edgemed.core.errors import InputError
    from edgemed.runtime.ecg.recording import read_recording

    (tmp_path / "r.csv").write_text(text.replace("LEAD", beat_model.spec.channel_names[0]))
    with pytest.raises(InputError, match="no lead columns|no samples"):
        read_recording(tmp_path / "r.csv", beat_model.spec, 360.0)


def test_beats_at_a_lead_coming_off_are_marked_whole_and_streamed(beat_model, monkeypatch):
    """A lead that comes off mid-recording: the beats whose windows reach into the flat line (the last ones before
    it, any the filters' ringing makes at the step) are marked `flat_stretch` and have no class for runs and AF;
    beats away from it are not marked, and a stream marks exactly the same beats."""
    from edgemed.runtime.ecg.episodes import rhythm_label
    from edgemed.runtime.ecg.flat import FLAT_STRETCH, flat_starts

    x = np.random.default_rng(0).normal(size=(2, 997)).cumsum(axis=1) * 0.01
    x[:, 200:400] = 0.3
    run = 90
    brute = np.array([[np.ptp(lead[i : i + run]) < 0.02 for i in range(997 - run + 1)] for lead in x])
    assert np.array_equal(flat_starts(x, run), brute) and brute.any()
    from edgemed.runtime.ecg import flat

    centres = np.arange(0, 997, 13)
    whole = flat.flat_windows(x, 360.0, centres, 100, 120)
    monkeypatch.setattr(flat, "BLOCK", 37)  # a long recording is read in blocks: the same marks
    assert whole.any() and np.array_equal(flat.flat_windows(x, 360.0, centres, 100, 120), whole)
    monkeypatch.undo()

    classifier = BeatClassifier(beat_model)
    fs = 360.0
    sig, _, _ = synthetic_recording("sinus", 60, fs, 1, seed=5)
    off, on = int(30 * fs), int(40 * fs)
    sig[:, off:on] = 0.8
    whole = classifier.classify(sig, fs)
    marked = np.array([FLAT_STRETCH in q for q in whole.quality])
    before, after = classifier.raw_window(fs)
    reaches = (whole.samples + after > off + 0.25 * fs) & (whole.samples - before < on - 0.25 * fs)
    assert marked.any() and np.array_equal(marked, reaches)
    assert all(rhythm_label(label, q) == UNCERTAIN
               for label, q, m in zip(whole.labels, whole.quality, marked, strict=True) if m)
    stream, parts = classifier.stream(fs, 1), []
    for i in range(0, sig.shape[1], 250):
        parts.append(stream.push(sig[:, i : i + 250]))
    streamed = BeatRows.concat([*parts, stream.flush()], "s", fs, beat_model.labels)
    assert np.array_equal(streamed.samples, whole.samples) and streamed.quality == whole.quality
    assert stream._raw.shape[1] < 31 * fs  # bounded memory
