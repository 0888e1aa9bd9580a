"""Where a live ECG comes from. Every source yields `Chunk`s of samples [channels, n] in millivolts, and `Fault`s
when something goes wrong (a stall, a disconnection, garbage, a partial frame, non-finite samples, a wrong rate);
a source that can resume (a socket that reconnects, a stream that starts sending again) keeps going.

- a recording (any reader: WFDB, EDF, `.npy` or CSV with a stated rate), replayed at `speed` times real time
  (0: as fast as it can be processed);
- `-`: raw frames on standard input (`framing`);
- `tcp://HOST:PORT`: raw frames from a socket, reconnecting after a disconnection;
- `lsl:NAME`: a Lab Streaming Layer outlet (the `lsl` extra, `pylsl`).

`open_source` picks one by the text of SOURCE; adding a source is one class here with a `chunks()` generator.
"""

from __future__ import annotations

import select
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.core import readers
from edgemed.core.errors import DataError, InputError
from edgemed.runtime.monitor.framing import HEADER, FrameDecoder, StreamHeader, decode_header

STALL_S = 2.0  # no sample for this long: a stall fault (repeated while it lasts)


@dataclass
class Chunk:
    samples: np.ndarray  # [channels, n], millivolts


@dataclass
class Fault:
    kind: str  # stall, disconnect, garbage, frame, nan, rate
    detail: str
    resumes: bool = True  # monitoring can go on after it (the beat stream restarts)


class ReplaySource:
    """A recording replayed chunk by chunk, paced to `speed` times real time."""

    def __init__(self, path: Path, sampling_rate_hz: float | None = None, speed: float = 1.0,
                 chunk_s: float = 0.25) -> None:
        try:
            rec = readers.read_recording(path, sampling_rate_hz)
        except DataError as exc:
            raise InputError(str(exc)) from exc
        if rec.fs is None:
            raise InputError(f"{path}: states no sampling rate; give `sampling_rate_hz`")
        self.name, self.fs, self.names = rec.name, float(rec.fs), rec.names or []
        self.signal, self.speed = rec.signal, float(speed)
        self.step = max(1, int(round(chunk_s * self.fs)))
        self.annotations = rec.annotations

    def chunks(self) -> Iterator[Chunk | Fault]:
        start = time.monotonic()
        n = self.signal.shape[1]
        for begin in range(0, n, self.step):
            if self.speed > 0:
                due = start + begin / (self.fs * self.speed)
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            piece = self.signal[:, begin : begin + self.step]
            yield _checked(piece)

    def close(self) -> None:
        pass


def _checked(samples: np.ndarray) -> Chunk | Fault:
    if not np.isfinite(samples).all():
        return Fault("nan", f"{int(np.count_nonzero(~np.isfinite(samples)))} non-finite samples")
    return Chunk(samples)


class FrameSource:
    """Raw frames (`framing`) from a readable file descriptor: standard input or a socket."""

    def __init__(self, name: str, expected_fs: float | None = None) -> None:
        self.name, self.fs, self.names, self.expected_fs = name, None, [], expected_fs
        self.annotations = None

    def _frames(self, read, wait) -> Iterator[Chunk | Fault]:
        """Header, then frames, from `read(n) -> bytes` ('' at the end) and `wait(seconds) -> ready`."""
        head = b""
        while len(head) < HEADER.size:
            if not wait(STALL_S):
                yield Fault("stall", f"no header for {STALL_S:g} s")
                continue
            data = read(HEADER.size - len(head))
            if not data:
                yield Fault("disconnect", "the source closed before its header", resumes=False)
                return
            head += data
        try:
            header = decode_header(head)
        except InputError as exc:
            yield Fault("garbage", str(exc), resumes=False)
            return
        if self.fs is not None and header.fs != self.fs:
            yield Fault("rate", f"the source now sends {header.fs:g} Hz instead of {self.fs:g} Hz", resumes=False)
            return
        self.fs, self.names = header.fs, [f"ch{k + 1}" for k in range(header.channels)]
        yield from self._body(header, read, wait)

    def _body(self, header: StreamHeader, read, wait) -> Iterator[Chunk | Fault]:
        decoder = FrameDecoder(header)
        while True:
            if not wait(STALL_S):
                yield Fault("stall", f"no samples for {STALL_S:g} s")
                continue
            data = read(65536)
            if not data:
                if decoder.pending:
                    yield Fault("frame", f"the source ended inside a frame ({decoder.pending} of "
                                         f"{header.frame_bytes} bytes)")
                yield Fault("disconnect", "the source closed")
                return
            samples = decoder.feed(data)
            if samples.shape[1]:
                yield _checked(samples)


