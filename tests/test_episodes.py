"""Rhythm episodes: couplets and runs of ectopic beats, atrial fibrillation from RR irregularity (bigeminy is not
AF), the EC57-style run-by-run and AF comparison, and both wired into `evaluate` and `run`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.runtime.ecg.episode_match import compare
from edgemed.runtime.ecg.episodes import (
    AF_WINDOW,
    AFRelabel,
    AFTracker,
    Episode,
    af_episodes,
    detected_episodes,
    reference_af,
    runs,
)
from edgemed.train.data.synthetic_ecg import synthetic_recording

from helpers import write_wfdb

FS = 360.0


def test_runs_are_couplets_and_runs_of_one_class():
    labels = list("NVVNVVVNNSSSSSSNVNS") + ["uncertain", "V", "V"]
    samples = np.arange(len(labels)) * 300
    found = runs(samples, labels)
    assert [(e.kind, e.beats) for e in found] == [("V couplet", 2), ("V run", 3), ("S run", 6), ("V couplet", 2)]
    assert found[1].to_dict(FS)["length"] == "short" and found[2].to_dict(FS)["length"] == "long"
    assert found[0].start == 300 and found[0].end == 600


def _positions(rr_s: np.ndarray) -> np.ndarray:
    return np.round(np.cumsum(rr_s) * FS).astype(np.int64)


def test_af_is_irregular_rhythm_and_bigeminy_is_not():
    rng = np.random.default_rng(0)
    sinus = 0.8 + 0.02 * np.sin(np.arange(300) / 5)  # sinus arrhythmia: smooth
    af = rng.uniform(0.45, 1.1, 300)
    bigeminy = np.tile([0.55, 1.05], 150)
    rr = np.concatenate([sinus, af, bigeminy])
    samples = _positions(rr)
    labels = ["N"] * len(rr)
    episodes = af_episodes(samples, labels, FS)
    assert len(episodes) == 1
    first, last = np.searchsorted(samples, [episodes[0].start, episodes[0].end])  # beat indices; AF is beats 300-600
    assert abs(first - 300) <= AF_WINDOW and abs(last - 600) <= 6  # onset needs a window of intervals to show
    # ventricular ectopics in a sinus rhythm (intervals next to a V beat are left out) are not AF either
    ectopic = ["V" if k % 4 == 0 else "N" for k in range(300)]
    early = sinus.copy()
    early[::4] = 0.5
    assert af_episodes(_positions(early), ectopic, FS) == []


def test_beats_found_while_the_model_lead_was_flat_make_no_episode():
    """A minute of MLII off, the beats found in the other lead: their labels (read from a flat window) mean nothing.
    They made S runs and V couplets; and their intervals (a noisier lead) are not read as AF."""
    rng = np.random.default_rng(3)
    rr = np.concatenate([np.full(40, 0.8), rng.uniform(0.45, 1.1, 80), np.full(40, 0.8)])
    samples = _positions(rr)
    labels = ["N"] * 40 + list(rng.choice(["S", "V", "N"], 80)) + ["N"] * 40
    quality = [()] * 40 + [("flat_line",)] * 80 + [()] * 40
    assert detected_episodes(samples, labels, FS)  # read at face value: runs, couplets, AF
    assert detected_episodes(samples, labels, FS, quality) == []


def test_atrial_trigeminy_is_not_af_and_keeps_its_s_beats():
    """Intervals next to S beats are left out of the AF test: kept, every third beat early and a pause after it
    reads as irregular (relative successive differences near 0.4) and 94 of 100 true S beats would become N. A
    record dominated by premature atrial beats (MIT-BIH 232) would lose its S beats the same way."""
    rr = np.tile([0.8, 0.5, 1.1], 100)
    labels = ["N", "S", "N"] * 100
    samples = _positions(rr)
    assert af_episodes(samples, labels, FS) == []
    assert AFRelabel(FS, ("N", "S", "V")).apply(samples, labels) == (labels, 0)


def test_the_tracker_needs_a_full_window_before_it_says_anything():
    tracker = AFTracker(FS, window=16)
    rng = np.random.default_rng(1)
    states = [tracker.push(int(s), "N") for s in _positions(rng.uniform(0.4, 1.2, 20))]
    assert not any(states[:18]) and all(states[18:])  # 18 intervals: the window and two for the lag-2 differences


def test_s_beats_in_irregular_rhythm_become_n_and_elsewhere_stay_s():
    rng = np.random.default_rng(2)
    sinus = np.full(60, 0.8)
    sinus[30::10] = 0.5  # premature atrial beats in a regular rhythm
    rr = np.concatenate([sinus, rng.uniform(0.45, 1.1, 80)])
    labels = ["S" if k % 10 == 0 else "N" for k in range(len(rr))]
    out, changed = AFRelabel(FS, ("N", "S", "V", "F")).apply(_positions(rr), labels)
    assert out[:60] == labels[:60]  # regular: the premature beats are kept
    relabelled = [k for k in range(len(rr)) if labels[k] != out[k]]
    assert changed == len(relabelled) >= 4 and all(k >= 60 and labels[k] == "S" for k in relabelled)
    assert {out[k] for k in relabelled} == {"N"}
    # a model without both S and N is left as it is
    assert AFRelabel(FS, ("S", "V")).apply(_positions(rr), labels) == (labels, 0)


def test_comparison_counts_overlaps_and_af_durations():
    reference = [Episode("V run", 1000, 2000, 3), Episode("V run", 9000, 9900, 4), Episode("AF", 0, 36000, 0)]
    detected = [Episode("V run", 1900, 2500, 3), Episode("V couplet", 9000, 9300, 2),
                Episode("AF", 18000, 54000, 40)]
    counts = compare(reference, detected, FS)
    assert counts["V run"].to_dict()["se"] == 0.5 and counts["V run"].to_dict()["ppv"] == 1.0
    assert counts["V couplet"].to_dict() == {"reference": 0, "detected": 1, "se": None, "ppv": 0.0}
    af = counts["AF"].to_dict()
    assert af["se"] == 1.0 and af["ppv"] == 1.0 and af["duration_se"] == 0.5 and af["duration_ppv"] == 0.5
    assert counts["V run (short)"].reference == 2


def test_reference_af_runs_from_afib_to_the_next_rhythm_change():
    samples = np.array([0, 1000, 5000, 7000])
    aux = ["(N", "(AFIB", "(N", "(AFIB"]
    assert [(e.start, e.end) for e in reference_af(samples, aux, 9000)] == [(1000, 5000), (7000, 9000)]


@pytest.fixture(scope="module")
def af_record(tmp_path_factory):
    """A synthetic record: 2 minutes of sinus rhythm with PVCs, then 3 minutes of AF, annotated as MIT-BIH is."""
    folder = tmp_path_factory.mktemp("af")
    sig_a, beats_a, kinds_a = synthetic_recording("pvc", 120, FS, 1, seed=3)
    sig_b, beats_b, kinds_b = synthetic_recording("afib", 180, FS, 1, seed=4)
    sig = np.concatenate([sig_a, sig_b], axis=1)
    beats = np.concatenate([beats_a, beats_b + sig_a.shape[1]])
    symbols = ["V" if k == "V" else "A" if k == "S" else "N" for k in [*kinds_a, *kinds_b]]
    aux = {0: "(N", len(beats_a): "(AFIB"}
    write_wfdb(folder, "af1", sig, FS, ["lead1"], beats, symbols, aux)
    (folder / "RECORDS").write_text("af1\n")
    return folder


def test_evaluate_reports_runs_and_af_episodes(exported, af_record, tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", str(exported["beat_cnn"]), str(af_record), "--out",
                                      str(tmp_path / "ev"), "-q"])
    assert result.exit_code == 0, result.output
    gross = json.loads((tmp_path / "ev" / "evaluation.json").read_text())["gross"]
    af = gross["episodes"]["AF"]
    assert af["reference"] == 1 and af["reference_s"] == pytest.approx(180, abs=2)
    assert af["se"] == 1.0 and af["duration_se"] > 0.8, af
    assert "| AF |" in (tmp_path / "ev" / "evaluation.md").read_text()


def test_run_writes_the_episodes_beside_the_beats(exported, af_record, tmp_path):
    out = tmp_path / "beats.csv"
    result = CliRunner().invoke(cli, ["run", str(exported["beat_cnn"]), str(af_record / "af1"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    episodes = (tmp_path / "beats.episodes.csv").read_text().splitlines()
    assert episodes[0] == "record,kind,start_s,end_s,beats,length"
    assert any(",AF," in line for line in episodes[1:]) and "episodes:" in result.output
    result = CliRunner().invoke(cli, ["run", str(exported["beat_cnn"]), str(af_record / "af1"), "--out",
                                      str(tmp_path / "beats.json")])
    saved = json.loads((tmp_path / "beats.json").read_text())
    assert any(e["kind"] == "AF" for e in saved["episodes"])
