"""Streaming inference: feed samples as they arrive, get one prediction per completed chunk.

A Streamer buffers incoming samples of any length to the model's chunk size, runs the streaming model on
each full chunk, and carries the model's state (GRU hidden state, conv context) to the next. Each bed gets
its own Streamer; all of them share one EdgeModel session. One Streamer is not meant for several threads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgemed.core.errors import SpecError
from edgemed.runtime.model import Prediction
from edgemed.runtime.validate import check_array, check_rate


class Streamer:
    def __init__(self, model: Any, chunk: int | None = None, batch: int = 1) -> None:
        spec = model.spec
        if spec.streaming is None:
            raise SpecError(f"{model.path.name} is not a streaming model; export it with --streaming")
        self.model, self.spec, self.streaming = model, spec, spec.streaming
        self.input = spec.inputs[0]
        self.axis = self.input.shape.index(self.streaming.chunk_axis)
        self.chunk = chunk or self.streaming.chunk_multiple
        self.streaming.check_chunk(self.chunk)
        self.batch = batch
        self.reset()

    def reset(self) -> None:
        """Forget buffered samples and return to the zero initial state."""
        sizes = {"batch": self.batch}
        shape = [self.batch if d == "batch" else (0 if d == self.streaming.chunk_axis else d) for d in self.input.shape]
        self._buffer = np.zeros(shape, np.float32)
        self.state = {
            t.name: np.zeros([sizes.get(d, d) if isinstance(d, str) else d for d in t.shape], np.float32)
            for t in self.streaming.state_inputs
        }
        self.chunks_done = 0

    @property
    def buffered(self) -> int:
        return int(self._buffer.shape[self.axis])

    def push(self, samples: Any, sampling_rate_hz: float | None = None) -> list:
        """Append samples (any length along the chunk axis) and return a Prediction per completed chunk."""
        check_rate(self.spec, sampling_rate_hz)
        arr = check_array(self.input, samples, {"batch": self.batch}, stream_axis=self.streaming.chunk_axis)
        self._buffer = arr if self.buffered == 0 else np.concatenate([self._buffer, arr], axis=self.axis)
        out = []
        while self.buffered >= self.chunk:
            piece = np.ascontiguousarray(self._buffer[self._span(0, self.chunk)])
            self._buffer = self._buffer[self._span(self.chunk, None)]
            logits, *new_state = self.model.run({self.input.name: piece, **self.state})
            self.state = dict(zip(self.state, new_state, strict=True))
            self.chunks_done += 1
            out.append(Prediction(logits, self.spec.labels))
        return out

    def _span(self, start: int, stop: int | None) -> tuple[slice, ...]:
        """An index selecting start:stop along the chunk axis (a view, no copy)."""
        return (slice(None),) * self.axis + (slice(start, stop),)
