"""EDF and EDF+ recordings through the optional `edfio` reader (`pip install 'edgemed[edf]'`). The signals asked
for must share one sampling rate; rate and size are bounded before the samples are decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError, EdgemedError
from edgemed.core.limits import check, check_file_size
from edgemed.core.readers.base import RECORDING, RawRecording, Reader


class EdfReader(Reader):
    name = "edf"
    description = "an .edf recording"
    suffixes = (".edf",)
    limits = ("input_mb", "array_mb", "rate_hz")
    gives = (RECORDING,)

    def holds(self, path: Path) -> str:
        return RECORDING

    def read_recording(self, path: Path, sampling_rate_hz: float | None = None,
                       channels: tuple[str, ...] | None = None) -> RawRecording:
        """The signals named in `channels` (all when None): EDF states each signal's rate, so `sampling_rate_hz`
        is not needed."""
        try:
            import edfio
        except ImportError as exc:
            raise DataError(f"{path}: reading EDF needs the edfio package: pip install 'edgemed[edf]'") from exc
        check_file_size(path)
        try:
            edf = edfio.read_edf(path)
            signals = [s for s in edf.signals if channels is None or s.label.strip() in channels]
            rates = {float(s.sampling_frequency) for s in signals}
            if len(rates) > 1:
                raise DataError(f"{path}: the leads asked for are sampled at different rates {sorted(rates)}")
            fs = rates.pop() if rates else None
            if fs is not None:
                check("rate_hz", fs, f"{path}: sampling rate")
            samples = max((round(float(s.sampling_frequency) * float(edf.duration)) for s in signals), default=0)
            check("array_mb", samples * 8 * len(signals), f"{path}: signal", scale=2**20)
            sig = np.stack([np.asarray(s.data, np.float64) for s in signals]) if signals else np.zeros((0, 0))
        except EdgemedError:
            raise
        except Exception as exc:  # edfio raises ValueError and others on malformed files
            raise DataError(f"{path}: not a readable EDF file ({type(exc).__name__}: {str(exc)[:200]})") from exc
        return RawRecording(path.stem, sig, fs, [s.label.strip() for s in signals], where=str(path))
