"""Morphology features against the patient's own beats (`edgemed.runtime.ecg.morphology`), the recommended MIT-BIH
model's inputs: what each feature says of normal, premature atrial and ventricular beats, the clustering, bounds on
degenerate windows, and the same values from a whole record and from the beat pipeline fed beat by beat."""

from __future__ import annotations

import numpy as np
import pytest

from edgemed.core.spec import MORPHOLOGY_FEATURES, BeatContext, Window
from edgemed.runtime.ecg.context import ContextTracker, beat_inputs
from edgemed.runtime.ecg.morphology import MAX_CLUSTERS, MorphologyTracker

FS = 360.0
R = round(0.35 * FS)  # the R peak's index in a window of 0.35 s before and 0.45 s after it


def beat(p: float = 0.15, qrs_width_s: float = 0.012, qrs: float = 1.0, t: float = 0.3) -> np.ndarray:
    """One synthetic beat window: a P wave 0.2 s before R, a QRS of the given width and height, a T wave."""
    s = (np.arange(int(0.8 * FS)) - R) / FS
    return (p * np.exp(-0.5 * ((s + 0.2) / 0.025) ** 2) + qrs * np.exp(-0.5 * (s / qrs_width_s) ** 2)
            + t * np.exp(-0.5 * ((s - 0.25) / 0.05) ** 2))


NORMAL = beat()
ATRIAL = beat(p=-0.05)  # the same QRS, another P wave (an ectopic atrial focus)
VENTRICULAR = beat(p=0.0, qrs_width_s=0.04, qrs=-1.6, t=-0.4)  # wide, inverted, no P wave


def test_a_beat_like_its_template_reads_as_the_template():
    f = MorphologyTracker(FS, R).features(NORMAL, NORMAL, 1.0)
    assert f["qrs_corr"] == pytest.approx(1.0) and f["p_corr"] == pytest.approx(1.0)
    assert f["qrs_energy"] == pytest.approx(1.0) and f["qrs_width"] == pytest.approx(1.0)
    assert f["residual"] == pytest.approx(0.0, abs=1e-9)
    assert set(f) == set(MORPHOLOGY_FEATURES)


def test_atrial_beats_keep_their_qrs_and_lose_their_p_wave_ventricular_lose_both():
    tracker = MorphologyTracker(FS, R)
    atrial = tracker.features(ATRIAL, NORMAL, 0.7)
    ventricular = tracker.features(VENTRICULAR, NORMAL, 0.7)
    assert atrial["qrs_corr"] > 0.99 and atrial["p_corr"] < 0.0
    assert ventricular["qrs_corr"] < 0.0 and ventricular["qrs_width"] > 2.0 and ventricular["residual"] > 1.0


def test_clusters_give_the_dominant_shape_its_share_and_early_beats_their_prematurity():
    tracker = MorphologyTracker(FS, R)
    rng = np.random.default_rng(1)
    for _ in range(20):  # normal beats with a little noise (correlation 0.995 over the QRS) are one cluster
        normal = tracker.features(NORMAL + rng.normal(0, 0.03, len(NORMAL)), NORMAL, 1.0)
    early = [tracker.features(VENTRICULAR, NORMAL, 0.6) for _ in range(3)]
    assert normal["cluster_share"] == pytest.approx(1.0) and normal["cluster_rr"] == pytest.approx(1.0)
    assert early[-1]["cluster_share"] == pytest.approx(3 / 23)
    assert early[-1]["cluster_rr"] == pytest.approx(0.6)
    atrial = tracker.features(ATRIAL, NORMAL, 0.7)  # same QRS: joins the normal cluster, its prematurity averaged in
    assert atrial["cluster_share"] == pytest.approx(21 / 24)
    assert atrial["cluster_rr"] == pytest.approx((20 * 1.0 + 0.7) / 21)


def test_the_rarest_cluster_gives_way_when_every_slot_is_taken():
    tracker = MorphologyTracker(FS, R)
    for _ in range(5):
        tracker.features(NORMAL, NORMAL, 1.0)
    shapes = np.random.default_rng(0).normal(size=(MAX_CLUSTERS + 2, len(NORMAL)))  # unlike each other
    for shape in shapes:
        tracker.features(shape, NORMAL, 1.0)
    assert len(tracker._shapes) == MAX_CLUSTERS
    assert sorted(tracker._counts)[-1] == 5  # the dominant cluster survives the newcomers
    assert tracker.features(NORMAL, NORMAL, 1.0)["cluster_share"] == pytest.approx(6 / 16)


@pytest.mark.parametrize("window", [np.zeros(int(0.8 * FS)), np.full(int(0.8 * FS), 3.0), NORMAL * 1e9])
def test_degenerate_windows_give_bounded_values(window):
    tracker = MorphologyTracker(FS, R)
    for template in (NORMAL, window, None):
        f = tracker.features(window, template, 1e9)
        assert all(np.isfinite(v) for v in f.values())
        assert all(-1.0 <= f[k] <= 1.0 for k in ("qrs_corr", "p_corr"))
        assert all(0.0 <= f[k] <= 10.0 for k in ("qrs_energy", "qrs_width", "residual", "cluster_rr"))


def test_a_record_and_beat_by_beat_give_the_same_features():
    """`beat_inputs` over a whole record equals a ContextTracker fed one beat at a time (what a stream does)."""
    rng = np.random.default_rng(3)
    kinds = rng.choice(3, size=60, p=[0.8, 0.1, 0.1])
    shapes = (NORMAL, ATRIAL, VENTRICULAR)
    rr = np.where(kinds == 0, 0.8, 0.55) + rng.normal(0, 0.02, len(kinds))
    positions = (np.cumsum(rr) * FS).astype(int) + int(FS)
    signal = np.zeros((1, positions[-1] + int(FS)))
    for p, k in zip(positions, kinds, strict=True):
        signal[0, p - R : p - R + len(NORMAL)] += shapes[k]
    signal += rng.normal(0, 0.01, signal.shape)
    ctx = BeatContext(features=("pre_local", *MORPHOLOGY_FEATURES), template_beats=8, align_s=0.0)
    window = Window("beat", before_s=0.35, after_s=0.45)
    whole = beat_inputs(signal, positions, FS, window, ctx)
    tracker = ContextTracker(FS, ctx, R)
    one_by_one = np.stack([tracker.next_inputs(int(p), w)[0] for p, w in zip(positions, whole.windows, strict=True)])
    np.testing.assert_array_equal(whole.rr, one_by_one)
    qrs_corr = whole.rr[:, 1 + MORPHOLOGY_FEATURES.index("qrs_corr")]
    p_corr = whole.rr[:, 1 + MORPHOLOGY_FEATURES.index("p_corr")]
    later = np.arange(len(kinds)) >= 10  # once the template has formed
    assert qrs_corr[later & (kinds == 2)].max() < qrs_corr[later & (kinds == 0)].min()
    assert np.median(p_corr[later & (kinds == 1)]) < np.median(p_corr[later & (kinds == 0)])
