"""The bedside model: load with integrity and provider checks, then predict batches or stream chunks."""

from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from edgemed.core.calibration import softmax
from edgemed.core.errors import InputError, ModelLoadError, OutputError, SpecError
from edgemed.core.limits import check_threads
from edgemed.core.spec import ModelSpec, TensorSpec
from edgemed.runtime.engines.providers import DEFAULT_DEVICE, PRESETS, create_session, resolve_device, session_options
from edgemed.runtime.model.validate import Assessment, assess_input, positive_int, prepare_inputs
from edgemed.runtime.onnx.info import read_model_file
from edgemed.runtime.onnx.integrity import verify_model
from edgemed.runtime.onnx.metadata import ModelMetadata

if TYPE_CHECKING:
    from edgemed.devices.profile import DeviceProfile

DEFAULT_BATCH_SIZE = 64
BACKENDS = ("onnxruntime", "openvino")
DEFAULT_BACKEND = "onnxruntime"
UNCERTAIN = "uncertain"  # the label of a prediction below the model's abstention threshold
ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32"}


_SMALL = 256  # at most this many logits are checked in Python floats


class MetadataWarning(UserWarning):
    """The model carries no edgemed metadata: inputs are checked against the graph alone."""


def check_outputs(logits: np.ndarray, where: str, classes: int | None = None) -> np.ndarray:
    """Logits must be [samples, classes] (one per label) and finite: a NaN would otherwise be reported as the
    first label."""
    if classes is not None and (logits.ndim != 2 or logits.shape[1] != classes):
        raise OutputError(f"{where} produced logits of shape {list(logits.shape)}, but its metadata names {classes} "
                          "labels; the labels do not describe this graph's outputs")
    # The sum is finite exactly when every logit is. A few logits are summed as Python floats (doubles: no
    # overflow, and cheaper than a numpy reduction at this size); more in float32, where logits near 1e38 would
    # overflow the sum and are refused as well (no label means anything there).
    total = sum(logits.ravel().tolist()) if logits.size <= _SMALL else logits.sum()
    if not math.isfinite(total):
        bad = int(np.size(logits) - np.count_nonzero(np.isfinite(logits)))
        raise OutputError(f"{where} produced {bad} NaN/Inf logit(s); the input drives the model outside its "
                          "numeric range, so no label is given. Check the input's units and scaling")
    return logits


@dataclass
class Prediction:
    """Per-sample logits [n, classes] and class names. Probabilities (the softmax of the logits) and the quality
    marks are computed on first access, so a caller that needs only the top class does not pay for them."""

    logits: np.ndarray
    labels: tuple[str, ...]
    assessment: Assessment | None = field(default=None, repr=False)
    spec: ModelSpec | None = field(default=None, repr=False)

    @functools.cached_property
    def probabilities(self) -> np.ndarray:
        return softmax(self.logits, dtype=None)

    @property
    def predicted(self) -> list[str]:
        """The top class of each sample, or UNCERTAIN where the model's calibration sets an abstention threshold
        and the top probability is below it."""
        top = [self.labels[i] for i in self.logits.argmax(axis=1)]
        threshold = self.spec.calibration.abstain_below if self.spec is not None else None
        if threshold is None:
            return top
        confident = self.probabilities.max(axis=1) >= threshold
        return [t if ok else UNCERTAIN for t, ok in zip(top, confident, strict=True)]

    @functools.cached_property
    def quality(self) -> list[tuple[str, ...]]:
        """Per sample: () when the input looked like the training data, else marks such as ("flat_line",)."""
        if self.assessment is None or self.spec is None:
            return [()] * len(self.logits)
        return self.assessment.quality(self.spec)

    def records(self) -> list[dict[str, Any]]:
        return [{"label": label, "probabilities": dict(zip(self.labels, map(float, p), strict=True)),
                 "quality": list(q)}
                for label, p, q in zip(self.predicted, self.probabilities, self.quality, strict=True)]


def _spec_from_graph(session: ort.InferenceSession, path: Path) -> ModelSpec:
    """A spec from the graph's own input and output info, for ONNX files edgemed did not write."""

    def tensor(info, i: int) -> TensorSpec:
        if info.type not in ORT_DTYPES:
            raise ModelLoadError(f"{path}: input {info.name!r} has unsupported type {info.type}")
        shape = tuple(d if isinstance(d, int) and d > 0 else (d if isinstance(d, str) and d else f"dim{i}_{k}")
                      for k, d in enumerate(info.shape))
        return TensorSpec(info.name, shape, ORT_DTYPES[info.type])

    outputs = session.get_outputs()
    classes = outputs[0].shape[-1] if outputs[0].shape else None
    if not isinstance(classes, int) or classes < 2:
        raise ModelLoadError(f"{path}: no edgemed metadata and the first output's class axis is not fixed "
                             f"({outputs[0].shape}); cannot tell the classes")
    try:
        return ModelSpec(architecture="unknown (graph only)",
                         inputs=tuple(tensor(i, n) for n, i in enumerate(session.get_inputs())),
                         outputs=(TensorSpec(outputs[0].name, tuple(outputs[0].shape[:-1]) + (classes,)),),
                         labels=tuple(f"class_{k}" for k in range(classes)))
    except SpecError as exc:
        raise ModelLoadError(f"{path}: the graph's inputs cannot be described: {exc}") from exc


_ORT = ort.capi.onnxruntime_pybind11_state
_ORT_ERRORS = (*(e for e in vars(_ORT).values() if isinstance(e, type) and issubclass(e, Exception)), RuntimeError)


