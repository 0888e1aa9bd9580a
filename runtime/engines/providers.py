"""Execution providers: which to ask for, what onnxruntime actually used, and saying so when they differ."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgemed.core.errors import InputError, ProviderError
from edgemed.core.record import Record

if TYPE_CHECKING:
    import onnxruntime as ort

# onnxruntime's execution providers in order: each onnxruntime engine's default (`edgemed.runtime.engines`)
CPU = ["CPUExecutionProvider"]
CUDA = ["CUDAExecutionProvider", *CPU]
TENSORRT = ["TensorrtExecutionProvider", *CUDA]
# Plain provider choices for `--device`, besides the device profiles of edgemed.devices.
DEFAULT_DEVICE = "cpu"
PRESETS: dict[str, list[str]] = {"cpu": CPU, "cuda": CUDA}


def resolve_device(name: str):
    """`cpu`/`cuda`, a built-in device profile name, or a profile .toml path, as a DeviceProfile.

    The presets describe this machine, so they are never "emulated"; a preset provider that is missing here
    is reported by `create_session`'s fallback warning instead."""
    from edgemed.devices.profile import DeviceProfile, load_profile

    if name in PRESETS:
        host = load_profile("host")
        return DeviceProfile(name=name, description=f"{name} providers on this machine", arch=host.arch,
                             cores=host.cores, memory_mb=host.memory_mb, threads=1, precision="fp32",
                             latency_budget_ms=host.latency_budget_ms, memory_budget_mb=host.memory_budget_mb,
                             providers=[(p, {}) for p in PRESETS[name]])
    return load_profile(name)


class ProviderFallbackWarning(UserWarning):
    """A requested provider is missing, or some nodes run on a provider other than the first requested."""


@dataclass(eq=False, repr=False)
class ProviderReport(Record):
    """Which execution providers were asked for, which this onnxruntime has, which the session uses, where its
    nodes run, and what went wrong on the way."""

    requested: list[str]
    available: list[str]
    session_providers: list[str]
    nodes: dict[str, Counter] = field(default_factory=dict)  # provider -> op type counts
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "available": self.available, "session": self.session_providers,
                "nodes": {ep: dict(c) for ep, c in self.nodes.items()}, "problems": self.problems}

    def summary(self) -> str:
        parts = [f"{ep}: {sum(c.values())} nodes" for ep, c in self.nodes.items()]
        return ", ".join(parts) or "no node assignment recorded"


def normalise(providers: list[str | tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Provider names or (name, options) pairs, checked: InputError for anything else."""
    if not isinstance(providers, list | tuple) or not providers:
        raise InputError(f"providers must be a non-empty list of names or (name, options) pairs, got {providers!r}")
    out = []
    for p in providers:
        if isinstance(p, str):
            out.append((p, {}))
        elif (isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], dict)
              and all(isinstance(k, str) for k in p[1])):
            out.append((p[0], {k: str(v) for k, v in p[1].items()}))
        else:
            raise InputError(f"provider {p!r} is neither a name nor a (name, options dict) pair")
    return out


# onnxruntime is imported where a session is made, not here: the CLI reads this module's names for its options,
# and `edgemed --help` or `devices list` should not pay for loading onnxruntime.
GRAPH_OPTIMIZATIONS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC"}


def session_options(threads: int, spinning: bool, inter_threads: int = 1, graph: str = "all") -> ort.SessionOptions:
    """Explicit threading: intra-op threads as asked and spinning off by default, so latency stays predictable
    on shared cores (a spinning pool burns the other core between calls). `graph`: onnxruntime's graph
    optimisation level (all, extended, basic). Every session made with these options allocates from the process's
    capped arena (`memory`)."""
    if graph not in GRAPH_OPTIMIZATIONS:
        raise InputError(f"graph optimisation must be one of {sorted(GRAPH_OPTIMIZATIONS)}, not {graph!r}")
    import onnxruntime as ort

    from edgemed.runtime.engines.memory import use_shared_arena

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = inter_threads
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATIONS[graph])
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    opts.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    use_shared_arena(opts)
    return opts


def create_session(model: bytes, providers: list[str | tuple[str, dict]], opts: ort.SessionOptions,
                   strict: bool) -> tuple[ort.InferenceSession, ProviderReport]:
    """Create the session with the available providers in order; warn (or raise, if strict) about the rest."""
    import onnxruntime as ort

    wanted = normalise(providers)
    available = ort.get_available_providers()
    report = ProviderReport([p for p, _ in wanted], available, [])
    missing = [p for p, _ in wanted if p not in available]
    if missing:
        report.problems.append(f"requested provider(s) {missing} not available here (available: {available})")
    usable = [(p, o) for p, o in wanted if p in available] or [("CPUExecutionProvider", {})]
    if strict and missing:
        raise ProviderError(report.problems[0])
    session = ort.InferenceSession(model, opts, providers=[p for p, _ in usable],
                                   provider_options=[o for _, o in usable])
    report.session_providers = session.get_providers()
    for sub in session.get_provider_graph_assignment_info():
        report.nodes.setdefault(sub.ep_name, Counter()).update(n.op_type for n in sub.get_nodes())
    first = usable[0][0]
    elsewhere = {ep: sum(c.values()) for ep, c in report.nodes.items() if ep != first}
    if elsewhere and first != "CPUExecutionProvider":
        report.problems.append(f"nodes fell back from {first}: {elsewhere}")
    if report.problems:
        if strict:
            raise ProviderError("; ".join(report.problems))
        for problem in report.problems:
            warnings.warn(problem, ProviderFallbackWarning, stacklevel=3)
    return session, report
