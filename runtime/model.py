"""The bedside model: load with integrity and provider checks, then predict batches or stream chunks."""

from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgemed.core.errors import InputError, ModelLoadError, SpecError
from edgemed.core.spec import ModelSpec, TensorSpec
from edgemed.runtime.model_info import read_sidecar
from edgemed.runtime.providers import create_session, resolve_device, session_options
from edgemed.runtime.validate import all_finite, prepare_inputs

ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32"}


class MetadataWarning(UserWarning):
    """The model carries no edgemed metadata: inputs are checked against the graph alone."""


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable (max subtracted first) in the logits' own float32."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Prediction:
    """Per-sample logits [n, classes] and class names; probabilities are the softmax of the logits,
    computed on first access (a caller that needs only the top class does not pay for them)."""

    logits: np.ndarray
    labels: tuple[str, ...]

    @functools.cached_property
    def probabilities(self) -> np.ndarray:
        return softmax(self.logits)

    @property
    def predicted(self) -> list[str]:
        return [self.labels[i] for i in self.logits.argmax(axis=1)]

    def records(self) -> list[dict[str, Any]]:
        return [{"label": self.labels[int(p.argmax())], "probabilities": dict(zip(self.labels, map(float, p),
                                                                                   strict=True))}
                for p in self.probabilities]


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
    return ModelSpec(architecture="unknown (graph only)",
                     inputs=tuple(tensor(i, n) for n, i in enumerate(session.get_inputs())),
                     outputs=(TensorSpec(outputs[0].name, tuple(outputs[0].shape[:-1]) + (classes,)),),
                     labels=tuple(f"class_{k}" for k in range(classes)))


class EdgeModel:
    """An ONNX classifier ready for bedside inference (numpy and onnxruntime only).

    `providers` (names or (name, options) pairs) or `device` (a preset: "cpu", "cuda") choose execution
    providers in order; a missing provider or nodes falling back warn, or raise `ProviderError` when
    `strict`. `threads` sets intra-op threads; thread spinning stays off unless asked. A `.sha256`
    sidecar next to the file is verified; a mismatch refuses the model. One EdgeModel may be used from
    several threads at once.
    """

    def __init__(self, path: str | Path, *, providers: list | None = None, device: str = "cpu", strict: bool = False,
                 threads: int | None = None, spinning: bool = False, batch_size: int = 64) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"{self.path}: no such model file")
        self.device = resolve_device(device)
        threads = threads or self.device.threads
        if batch_size < 1 or threads < 1:
            raise InputError("batch_size and threads must be >= 1")
        self.threads = threads
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        expected = read_sidecar(self.path)
        if expected is not None and expected != self.sha256:
            raise ModelLoadError(f"{self.path}: sha256 {self.sha256[:16]}... does not match its sidecar "
                                 f"({expected[:16]}...); the file changed after export. Refusing to load it")
        if providers is None:
            providers = self.device.providers
        try:
            self.session, self.providers = create_session(data, providers, session_options(threads, spinning), strict)
        except (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidProtobuf,
                ort.capi.onnxruntime_pybind11_state.InvalidGraph, RuntimeError) as exc:
            first = (str(exc).splitlines() or [""])[0]
            raise ModelLoadError(f"{self.path}: not a loadable ONNX model (corrupt or truncated?): {first}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {k.removeprefix("edgemed."): v for k, v in meta.items() if k.startswith("edgemed.")}
        if "spec" in self.metadata:
            self.spec = ModelSpec.from_json(self.metadata["spec"])
        else:
            warnings.warn(f"{self.path.name} has no edgemed metadata: checking inputs against the graph alone, "
                          "with no labels or preprocessing", MetadataWarning, stacklevel=2)
            self.spec = _spec_from_graph(self.session, self.path)
        self.batch_size = batch_size
        self.output_names = [o.name for o in self.session.get_outputs()]
        # The last input signature (shape, dtype) that passed every structural check, and the other feeds
        # (filled lengths) that went with it; see `predict`.
        self._checked: tuple[tuple, np.dtype, dict[str, np.ndarray]] | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Raw session run: no checks. For feeds already prepared (streaming, benchmarks)."""
        return self.session.run(self.output_names, feeds)

    def predict(self, x: Any, lengths: Any = None, sampling_rate_hz: float | None = None,
                **other_inputs: Any) -> Prediction:
        """Check `x` (and `lengths` for padded sequences) against the spec and classify every sample,
        running at most `batch_size` samples per session call."""
        if self.spec.streaming is not None:
            raise SpecError(f"{self.path.name} is a streaming model; use EdgeModel.stream()")
        name = self.spec.inputs[0].name
        feeds = self._repeat_feeds(x) if lengths is None and sampling_rate_hz is None and not other_inputs else None
        if feeds is None:
            inputs = {name: x, **other_inputs}
            if lengths is not None:
                inputs["lengths"] = lengths
            feeds = prepare_inputs(self.spec, inputs, sampling_rate_hz)
            self._remember(x, feeds, plain=lengths is None and sampling_rate_hz is None and not other_inputs)
        n = next(iter(feeds.values())).shape[0]
        if n <= self.batch_size:
            logits = self.run(feeds)[0]
        else:
            logits = np.concatenate([
                self.run({k: v[start : start + self.batch_size] for k, v in feeds.items()})[0]
                for start in range(0, n, self.batch_size)
            ])
        return Prediction(logits, self.labels)

    def _repeat_feeds(self, x: Any) -> dict[str, np.ndarray] | None:
        """Feeds for an array with the same shape and dtype as the last one that passed every check: rank,
        sizes and dtype are functions of those alone, so only the values (NaN/Inf) are checked again.
        None when the fast path does not apply; the caller then runs the full checks."""
        checked = self._checked
        if checked is None or type(x) is not np.ndarray or x.shape != checked[0] or x.dtype != checked[1]:
            return None
        if not x.flags.c_contiguous or (x.dtype.kind == "f" and not all_finite(x)):
            return None  # the full path copies, or raises InputError naming the NaN/Inf
        return {self.spec.inputs[0].name: x, **checked[2]}

    def _remember(self, x: Any, feeds: dict[str, np.ndarray], plain: bool) -> None:
        name = self.spec.inputs[0].name
        norm = self.spec.preprocessing.normalization
        if plain and type(x) is np.ndarray and feeds[name] is x and not (norm and norm.applied_in == "runtime"):
            self._checked = (x.shape, x.dtype, {k: v for k, v in feeds.items() if k != name})

    def stream(self, chunk: int | None = None, batch: int = 1):
        """A new independent stream (its own buffer and state) on this model's session."""
        from edgemed.runtime.stream import Streamer  # stream imports this module

        return Streamer(self, chunk=chunk, batch=batch)
