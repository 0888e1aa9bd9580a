"""Streaming inference: feed samples as they arrive, get one prediction per completed chunk.

A Streamer buffers incoming samples of any length to the model's chunk size, runs the streaming model on
each full chunk, and carries the model's state (GRU hidden state, conv context) to the next. Each bed gets
its own Streamer; all of them share one EdgeModel session. One Streamer is not meant for several threads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgemed.core.errors import SpecError
from edgemed.core.examples import tensor_shape
from edgemed.runtime.model import Prediction
from edgemed.runtime.validate import all_finite, check_array, check_rate


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
        sizes = {"batch": self.batch, self.streaming.chunk_axis: 0}
        self._buffer = np.zeros(tensor_shape(self.input, sizes), np.float32)
        self.state = {t.name: np.zeros(tensor_shape(t, sizes), np.float32) for t in self.streaming.state_inputs}
        self.chunks_done = 0
        self._last_signature: tuple | None = None

    @property
    def buffered(self) -> int:
        return int(self._buffer.shape[self.axis])

    def push(self, samples: Any, sampling_rate_hz: float | None = None) -> list:
        """Append samples (any length along the chunk axis) and return a Prediction per completed chunk."""
        if sampling_rate_hz is not None:
            check_rate(self.spec, sampling_rate_hz)
        arr = self._checked(samples)
        self._buffer = arr if self.buffered == 0 else np.concatenate([self._buffer, arr], axis=self.axis)
        out = []
        feeds = {self.input.name: None, **self.state}
        while self.buffered >= self.chunk:
            feeds[self.input.name] = np.ascontiguousarray(self._buffer[self._span(0, self.chunk)])
            self._buffer = self._buffer[self._span(self.chunk, None)]
            logits, *new_state = self.model.run(feeds)
            feeds.update(zip(self.state, new_state, strict=True))
            self.chunks_done += 1
            out.append(Prediction(logits, self.spec.labels))
        self.state = {k: feeds[k] for k in self.state}
        return out

    def _checked(self, samples: Any) -> np.ndarray:
        """The checked array. Shape and dtype checks depend on those alone, so a push shaped like the last
        accepted one only has its values (NaN/Inf) checked again."""
        if (type(samples) is np.ndarray and (samples.shape, samples.dtype) == self._last_signature
                and samples.flags.c_contiguous and all_finite(samples)):
            return samples
        arr = check_array(self.input, samples, {"batch": self.batch}, stream_axis=self.streaming.chunk_axis)
        if arr is samples:
            self._last_signature = (arr.shape, arr.dtype)
        return arr

    def _span(self, start: int, stop: int | None) -> tuple[slice, ...]:
        """An index selecting start:stop along the chunk axis (a view, no copy)."""
        return (slice(None),) * self.axis + (slice(start, stop),)
