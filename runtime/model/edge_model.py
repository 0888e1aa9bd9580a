"""The bedside model: load with integrity checks on one engine, then predict batches or stream chunks."""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgemed.core.errors import InputError, LimitError, ModelLoadError, SpecError
from edgemed.core.limits import check_threads
from edgemed.core.spec import ModelSpec
from edgemed.runtime.engines import EngineOptions, engine_entry, engine_names, load_engine
from edgemed.runtime.engines.providers import DEFAULT_DEVICE, PRESETS, resolve_device
from edgemed.runtime.model.prediction import UNCERTAIN, Prediction, check_outputs
from edgemed.runtime.model.validate import assess_input, positive_int, prepare_inputs
from edgemed.runtime.onnx.file import read_model_file
from edgemed.runtime.onnx.integrity import verify_model
from edgemed.runtime.onnx.metadata import ModelMetadata

if TYPE_CHECKING:
    from edgemed.devices.profile import DeviceProfile
    from edgemed.runtime.model.stream import Streamer

DEFAULT_BATCH_SIZE = 64
BACKENDS = engine_names()
DEFAULT_BACKEND = "onnxruntime"

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "DEFAULT_BATCH_SIZE", "UNCERTAIN", "EdgeModel", "MetadataWarning",
           "Prediction", "check_outputs"]


class MetadataWarning(UserWarning):
    """The model carries no edgemed metadata: inputs are checked against the graph alone."""


