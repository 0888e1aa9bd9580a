"""The engines that run edgemed models, registered once: `onnxruntime` (the base runtime, on the CPU or a device
profile's providers), `cuda` and `tensorrt` (onnxruntime's GPU execution providers, from `onnxruntime-gpu`) and
`openvino` (the `openvino` extra). `engine_names()` is the one list of choices; `load_engine` loads one.

Adding an engine: a module with a class that satisfies `base.Engine`, and one `register(EngineEntry(...))` below.
"""

from __future__ import annotations

from collections.abc import Callable

from edgemed.core.errors import InputError, ProviderError
from edgemed.runtime.engines.base import Engine, EngineEntry, EngineOptions, StatefulRun, TensorInfo
from edgemed.runtime.engines.providers import CPU, CUDA, TENSORRT

_ENGINES: dict[str, EngineEntry] = {}


def register(entry: EngineEntry) -> EngineEntry:
    _ENGINES[entry.name] = entry
    return entry


def engine_names() -> tuple[str, ...]:
    return tuple(_ENGINES)


def engine_precisions() -> tuple[str, ...]:
    """Every inference precision some engine offers."""
    return tuple(dict.fromkeys(p for e in _ENGINES.values() for p in e.precisions))


def engine_entry(name: str) -> EngineEntry:
    if name not in _ENGINES:
        raise InputError(f"backend must be one of {', '.join(_ENGINES)}, not {name!r}")
    return _ENGINES[name]


def load_engine(name: str, data: bytes, options: EngineOptions) -> Engine:
    """Load `data` (verified ONNX bytes) on engine `name`."""
    entry = engine_entry(name)
    if options.precision not in entry.precisions:
        raise InputError(f"the {name} backend offers precision {', '.join(entry.precisions)}, not "
                         f"{options.precision!r}")
    if not entry.available() and not entry.falls_back:
        raise ProviderError(f"the {name} backend is not installed here: pip install 'edgemed[{entry.extra}]'")
    from edgemed.runtime.engines.watchdog import within_load_deadline  # threading: with the first load

    return within_load_deadline(lambda: entry.load(data, options), f"the {name} backend")


def _onnxruntime(providers: list[str], name: str) -> Callable[[bytes, EngineOptions], Engine]:
    """onnxruntime with these execution providers unless the options name others, imported on first load: the CLI
    reads this registry for its options, and listing engines should not load onnxruntime."""

    def load(data: bytes, options: EngineOptions) -> Engine:
        from edgemed.runtime.engines.onnxruntime import OrtEngine

        return OrtEngine(data, options, providers, name)

    return load


def _has_provider(provider: str) -> Callable[[], bool]:
    def available() -> bool:
        from edgemed.runtime.engines.onnxruntime import has_provider

        return has_provider(provider)

    return available


def _openvino(data: bytes, options: EngineOptions) -> Engine:
    from edgemed.runtime.engines.openvino import OpenVINOEngine

    return OpenVINOEngine(data, options.threads, options.precision)


def _openvino_available() -> bool:
    from edgemed.runtime.engines.openvino import available

    return available()


def _openvino_variants() -> tuple[str, ...]:
    from edgemed.runtime.engines.openvino import supports_bf16

    bf16 = supports_bf16()
    return ("fp32", *(["bf16"] if bf16 else []), "int8-nncf", "int8-static", *(["int8-static-bf16"] if bf16 else []))


register(EngineEntry("onnxruntime", "onnxruntime on the device profile's execution providers (CPU by default)",
                     _onnxruntime(CPU, "onnxruntime"), uses_device_providers=True,
                     variants=lambda: ("fp32", "fp16", "int8-static", "int8-dynamic"), graph_levels=("all", "basic")))
register(EngineEntry("openvino", "OpenVINO on the CPU, fp32 or bf16", _openvino, ("fp32", "bf16"),
                     _openvino_available, extra="openvino", variants=_openvino_variants))
register(EngineEntry("cuda", "onnxruntime's CUDA execution provider, falling back to the CPU",
                     _onnxruntime(CUDA, "cuda"), available=_has_provider(CUDA[0]), extra="gpu",
                     falls_back=True, variants=lambda: ("fp32", "fp16")))
register(EngineEntry("tensorrt", "onnxruntime's TensorRT execution provider, then CUDA, then the CPU",
                     _onnxruntime(TENSORRT, "tensorrt"), available=_has_provider(TENSORRT[0]),
                     extra="gpu", falls_back=True, variants=lambda: ("fp32", "fp16")))

__all__ = ["Engine", "EngineEntry", "EngineOptions", "StatefulRun", "TensorInfo", "engine_entry", "engine_names",
           "engine_precisions", "load_engine", "register"]
