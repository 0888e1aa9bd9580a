"""Streaming inference: feed samples as they arrive, get one prediction per completed chunk.

A Streamer buffers incoming samples of any length to the model's chunk size, runs the streaming model on
each full chunk, and carries the model's state (GRU hidden state, conv context) to the next. What it keeps
between pushes is its own copy, so a caller may reuse its buffer. Each bed gets its own Streamer; all of them
share one EdgeModel session. One Streamer is not meant for several threads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgemed.core.errors import InputError, LimitError, SpecError
from edgemed.core.examples import tensor_shape
from edgemed.runtime.model.prediction import SMALL_LOGITS, Prediction, check_outputs
from edgemed.runtime.model.validate import InputCheck, assess_input, check_array, check_rate, positive_int

_F32 = np.dtype(np.float32)


class StreamPrediction(Prediction):
    """A prediction after one chunk: `chunk_index` counts from 0; `end_sample` is the number of samples (along
    the chunk axis) consumed when it was made."""

    chunk_index: int = 0
    end_sample: int = 0


class Streamer:
    def __init__(self, model: Any, chunk: int | None = None, batch: int = 1) -> None:
        spec = model.spec
        if spec.streaming is None:
            raise SpecError(f"{model.path.name} is not a streaming model; export it with `streaming`")
        self.model, self.spec, self.streaming = model, spec, spec.streaming
        self.input = spec.signal
        self.axis = self.input.shape.index(self.streaming.chunk_axis)
        self.chunk = self.streaming.chunk_multiple if chunk is None else positive_int(chunk, "chunk", 2**24)
        self.streaming.check_chunk(self.chunk)
        self.batch = positive_int(batch, "batch", 2**16)
        self._chunk_shape = tensor_shape(self.input, {"batch": self.batch, self.streaming.chunk_axis: self.chunk})
        self._name, self._input_name, self._labels = model.path.name, self.input.name, spec.labels
        self._classes = len(spec.labels)
        self._logits_shape = (self.batch, self._classes)
        self._small_logits = self.batch * self._classes <= SMALL_LOGITS
        self._check = InputCheck(spec, self._input_name, self._chunk_shape, _F32)
        self._state_names = [t.name for t in self.streaming.state_inputs]
        # OpenVINO keeps the state inside its request (a stateful model); onnxruntime's is fed back from here.
        self._stateful = model.engine.stateful(spec, self.batch)
        self._engine_run = model.engine.run
        self.reset()

    def reset(self) -> None:
        """Forget buffered samples and return to the zero initial state."""
        sizes = {"batch": self.batch, self.streaming.chunk_axis: 0}
        self._buffer = np.zeros(tensor_shape(self.input, sizes), np.float32)
        self._buffered = 0
        # The feeds of the next step: the chunk (filled in by each step) and the state the last step returned.
        self._feeds: dict[str, np.ndarray | None] = {self._input_name: None}
        if self._stateful is not None:
            self._stateful.reset()
        else:
            self._feeds.update({t.name: np.zeros(tensor_shape(t, sizes), np.float32)
                                for t in self.streaming.state_inputs})
        self.chunks_done = 0

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The state the next chunk starts from (empty on OpenVINO, which keeps it inside its request)."""
        return {k: self._feeds[k] for k in self._state_names if k in self._feeds}

    @property
    def buffered(self) -> int:
        return self._buffered

    def push(self, samples: Any, sampling_rate_hz: float | None = None) -> list[StreamPrediction]:
        """Append samples (any length along the chunk axis) and return a prediction per completed chunk.
        A refused push (InputError, OutputError) changes nothing."""
        if sampling_rate_hz is not None:
            check_rate(self.spec, sampling_rate_hz)
        if (samples.__class__ is np.ndarray and samples.shape == self._chunk_shape and samples.dtype == _F32
                and not self._buffered and self._stateful is None):
            # The common case, one whole chunk and nothing buffered, on onnxruntime: its shape and dtype are already
            # right, so only its values are checked (one reduction where the spec has no training range), and it
            # is fed as it is (no copy is kept: nothing is buffered). Outputs: the logits' shape, then finite.
            check = self._check
            if check.screen_only and math.isfinite(np.vdot(samples, samples)):
                assessment = check.empty
            else:
                assessment = check(samples)
            feeds = self._feeds
            feeds[self._input_name] = samples
            try:
                logits, *state = self._engine_run(feeds)
            except (InputError, LimitError) as exc:
                raise type(exc)(f"{self._name}: {exc}") from exc
            if logits.shape != self._logits_shape or not math.isfinite(
                    sum(logits.ravel().tolist()) if self._small_logits else logits.sum()):
                check_outputs(logits, self._name, self._classes)
            feeds.update(zip(self._state_names, state, strict=True))
            return [self._prediction(logits, assessment)]
        arr = check_array(self.input, samples, {"batch": self.batch}, stream_axis=self.streaming.chunk_axis)
        joined = arr if self.buffered == 0 else np.concatenate([self._buffer, arr], axis=self.axis)
        complete = joined.shape[self.axis] // self.chunk
        pieces = [np.ascontiguousarray(joined[self._span(k * self.chunk, (k + 1) * self.chunk)])
                  for k in range(complete)]
        rest = joined[self._span(complete * self.chunk, None)]
        # Every value is checked (NaN/Inf, absurd magnitudes) before any state changes.
        assessments = [assess_input(self.spec, self._input_name, piece) for piece in pieces]
        if rest.shape[self.axis]:
            assess_input(self.spec, self._input_name, rest)
        saved = dict(self._feeds)
        results = []
        try:
            for piece in pieces:
                logits, state = self._run(piece)
                self._commit(state)
                results.append(logits)
        except Exception:
            self._feeds = saved  # nothing of a refused push stays (OpenVINO's request state excepted)
            raise
        # Keep our own copy: `joined` may be (a view of) the caller's array, which they are free to reuse.
        self._buffer = rest.copy()
        self._buffered = int(rest.shape[self.axis])
        return [self._prediction(logits, a) for logits, a in zip(results, assessments, strict=True)]

    def _run(self, piece: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits (checked finite) and next state for one chunk; nothing is committed here."""
        if self._stateful is not None:
            return check_outputs(self._stateful.run(piece), self._name, self._classes), []
        feeds = self._feeds
        feeds[self._input_name] = piece
        logits, *state = self.model.run(feeds)
        return check_outputs(logits, self._name, self._classes), state

    def _commit(self, state: list[np.ndarray]) -> None:
        if state:  # OpenVINO's stateful request returns none: it keeps its own
            feeds = self._feeds
            for name, value in zip(self._state_names, state, strict=True):
                feeds[name] = value

    def _prediction(self, logits: np.ndarray, assessment: Any) -> StreamPrediction:
        pred = StreamPrediction(logits, self._labels, assessment, self.spec)
        pred.chunk_index = self.chunks_done
        self.chunks_done += 1
        pred.end_sample = self.chunks_done * self.chunk
        return pred

    def _span(self, start: int, stop: int | None) -> tuple[slice, ...]:
        """An index selecting start:stop along the chunk axis (a view, no copy)."""
        return (slice(None),) * self.axis + (slice(start, stop),)
