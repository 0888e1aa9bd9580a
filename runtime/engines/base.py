"""What an engine is: something that loads an edgemed ONNX file's bytes and runs it.

Every engine takes the same verified bytes (the runtime checks integrity and structure before an engine sees a
file), reports where and how it runs (`report.summary()`, `report.to_dict()`), names its outputs in the file's
order, and either returns the state outputs of a streaming model for the caller to feed back (`stateful` returns
None: onnxruntime) or keeps the state inside itself (`stateful` returns a `StatefulRun`: OpenVINO's variables).
`EdgeModel` owns one engine; the list of engines is the registry in `edgemed.runtime.engines`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    import numpy as np

    from edgemed.core.spec import ModelSpec


class EngineOptions(NamedTuple):
    """How to load: intra-op threads, the inference precision (engines that offer more than the file's own),
    onnxruntime's execution providers in order (names or (name, options) pairs; None: the engine's default),
    thread spinning, the graph optimisation level, and `strict` (a missing provider is an error, not a warning)."""

    threads: int = 1
    precision: str = "fp32"
    providers: list | None = None
    spinning: bool = False
    graph_optimization: str = "all"
    strict: bool = False


class TensorInfo(NamedTuple):
    """An input or output as the engine sees it: numpy dtype name (None when the engine's type has none here) and
    shape (ints for fixed axes, names or None for dynamic ones)."""

    name: str
    dtype: str | None
    shape: list[int | str | None]


class StatefulRun(Protocol):
    """A streaming model whose state lives inside the engine: feed the chunk alone, get the logits."""

    def reset(self) -> None: ...

    def run(self, chunk: np.ndarray) -> np.ndarray: ...


class Engine(Protocol):
    name: str
    precision: str
    output_names: list[str]
    report: Any  # .summary() -> str, .to_dict() -> dict

    def inputs(self) -> list[TensorInfo]: ...

    def outputs(self) -> list[TensorInfo]: ...

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs, in the file's order; InputError when the engine refuses the inputs."""
        ...

    def stateful(self, spec: ModelSpec, batch: int) -> StatefulRun | None: ...


class EngineEntry(NamedTuple):
    """One registered engine: how to load it, the precisions it offers, whether it is installed here, and whether
    it takes a device profile's execution providers (onnxruntime on the CPU)."""

    name: str
    description: str
    load: Callable[[bytes, EngineOptions], Engine]
    precisions: tuple[str, ...] = ("fp32",)
    available: Callable[[], bool] = lambda: True
    uses_device_providers: bool = False
    extra: str = ""  # the pip extra that installs it, for error messages
    falls_back: bool = False  # loads even where its accelerator is missing, warning (or, strict, refusing) then
    variants: Callable[[], tuple[str, ...]] = lambda: ("fp32",)  # what `edgemed tune` tries on it here
    graph_levels: tuple[str, ...] = ("all",)  # graph optimisation levels `edgemed tune` tries
