"""The wire format of a live ECG on stdin or a TCP socket.

A stream starts with a 16-byte header, then frames, all little-endian:

| bytes | field |
|---|---|
| 0-3 | magic `EDGM` |
| 4 | version (1) |
| 5 | sample type: 1 int16, 2 int32, 3 float32 |
| 6-7 | channels (uint16, 1 to 64) |
| 8-15 | sampling rate in Hz (float64) |

A frame is one sample of every channel, channel-interleaved (`channels` values of the sample type). Integer
samples are in microvolts. Anything else (a wrong magic, rate or channel count, a partial frame at the end,
non-finite samples) is reported as a fault, never a traceback.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from edgemed.core.errors import InputError
from edgemed.core.limits import limit

MAGIC = b"EDGM"
VERSION = 1
HEADER = struct.Struct("<4sBBHd")
DTYPES = {1: np.dtype("<i2"), 2: np.dtype("<i4"), 3: np.dtype("<f4")}
MICROVOLTS = {1: 1e-3, 2: 1e-3, 3: 1.0}  # to millivolts
MAX_CHANNELS = 64


@dataclass(frozen=True)
class StreamHeader:
    fs: float
    channels: int
    sample_type: int = 3

    @property
    def dtype(self) -> np.dtype:
        return DTYPES[self.sample_type]

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.dtype.itemsize

    def encode(self) -> bytes:
        return HEADER.pack(MAGIC, VERSION, self.sample_type, self.channels, self.fs)


def decode_header(data: bytes) -> StreamHeader:
    """The header of a stream; InputError naming what is wrong."""
    if len(data) < HEADER.size:
        raise InputError(f"stream header: {len(data)} bytes, expected {HEADER.size}")
    magic, version, sample_type, channels, fs = HEADER.unpack(data[: HEADER.size])
    if magic != MAGIC:
        raise InputError(f"stream header: magic {magic!r}, expected {MAGIC!r} (see the monitor's framing)")
    if version != VERSION:
        raise InputError(f"stream header: version {version}, this edgemed reads version {VERSION}")
    if sample_type not in DTYPES:
        raise InputError(f"stream header: sample type {sample_type} (1 int16, 2 int32, 3 float32)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError(f"stream header: {channels} channels (1 to {MAX_CHANNELS})")
    if not np.isfinite(fs) or not 1.0 <= fs <= limit("rate_hz"):
        raise InputError(f"stream header: sampling rate {fs} Hz is not usable")
    return StreamHeader(float(fs), int(channels), int(sample_type))


def encode_frames(header: StreamHeader, signal: np.ndarray) -> bytes:
    """Frames for `signal` [channels, samples] in millivolts."""
    scaled = np.asarray(signal, np.float64) / MICROVOLTS[header.sample_type]
    if header.dtype.kind == "i":
        info = np.iinfo(header.dtype)
        scaled = np.clip(np.round(scaled), info.min, info.max)
    return np.ascontiguousarray(scaled.T).astype(header.dtype).tobytes()


class FrameDecoder:
    """Bytes in, samples [channels, n] in millivolts out; a partial frame waits for its remaining bytes."""

    def __init__(self, header: StreamHeader) -> None:
        self.header = header
        self._rest = b""

    def feed(self, data: bytes) -> np.ndarray:
        data = self._rest + data
        whole = len(data) // self.header.frame_bytes * self.header.frame_bytes
        self._rest = data[whole:]
        values = np.frombuffer(data[:whole], self.header.dtype).astype(np.float64)
        return values.reshape(-1, self.header.channels).T * MICROVOLTS[self.header.sample_type]

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._rest)
