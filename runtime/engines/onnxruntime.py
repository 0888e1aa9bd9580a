"""onnxruntime as an engine: one session per model, execution providers in order with visible fallback (see
`providers`), explicit threading, and onnxruntime's own refusals turned into InputError. The CPU build is the
base runtime; the CUDA and TensorRT execution providers come with `onnxruntime-gpu` (the `gpu` extra)."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnxruntime as ort

from edgemed.core.errors import InputError, ModelLoadError, first_line
from edgemed.core.limits import limit
from edgemed.core.spec import ModelSpec
from edgemed.runtime.engines.base import EngineOptions, StatefulRun, TensorInfo
from edgemed.runtime.engines.memory import memory_error, out_of_memory
from edgemed.runtime.engines.providers import create_session, session_options
from edgemed.runtime.engines.watchdog import Slot, watch

ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32"}
_PYBIND = ort.capi.onnxruntime_pybind11_state
ORT_ERRORS = (*(e for e in vars(_PYBIND).values() if isinstance(e, type) and issubclass(e, Exception)), RuntimeError)


class TimedRuns:
    """The runs of one onnxruntime session under the run deadline (`watchdog`), one watched slot per calling thread,
    with onnxruntime's refusals turned into InputError and a refused allocation into the memory cap's LimitError.
    The engine's runs and the build side's (export's parity, quantize's checks) go through it alike."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        # The session's C++ run, called directly: InferenceSession.run only re-checks the feed names in Python
        # (edgemed has checked every input; onnxruntime still refuses a missing one) and may switch providers
        # silently on an execution-provider failure, which edgemed reports instead. About 4 us a call: 8 % of a
        # 50 us streaming step.
        self._call = getattr(getattr(session, "_sess", None), "run", None) or session.run
        self.output_names = [o.name for o in session.get_outputs()]
        self._limit_s = limit("run_s")
        self._local = threading.local()

    def _slot(self) -> Slot:
        """This thread's run options, watched. onnxruntime's own error log is off for these runs: its refusals
        reach the caller as InputError."""
        options = ort.RunOptions()
        options.log_severity_level = 4
        slot = watch(Slot(options, lambda: setattr(options, "terminate", True), self._limit_s))
        self._local.slot = slot
        return slot

    def run(self, feeds: dict[str, np.ndarray], names: list[str] | None = None) -> list[np.ndarray]:
        """The outputs `names` (all, in the file's order, by default)."""
        slot = getattr(self._local, "slot", None) or self._slot()
        options = slot.handle
        for attempt in (1, 2):  # a second try only after a cancel that raced the end of the run before
            slot.started = time.monotonic()
            try:
                return self._call(names or self.output_names, feeds, options)
            except ORT_ERRORS as exc:
                if out_of_memory(exc):
                    raise memory_error("this run") from exc
                if not options.terminate:
                    raise InputError(f"onnxruntime could not run these inputs: {first_line(exc)}") from exc
                options.terminate = False
                if slot.overdue() or attempt == 2:
                    raise slot.timeout("onnxruntime") from exc
            finally:
                slot.started = None
        return []  # not reached: the second try returns or raises


class TimedSession:
    """onnxruntime's session interface (`run(names, feeds)`, inputs, outputs) with timed runs, for code written
    against onnxruntime's API: export's parity check, quantize's calibration and accuracy gate."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session, self._timed = session, TimedRuns(session)

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._timed.run(feeds, names)

    def get_inputs(self) -> list:
        return self._session.get_inputs()

    def get_outputs(self) -> list:
        return self._session.get_outputs()


class OrtEngine:
    """An onnxruntime session over the model's bytes, with `default_providers` unless the options name some."""

    precision = "fp32"  # onnxruntime runs the file's own precision: quantise the file for int8 or fp16

    def __init__(self, data: bytes, options: EngineOptions, default_providers: list[str], name: str) -> None:
        if options.precision != "fp32":
            raise InputError(f"{name} runs the file's own precision; quantise it (edgemed quantize) instead of "
                             f"asking for {options.precision}")
        self.name = name
        providers = options.providers if options.providers is not None else [(p, {}) for p in default_providers]
        opts = session_options(options.threads, options.spinning, graph=options.graph_optimization)
        try:
            self.session, self.report = create_session(data, providers, opts, options.strict)
        except ORT_ERRORS as exc:
            if out_of_memory(exc):
                raise memory_error("loading the model") from exc
            raise ModelLoadError(f"not a loadable ONNX model (corrupt or truncated?): {first_line(exc)}") from exc
        self.timed = TimedRuns(self.session)
        self.run, self.output_names = self.timed.run, self.timed.output_names

    def inputs(self) -> list[TensorInfo]:
        return [TensorInfo(i.name, ORT_DTYPES.get(i.type), list(i.shape)) for i in self.session.get_inputs()]

    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo(o.name, ORT_DTYPES.get(o.type), list(o.shape)) for o in self.session.get_outputs()]

    def stateful(self, spec: ModelSpec, batch: int) -> StatefulRun | None:
        return None  # the caller feeds the state outputs back as inputs


def has_provider(provider: str) -> bool:
    return provider in ort.get_available_providers()