class StdinSource(FrameSource):
    def __init__(self, expected_fs: float | None = None) -> None:
        super().__init__("stdin", expected_fs)

    def chunks(self) -> Iterator[Chunk | Fault]:
        stream = sys.stdin.buffer

        def wait(seconds: float) -> bool:
            return bool(select.select([stream], [], [], seconds)[0])

        yield from self._frames(lambda n: stream.read1(n) if hasattr(stream, "read1") else stream.read(n), wait)

    def close(self) -> None:
        pass


class TcpSource(FrameSource):
    """Connects to HOST:PORT; after a disconnection it connects again (every `retry_s`) until `reconnect` tries
    fail in a row."""

    def __init__(self, host: str, port: int, retry_s: float = 1.0, reconnect: int = 10) -> None:
        super().__init__(f"tcp://{host}:{port}")
        self.host, self.port, self.retry_s, self.reconnect = host, port, retry_s, reconnect
        self._sock: socket.socket | None = None

    def chunks(self) -> Iterator[Chunk | Fault]:
        failures = 0
        while failures <= self.reconnect:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=5)
            except OSError as exc:
                failures += 1
                yield Fault("disconnect", f"cannot connect to {self.name} ({exc.strerror or exc}); retrying")
                time.sleep(self.retry_s)
                continue
            failures = 0
            sock = self._sock

            def wait(seconds: float, sock=sock) -> bool:
                return bool(select.select([sock], [], [], seconds)[0])

            def read(n: int, sock=sock) -> bytes:
                try:
                    return sock.recv(n)
                except OSError:
                    return b""

            for item in self._frames(read, wait):
                yield item
                if isinstance(item, Fault) and not item.resumes:
                    break
            self.close()
        yield Fault("disconnect", f"{self.name}: gave up after {self.reconnect} failed reconnections",
                    resumes=False)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class LslSource:
    """A Lab Streaming Layer outlet found by name (`pip install 'edgemed[lsl]'`)."""

    def __init__(self, stream_name: str, timeout_s: float = 10.0) -> None:
        try:
            import pylsl
        except ImportError as exc:
            raise InputError("LSL sources need pylsl: pip install 'edgemed[lsl]'") from exc
        found = pylsl.resolve_byprop("name", stream_name, timeout=timeout_s)
        if not found:
            raise InputError(f"lsl:{stream_name}: no Lab Streaming Layer stream of that name found")
        self._inlet = pylsl.StreamInlet(found[0])
        info = self._inlet.info()
        self.name, self.fs = f"lsl:{stream_name}", float(info.nominal_srate())
        self.names = _lsl_labels(info)
        self.annotations = None
        if not self.fs > 0:
            raise InputError(f"{self.name}: an irregular-rate stream; the monitor needs a fixed sampling rate")

    def chunks(self) -> Iterator[Chunk | Fault]:
        quiet = time.monotonic()
        while True:
            data, _ = self._inlet.pull_chunk(timeout=0.5)
            if data:
                quiet = time.monotonic()
                yield _checked(np.asarray(data, np.float64).T)
            elif time.monotonic() - quiet > STALL_S:
                quiet = time.monotonic()
                yield Fault("stall", f"no samples for {STALL_S:g} s")

    def close(self) -> None:
        self._inlet.close_stream()


def _lsl_labels(info) -> list[str]:
    """The channel labels an outlet declares (the XDF convention: desc/channels/channel/label), else ch1, ch2..."""
    count = info.channel_count()
    labels, channel = [], info.desc().child("channels").child("channel")
    while len(labels) < count and not channel.empty():
        labels.append(channel.child_value("label"))
        channel = channel.next_sibling()
    return labels if len(labels) == count and all(labels) else [f"ch{k + 1}" for k in range(count)]


def open_source(text: str, sampling_rate_hz: float | None = None, speed: float = 1.0):
    """The source SOURCE names: `-`, `tcp://HOST:PORT`, `lsl:NAME`, or a recording path."""
    if text == "-":
        return StdinSource(sampling_rate_hz)
    if text.startswith("tcp://"):
        host, sep, port = text[len("tcp://"):].rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise InputError(f"{text}: give tcp://HOST:PORT")
        return TcpSource(host, int(port))
    if text.startswith("lsl:"):
        return LslSource(text[4:])
    return ReplaySource(Path(text), sampling_rate_hz, speed)
