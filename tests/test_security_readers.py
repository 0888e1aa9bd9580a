"""Attack suite, round 2: readers and limits (issue 19, classes 4, 7 and 8). Each case must fail closed with a
one-line edgemed error, never a traceback, and never cost memory out of proportion to the file."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from edgemed.core.errors import DataError, InputError, LimitError
from edgemed.core.limits import limit, limit_bytes
from edgemed.core.readers.csv_sequences import read_sequence_csv
from edgemed.core.spec import ModelSpec, TensorSpec
from edgemed.runtime.ecg.recording import read_recording


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "0", "-3", "1e13", "ten"])
def test_limit_variables_must_be_finite_positive_numbers(monkeypatch, value):
    monkeypatch.setenv("EDGEMED_MAX_ARRAY_MB", value)
    with pytest.raises(LimitError, match="EDGEMED_MAX_ARRAY_MB"):
        limit_bytes("array_mb")


def test_a_large_but_finite_limit_still_works(monkeypatch):
    monkeypatch.setenv("EDGEMED_MAX_CSV_ROWS", "1e9")
    assert limit("csv_rows") == 1e9


def test_csv_memory_stays_in_proportion_to_the_file(tmp_path):
    """A CSV of short values cost 50x its size as Python objects; now about 8 bytes per number."""
    rows = 60_000
    path = tmp_path / "v.csv"
    path.write_text("sequence_id,label,a,b,c,d\n" + "".join(f"s{i % 50},0,1,2,3,4\n" for i in range(rows)))
    size = path.stat().st_size
    tracemalloc.start()
    data = read_sequence_csv(path, features=("a", "b", "c", "d"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert data.X.shape == (50, rows // 50, 4)
    assert peak < 12 * size, f"peak {peak / 2**20:.1f} MB for a {size / 2**20:.1f} MB CSV"


def test_csv_sequence_time_must_be_finite_and_unique(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("sequence_id,label,time,a\ns,0,0,1\ns,0,nan,2\n")
    with pytest.raises(DataError, match="line 3: the 'time' value is not a finite number"):
        read_sequence_csv(path)
    path.write_text("sequence_id,label,time,a\ns,0,1,1\ns,0,1,2\n")
    with pytest.raises(DataError, match="same 'time'"):
        read_sequence_csv(path)
    path.write_text("sequence_id,label,time,a\ns,0,2,20\ns,0,1,10\n")
    assert read_sequence_csv(path).X[0, :, 0].tolist() == [10, 20]


def _ecg_spec() -> ModelSpec:
    return ModelSpec("beat_cnn", (TensorSpec("x", ("batch", 1, 10)),), (TensorSpec("logits", ("batch", 2)),),
                     ("N", "V"), channel_names=("MLII",))


@pytest.mark.parametrize("times", ["0,nan,2", "0,1,1", "0,2,1", "0,inf,2"])
def test_recording_csv_time_column_must_increase(tmp_path, times):
    path = tmp_path / "ecg.csv"
    path.write_text("time,MLII\n" + "".join(f"{t},{v}\n" for t, v in zip(times.split(","), (1, 2, 3), strict=True)))
    with pytest.raises(InputError, match="finite, increasing times"):
        read_recording(path, _ecg_spec(), 360)


def test_recording_csv_reads_numbers_in_lead_order(tmp_path):
    path = tmp_path / "ecg.csv"
    path.write_text("time,MLII\n0,1.5\n1,2.5\n2,\n")
    with pytest.raises(InputError):
        read_recording(path, _ecg_spec(), 360)  # the empty cell is NaN: refused as a non-finite sample
    path.write_text("time,MLII\n0,1.5\n1,2.5\n2,3.5\n")
    assert np.allclose(read_recording(path, _ecg_spec(), 360).signal, [[1.5, 2.5, 3.5]])


def test_image_between_one_and_two_times_the_pixel_limit_is_refused(tmp_path, monkeypatch):
    Image = pytest.importorskip("PIL.Image")
    from edgemed.core.readers.images import read_image

    path = tmp_path / "big.png"
    Image.new("RGB", (1500, 1000)).save(path)  # 1.5 megapixels
    monkeypatch.setenv("EDGEMED_MAX_IMAGE_MEGAPIXELS", "1")
    with pytest.raises(LimitError, match="EDGEMED_MAX_IMAGE_MEGAPIXELS"):
        read_image(path)
    monkeypatch.setenv("EDGEMED_MAX_IMAGE_MEGAPIXELS", "2")
    assert read_image(path).shape == (3, 1000, 1500)
