"""Quantising streaming exports: their inputs are one chunk plus the carried state, so calibration and the gate
run whole signals chunk by chunk. Calibration feeds are the fp32 model's own steps (its chunks with the states it
carried), so the activation ranges include the state inputs as they occur in use; the gate compares the logits
after the last chunk of each validation sample, fp32 against quantised, fed the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgemed.core.errors import QuantizationError
from edgemed.core.examples import tensor_shape
from edgemed.core.spec import ModelSpec
from edgemed.export.quant_data import Labelled
from edgemed.runtime.engines.onnxruntime import TimedSession
from edgemed.runtime.engines.providers import session_options

CALIBRATION_STEPS = 256  # step feeds (each a batch of samples) collected at most


class StreamingData:
    """Labelled whole windows fed to a streaming model in chunks of `chunk` along its chunk axis."""

    def __init__(self, data: Labelled, spec: ModelSpec) -> None:
        s = spec.streaming
        if s is None:
            raise QuantizationError("not a streaming model")
        self.data, self.spec = data, spec
        self.chunk = s.chunk_multiple * (4 if s.chunk_multiple > 1 else 10)
        self.axis = spec.signal.shape.index(s.chunk_axis)
        self.steps = data.x.shape[self.axis] // self.chunk
        if self.steps < 1:
            raise QuantizationError(f"{data.source}: samples of {data.x.shape[self.axis]} steps are shorter than one "
                                    f"streaming chunk ({self.chunk})")

    def _zero_state(self, batch: int) -> dict[str, np.ndarray]:
        sizes = {"batch": batch}
        return {t.name: np.zeros(tensor_shape(t, sizes), np.float32) for t in self.spec.streaming.state_inputs}

    def _chunk(self, x: np.ndarray, k: int) -> np.ndarray:
        index = [slice(None)] * x.ndim
        index[self.axis] = slice(k * self.chunk, (k + 1) * self.chunk)
        return np.ascontiguousarray(x[tuple(index)], dtype=np.float32)

    def run(self, sess: TimedSession, start: int, stop: int, collect: list | None = None) -> np.ndarray:
        """Logits after the last chunk for samples start:stop; every step's feeds appended to `collect`."""
        x = self.data.x[start:stop]
        state = self._zero_state(len(x))
        names = list(state)
        logits = None
        for k in range(self.steps):
            feeds = {self.spec.signal.name: self._chunk(x, k), **state}
            logits, *new_state = sess.run(None, feeds)
            if collect is not None:
                collect.append(feeds)
            state = dict(zip(names, new_state, strict=True))
        return logits

    def logits(self, sess: TimedSession, batch: int = 64) -> np.ndarray:
        return np.concatenate([self.run(sess, s, s + batch) for s in range(0, len(self.data.y), batch)]
                              ).astype(np.float64)

    def calibration_feeds(self, fp32: Path, batch: int = 8) -> list[dict[str, np.ndarray]]:
        sess = TimedSession(ort.InferenceSession(str(fp32), session_options(2, spinning=False),
                                                 providers=["CPUExecutionProvider"]))
        feeds: list[dict[str, np.ndarray]] = []
        for s in range(0, len(self.data.y), batch):
            self.run(sess, s, s + batch, feeds)
            if len(feeds) >= CALIBRATION_STEPS:
                break
        return feeds[:CALIBRATION_STEPS]

    def one_step(self) -> dict[str, np.ndarray]:
        """Batch 1, first chunk, zero state: what the latency comparison times."""
        return {self.spec.signal.name: self._chunk(self.data.x[:1], 0), **self._zero_state(1)}
