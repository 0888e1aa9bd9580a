"""Data sources: synthetic generators, real MIT-BIH records, arrays and CSV, and their error messages."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgemed.core.errors import DataError
from edgemed.core.spec import Window
from edgemed.train.data import load_data
from edgemed.train.data.wfdb_source import AAMI_CLASSES, beat_counts, list_records, load_wfdb
from edgemed.train.split import group_split

# Published AAMI class counts of the 22 DS1 records (shared/data/mitdb/README.md).
DS1_AAMI = {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8}


@pytest.mark.parametrize("source", ["synthetic-ecg", "synthetic-vitals", "synthetic-frames"])
def test_synthetic_is_seeded_and_deterministic(source):
    a, b = load_data(source, samples=30, seed=3), load_data(source, samples=30, seed=3)
    c = load_data(source, samples=30, seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)
    assert a.sha256 == b.sha256 != c.sha256


def test_synthetic_ecg_has_five_rhythms_and_asked_leads():
    ds = load_data("synthetic-ecg", samples=50, leads=3, sampling_rate_hz=200.0)
    assert ds.X.shape == (50, 3, 2000)
    assert ds.labels == ("sinus", "afib", "brady", "tachy", "pvc")
    assert all(v == 10 for v in ds.class_counts().values())


def test_synthetic_heart_rates_match_their_rhythm():
    """R peaks counted per window give rates in each class's range."""
    ds = load_data("synthetic-ecg", samples=40, leads=1, sampling_rate_hz=250.0)
    rates = {}
    for x, y in zip(ds.X[:, 0], ds.y, strict=True):
        from scipy.signal import find_peaks

        x = x - np.convolve(x, np.ones(125) / 125, mode="same")
        peaks, _ = find_peaks(x, height=0.4 * x.max(), distance=60)
        rates.setdefault(ds.labels[y], []).append(len(peaks) * 6)
    assert np.median(rates["brady"]) < 60 < np.median(rates["sinus"]) < 100 < np.median(rates["tachy"])


def test_vitals_are_variable_length_and_padded_at_the_end():
    ds = load_data("synthetic-vitals", samples=40)
    assert ds.lengths is not None and ds.lengths.min() < ds.lengths.max()
    i = int(np.argmin(ds.lengths))
    assert (ds.X[i, ds.lengths[i]:] == 0).all() and (ds.X[i, : ds.lengths[i], 1] > 50).all()


def test_real_record_gives_the_aami_counts_of_its_annotations(mitdb):
    import wfdb

    ann = wfdb.rdann(str(mitdb / "208"), "atr")
    symbols = list(ann.symbol)
    expected = {"N": sum(symbols.count(s) for s in "NLRej"), "S": sum(symbols.count(s) for s in "aAJS"),
                "V": sum(symbols.count(s) for s in "VE"), "F": symbols.count("F"),
                "Q": sum(symbols.count(s) for s in "/fQ")}
    assert beat_counts(mitdb, "208") == expected
    assert beat_counts(mitdb, "101") == {"N": 1860, "S": 3, "V": 0, "F": 0, "Q": 2}


def test_wfdb_readers_take_a_path_or_its_text(mitdb):
    from edgemed.core.readers import wfdb

    base = mitdb / "101"
    for given in (base, str(base)):
        assert wfdb.read_header(given).fs == 360.0
        assert wfdb.read_record(given).signal.shape == (2, 650000)
        assert len(wfdb.read_annotations(given).sample) > 1800
    assert wfdb.record_names(str(mitdb)) == wfdb.record_names(mitdb) and wfdb.is_record_folder(str(mitdb))
    assert wfdb.record_base(f"{base}.hea") == base


def test_all_ds1_records_give_the_published_aami_totals(mitdb):
    totals = dict.fromkeys(AAMI_CLASSES, 0)
    for name in list_records(mitdb):
        for k, v in beat_counts(mitdb, name).items():
            totals[k] += v
    assert totals == DS1_AAMI


def test_beat_windows_from_a_real_record(mitdb):
    ds = load_wfdb(mitdb, records=["208"], sampling_rate_hz=180.0)
    counts = beat_counts(mitdb, "208")
    pre = ds.spec.preprocessing
    assert ds.X.shape[1:] == (2, 324) == (2, pre.window.length(pre.sampling_rate_hz)) and pre.sampling_rate_hz == 180.0
    assert ds.spec.channel_names == ("MLII", "V1")
    assert ds.class_counts() == counts  # every beat, windows at the record's ends edge-padded
    assert set(ds.groups) == {"208"}