class EdgeModel:
    """An ONNX classifier ready for bedside inference (numpy and onnxruntime only; other engines optional).

    `backend` names the engine (`edgemed.runtime.engines`: onnxruntime, openvino, cuda, tensorrt); `precision` is
    the inference precision where the engine offers more than the file's (OpenVINO: fp32 or bf16). `providers`
    (names or (name, options) pairs) or `device` (a preset: "cpu", "cuda", or a device profile) choose onnxruntime's
    execution providers in order; a missing provider or nodes falling back warn, or raise `ProviderError` when
    `strict`. `threads` sets intra-op threads (at most the cores present, see `edgemed.core.limits`); thread
    spinning stays off unless asked. Integrity: the `.sha256` sidecar and the in-file integrity record must match
    the bytes loaded; a missing one warns, or raises when `strict` or `require_integrity`. Loading and every run
    have deadlines (`edgemed.runtime.engines.watchdog`): past them, LimitError. One EdgeModel may be used from
    several threads at once.
    """

    def __init__(self, path: str | Path, *, providers: list | None = None, device: str = DEFAULT_DEVICE,
                 strict: bool = False, threads: int | None = None, spinning: bool = False,
                 batch_size: int = DEFAULT_BATCH_SIZE, require_integrity: bool = False,
                 backend: str = DEFAULT_BACKEND, precision: str = "fp32", graph_optimization: str = "all") -> None:
        if not isinstance(path, str | Path | os.PathLike):
            raise InputError(f"path must be a file path, got {type(path).__name__}")
        if not isinstance(device, str):
            raise InputError(f"device must be a name such as 'cpu', got {device!r}")
        self.path, self._device_name = Path(path), device
        entry = engine_entry(backend)
        self.threads, self.strict = self._threads(threads), bool(strict)
        self.batch_size = positive_int(batch_size, "batch_size")
        data, summary = read_model_file(self.path)
        self.integrity = verify_model(self.path, data, summary, strict=self.strict or require_integrity)
        self.sha256 = self.integrity.sha256
        if providers is None and entry.uses_device_providers:
            preset = PRESETS.get(device)
            providers = [(p, {}) for p in preset] if preset is not None else self.device.providers
        options = EngineOptions(self.threads, precision, providers, spinning, graph_optimization, self.strict)
        try:
            self.engine = load_engine(backend, data, options)
        except (ModelLoadError, LimitError) as exc:
            raise type(exc)(f"{self.path}: {exc}") from exc
        self.backend, self._engine_run = backend, self.engine.run
        self.metadata = ModelMetadata.from_summary(summary)
        self._check_engine_agreement()
        self.spec = self._spec()
        self._signal_name, self._name = self.spec.signal.name, self.path.name
        self._classes = len(self.spec.labels)
        self._check_classes()
        self.output_names = self.engine.output_names
        # The last input signature (shape, dtype) that passed every structural check, and the other feeds
        # (filled lengths) that went with it; see `predict`.
        self._checked: tuple[tuple, np.dtype, dict[str, np.ndarray]] | None = None

    def _threads(self, threads: int | None) -> int:
        """The intra-op threads: as given, else the device profile's (a preset, `cpu` or `cuda`, needs no profile
        file: its profile is built on first use of `device`, which keeps TOML off the cold start)."""
        if threads is None:
            threads = 1 if self._device_name in PRESETS else self.device.threads
        threads = positive_int(threads, "threads")
        check_threads(threads)
        return threads

    def _check_engine_agreement(self) -> None:
        """Refuse a quantised file on an engine its quantiser found giving other results than onnxruntime, where
        its accuracy gate was measured (`edgemed.export.quant_engines`)."""
        engines = (self.metadata.quantization or {}).get("engines")
        record = engines.get(self.engine.name) if isinstance(engines, dict) else None
        if isinstance(record, dict) and record.get("agrees") is False:
            worst = record.get("max_abs_vs_onnxruntime")
            size = f" (max abs logit difference {worst:.3g} on its validation data)" if isinstance(worst, float) else ""
            raise ModelLoadError(f"{self.path}: this quantised file gives other results on {self.engine.name} than "
                                 f"on onnxruntime, where its accuracy was checked{size}; run it with the onnxruntime "
                                 "backend")

    def _spec(self) -> ModelSpec:
        """The spec from the file's metadata, or (for ONNX files edgemed did not write) from the graph alone."""
        if self.metadata.spec_error:
            raise ModelLoadError(f"{self.path}: unreadable edgemed spec: {self.metadata.spec_error}")
        if self.metadata.spec is not None:
            return self.metadata.spec
        if not engine_entry(self.engine.name).uses_device_providers:
            raise ModelLoadError(f"{self.path}: the {self.engine.name} backend runs models exported by edgemed "
                                 "(with metadata)")
        warnings.warn(f"{self.path.name} has no edgemed metadata: checking inputs against the graph alone, "
                      "with no labels or preprocessing", MetadataWarning, stacklevel=3)
        from edgemed.runtime.model.graph_spec import spec_from_graph  # files edgemed wrote never need it

        return spec_from_graph(self.engine, self.path)

    def _check_classes(self) -> None:
        """The labels must match the class axis the spec and the graph declare (when the graph fixes it)."""
        declared = self.spec.outputs[0].shape[-1] if self.spec.outputs[0].shape else None
        outputs = self.engine.outputs()
        graph = outputs[0].shape if outputs else None
        fixed = graph[-1] if graph and isinstance(graph[-1], int) else None
        for what, size in (("its spec's first output", declared), ("its graph's first output", fixed)):
            if isinstance(size, int) and size != self._classes:
                raise ModelLoadError(f"{self.path}: the metadata names {self._classes} labels but {what} has {size} "
                                     "classes; the labels do not describe this model")

    @functools.cached_property
    def device(self) -> DeviceProfile:
        """The device profile the model was loaded for (`cpu` and `cuda` describe this machine)."""
        return resolve_device(self._device_name)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def providers(self) -> Any:
        """Where and how the engine runs the model (`summary()`, `to_dict()`)."""
        return self.engine.report

    @property
    def session(self) -> Any:
        """The onnxruntime session of an onnxruntime-family engine (None on others), for raw comparisons."""
        return getattr(self.engine, "session", None)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Raw engine run: no checks. For feeds already prepared (streaming, benchmarks). The engine's own
        refusals become InputError naming the model; a run past the `run_s` limit is stopped, LimitError."""
        try:
            return self._engine_run(feeds)
        except (InputError, LimitError) as exc:
            raise type(exc)(f"{self.path.name}: {exc}") from exc

    def predict(self, x: Any, lengths: Any = None, sampling_rate_hz: float | None = None,
                **other_inputs: Any) -> Prediction:
        """Check `x` (and `lengths` for padded sequences) against the spec and classify every sample,
        running at most `batch_size` samples per session call. Raises InputError for inputs that do not fit,
        OutputError when the model's logits are not finite."""
        name = self._signal_name
        checked = self._checked
        if (checked is not None and lengths is None and sampling_rate_hz is None and not other_inputs
                and x.__class__ is np.ndarray and x.shape == checked[0] and x.dtype == checked[1]
                and x.flags.c_contiguous):
            # The same shape and dtype as the last input that passed every check: rank, sizes and dtype are
            # functions of those alone, so only the values are checked again.
            feeds = dict(checked[2])
            feeds[name] = x
            logits = self.run(feeds)[0] if x.shape[0] <= self.batch_size else self._run_batches(feeds)
            return Prediction(check_outputs(logits, self._name, self._classes), self.labels,
                              assess_input(self.spec, name, x),
                              self.spec)
        if self.spec.streaming is not None:
            raise SpecError(f"{self.path.name} is a streaming model; use EdgeModel.stream()")
        plain = lengths is None and sampling_rate_hz is None and not other_inputs
        inputs = {name: x, **other_inputs}
        if lengths is not None:
            if self.spec.lengths is None:
                raise InputError(f"{self.path.name} takes no sequence lengths; drop `lengths`")
            inputs[self.spec.lengths.name] = lengths
        feeds, assessment = prepare_inputs(self.spec, inputs, sampling_rate_hz)
        self._remember(x, feeds, plain)
        logits = self.run(feeds)[0] if feeds[name].shape[0] <= self.batch_size else self._run_batches(feeds)
        return Prediction(check_outputs(logits, self._name, self._classes), self.labels, assessment, self.spec)

    def _run_batches(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        n = feeds[self._signal_name].shape[0]
        return np.concatenate([self.run({k: v[start : start + self.batch_size] for k, v in feeds.items()})[0]
                               for start in range(0, n, self.batch_size)])

    def _remember(self, x: Any, feeds: dict[str, np.ndarray], plain: bool) -> None:
        name = self._signal_name
        norm = self.spec.preprocessing.normalization
        if plain and type(x) is np.ndarray and feeds[name] is x and not (norm and norm.applied_in == "runtime"):
            self._checked = (x.shape, x.dtype, {k: v for k, v in feeds.items() if k != name})

    def stream(self, chunk: int | None = None, batch: int = 1) -> Streamer:
        """A new independent stream (its own buffer and state) on this model's engine."""
        from edgemed.runtime.model.stream import Streamer  # batch-only callers never load it

        return Streamer(self, chunk=chunk, batch=batch)