class EdgeModel:
    """An ONNX classifier ready for bedside inference (numpy and onnxruntime only).

    `providers` (names or (name, options) pairs) or `device` (a preset: "cpu", "cuda", or a device profile)
    choose execution providers in order; a missing provider or nodes falling back warn, or raise
    `ProviderError` when `strict`. `threads` sets intra-op threads (at most the cores present, see
    `edgemed.core.limits`); thread spinning stays off unless asked. Integrity: the `.sha256` sidecar and the
    in-file integrity record must match the bytes loaded; a missing one warns, or raises when `strict` or
    `require_integrity`. One EdgeModel may be used from several threads at once.

    `backend`: `onnxruntime` (the base runtime) or `openvino` (the `openvino` extra; `precision` fp32 or bf16, see
    `edgemed.runtime.engines.openvino`). Both take the same file, checks, outputs and metadata.
    """

    def __init__(self, path: str | Path, *, providers: list | None = None, device: str = DEFAULT_DEVICE,
                 strict: bool = False,
                 threads: int | None = None, spinning: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
                 require_integrity: bool = False, backend: str = DEFAULT_BACKEND, precision: str = "fp32",
                 graph_optimization: str = "all") -> None:
        if not isinstance(path, str | Path | os.PathLike):
            raise InputError(f"path must be a file path, got {type(path).__name__}")
        if not isinstance(device, str):
            raise InputError(f"device must be a name such as 'cpu', got {device!r}")
        self.path = Path(path)
        self._device_name = device
        # A preset (`cpu`, `cuda`) needs no profile file to load a model: its profile, read from TOML, is built on
        # first use of `device` (profiling and tuning read its budgets), which keeps TOML off the cold start.
        preset = PRESETS.get(device)
        if preset is None:
            threads = self.device.threads if threads is None else positive_int(threads, "threads")
        else:
            threads = 1 if threads is None else positive_int(threads, "threads")
        check_threads(threads)
        self.batch_size = positive_int(batch_size, "batch_size")
        self.threads, self.strict = threads, bool(strict)
        data, summary = read_model_file(self.path)
        self.integrity = verify_model(self.path, data, summary, strict=self.strict or require_integrity)
        self.sha256 = self.integrity.sha256
        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.backend, self.engine = backend, None
        if backend == "openvino":
            from edgemed.runtime.engines.openvino import OpenVINOEngine

            self.session = None
            try:
                self.engine = OpenVINOEngine(data, threads, precision)
            except ModelLoadError as exc:
                raise ModelLoadError(f"{self.path}: {exc}") from exc
            self.providers = self.engine.report
        else:
            if precision != "fp32":
                raise InputError("onnxruntime runs the file's own precision; quantise it (edgemed quantize) instead "
                                 f"of asking for {precision}")
            if providers is None:
                providers = [(p, {}) for p in preset] if preset is not None else self.device.providers
            try:
                opts = session_options(threads, spinning, graph=graph_optimization)
                self.session, self.providers = create_session(data, providers, opts, self.strict)
            except _ORT_ERRORS as exc:
                first = (str(exc).splitlines() or [""])[0]
                raise ModelLoadError(f"{self.path}: not a loadable ONNX model (corrupt or truncated?): "
                                     f"{first}") from exc
        self.metadata = ModelMetadata.from_summary(summary)
        if self.metadata.spec_error:
            raise ModelLoadError(f"{self.path}: unreadable edgemed spec: {self.metadata.spec_error}")
        if self.metadata.spec is not None:
            self.spec = self.metadata.spec
        elif self.engine is not None:
            raise ModelLoadError(f"{self.path}: the openvino backend runs models exported by edgemed (with metadata)")
        else:
            warnings.warn(f"{self.path.name} has no edgemed metadata: checking inputs against the graph alone, "
                          "with no labels or preprocessing", MetadataWarning, stacklevel=2)
            self.spec = _spec_from_graph(self.session, self.path)
        self._signal_name, self._name = self.spec.signal.name, self.path.name
        self._classes = len(self.spec.labels)
        self._check_classes()
        self.output_names = (self.engine.output_names if self.engine is not None
                             else [o.name for o in self.session.get_outputs()])
        # The last input signature (shape, dtype) that passed every structural check, and the other feeds
        # (filled lengths) that went with it; see `predict`.
        self._checked: tuple[tuple, np.dtype, dict[str, np.ndarray]] | None = None

    def _check_classes(self) -> None:
        """The labels must match the class axis the spec and the graph declare (when the graph fixes it)."""
        declared = self.spec.outputs[0].shape[-1] if self.spec.outputs[0].shape else None
        graph = self.session.get_outputs()[0].shape if self.session is not None else None
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

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Raw session run: no checks. For feeds already prepared (streaming, benchmarks). onnxruntime's own
        refusals become InputError naming the model."""
        if self.engine is not None:
            try:
                return self.engine.run(feeds)
            except InputError as exc:
                raise InputError(f"{self.path.name}: {exc}") from exc
        try:
            return self.session.run(self.output_names, feeds)
        except _ORT_ERRORS as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise InputError(f"{self.path.name}: onnxruntime could not run these inputs: {first}") from exc

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

    def stream(self, chunk: int | None = None, batch: int = 1):
        """A new independent stream (its own buffer and state) on this model's session."""
        from edgemed.runtime.model.stream import Streamer  # stream imports this module

        return Streamer(self, chunk=chunk, batch=batch)