def test_rhythm_windows_from_a_real_record(mitdb):
    ds = load_wfdb(mitdb, records=["201"], task="rhythm", window_s=10.0)
    assert ds.X.shape[1:] == (2, 3600)
    assert "AFIB" in ds.labels and ds.spec.preprocessing.window == Window("rhythm", seconds=10.0)


def test_record_without_annotations_is_refused(mitdb, tmp_path):
    for ext in (".hea", ".dat"):
        shutil.copy(mitdb / f"101{ext}", tmp_path / f"101{ext}")
    with pytest.raises(DataError, match=r"record 101: no annotation file .*101\.atr"):
        load_wfdb(tmp_path)


def test_split_is_by_group_and_covers_classes():
    ds = load_data("synthetic-ecg", samples=200, patients=20)
    tr, va = group_split(ds, 0.25, seed=1)
    assert not set(ds.groups[tr]) & set(ds.groups[va])
    assert set(ds.y[va]) == set(range(5))
    assert 0.1 < len(va) / len(ds) < 0.45


def test_npz_npy_and_csv_sources(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 10, 3)).astype(np.float32), np.array(["a", "b", "c"] * 4)
    np.savez(tmp_path / "d.npz", X=X, y=y, groups=np.arange(12) % 4)
    ds = load_data(str(tmp_path / "d.npz"))
    assert ds.labels == ("a", "b", "c") and ds.y.tolist()[:3] == [0, 1, 2] and len(set(ds.groups)) == 4
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.arange(12) % 2)
    assert load_data(str(tmp_path / "X.npy")).labels == ("0", "1")
    rows = ["sequence_id,time,hr,spo2,label"] + [f"s{i},{t},{70 + t},{98 - i},{i % 2}"
                                                 for i in range(4) for t in range(3 + i)]
    (tmp_path / "v.csv").write_text("\n".join(rows))
    ds = load_data(str(tmp_path / "v.csv"))
    assert ds.X.shape == (4, 6, 2) and ds.lengths.tolist() == [3, 4, 5, 6]
    assert ds.spec.channel_names == ("hr", "spo2") and ds.X[1, 3, 0] == 73


@pytest.mark.parametrize(
    "name,setup,message",
    [
        ("data.npz", lambda p: None, "no such file or folder"),
        ("data.txt", lambda p: p.write_text("x"), "unsupported file type"),
        ("data.npz", lambda p: np.savez(p, X=np.array([[1.0, np.nan]]), y=np.array([0])), "NaN/Inf"),
        ("data.npz", lambda p: np.savez(p, X=np.ones((2, 3))), r"missing array\(s\) \['y'\]"),
        ("data.npz", lambda p: np.savez(p, X=np.ones((2, 3)), y=np.array([0.5, 1])), "whole numbers"),
        ("data.npz", lambda p: np.savez(p, X=np.ones((2, 3)), y=np.array([0, 5]), label_names=np.array(["a", "b"])),
         "labels range 0..5 but there are 2 class names"),
        ("data.npz", lambda p: p.write_bytes(b"not a zip"), "not a readable .npz"),
        ("data.csv", lambda p: p.write_text("sequence_id,label,hr\ns1,0,fast\n"), "line 2: non-numeric"),
        ("data.csv", lambda p: p.write_text("id,label,hr\ns1,0,1\n"), "no 'sequence_id' column"),
    ],
    ids=["missing", "suffix", "nan", "no-y", "float-y", "label-range", "corrupt", "csv-value", "csv-column"],
)
def test_bad_data_gives_a_clear_error(tmp_path, name, setup, message):
    path = tmp_path / name
    setup(path)
    with pytest.raises(DataError, match=message):
        load_data(str(path))


def test_csv_signals_with_old_mac_line_ends_read_alike_and_a_broken_first_row_is_refused(tmp_path, exported):
    from click.testing import CliRunner

    from edgemed.cli.main import cli
    from edgemed.core import readers

    values = np.round(np.sin(np.arange(400) / 9), 4)
    for name, end in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        (tmp_path / f"{name}.csv").write_bytes(("lead1" + end + end.join(f"{v:.4f}" for v in values) + end).encode())
    got = [readers.read_recording(tmp_path / f"{n}.csv", 100.0) for n in ("lf", "crlf", "cr")]
    assert all(g.names == ["lead1"] and np.allclose(g.signal[0], values) for g in got)
    (tmp_path / "bad.csv").write_bytes(b"\rlead1\n0.1\n0.2\n")  # a stray carriage return before the header
    result = CliRunner().invoke(cli, ["run", str(exported["beat_cnn"]), str(tmp_path / "bad.csv"),
                                      "--sampling-rate", "100"])
    assert result.exit_code == 1 and "no lead columns" in result.output and "Traceback" not in result.output
