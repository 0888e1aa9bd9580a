"""Device profiles: load, validate (naming the bad field) and detect the host."""

from __future__ import annotations

import os
import platform
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgemed.core.errors import EdgemedError
from edgemed.core.limits import read_bounded

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
PRECISIONS = ("fp32", "fp16", "int8")
# Instruction-set classes int8 kernels differ on: x86 without VNNI (u8 x s8 products saturate in 16 bits), x86 with
# VNNI (AVX512-VNNI or AVX-VNNI: exact 32-bit accumulation), and aarch64 (its own dot-product kernels).
ISA_CLASSES = ("x86-avx2", "x86-vnni", "x86-amx", "aarch64")
EMULATION_NOTE = "emulated: thread count and providers only"


class DeviceError(EdgemedError):
    """An unknown device, or a profile file with missing or wrong fields."""


@dataclass
class DeviceProfile:
    name: str
    description: str
    arch: str
    cores: int
    memory_mb: int
    threads: int
    precision: str
    latency_budget_ms: float
    memory_budget_mb: float
    providers: list[tuple[str, dict[str, Any]]]
    isa: str = ""  # instruction-set class (ISA_CLASSES); int8 results depend on it
    notes: str = ""
    source: str = ""
    missing_providers: list[str] = field(default_factory=list)

    @property
    def provider_names(self) -> list[str]:
        return [p for p, _ in self.providers]

    def is_this_machine(self) -> bool:
        """True only when arch and core count match here and every provider is installed."""
        return (self.arch == platform.machine() and self.cores == (os.cpu_count() or 1)
                and not self.missing_providers)

    @property
    def emulation(self) -> str | None:
        return None if self.is_this_machine() else EMULATION_NOTE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["providers"] = [{"name": p, "options": o} for p, o in self.providers]
        d["emulation"] = self.emulation
        return d


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str, "description": str, "arch": str, "cores": int, "memory_mb": int, "threads": int,
    "precision": str, "latency_budget_ms": (int, float), "memory_budget_mb": (int, float), "providers": list,
}


def parse_profile(data: dict[str, Any], source: str) -> DeviceProfile:
    """Validate one profile's fields; every error names the file and the field."""
    for key, kind in _FIELDS.items():
        if key not in data:
            raise DeviceError(f"{source}: missing field {key!r}")
        value = data[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise DeviceError(f"{source}: field {key!r} must be {getattr(kind, '__name__', 'a number')}, "
                              f"got {value!r}")
    for key in ("latency_budget_ms", "memory_budget_mb"):
        if not data[key] > 0:
            raise DeviceError(f"{source}: field {key!r} must be a positive number, got {data[key]!r}")
    for key in ("cores", "memory_mb", "threads"):
        if data[key] < 1:
            raise DeviceError(f"{source}: field {key!r} must be at least 1, got {data[key]!r}")
    if data["precision"] not in PRECISIONS:
        raise DeviceError(f"{source}: field 'precision' must be one of {PRECISIONS}, got {data['precision']!r}")
    providers = []
    for i, entry in enumerate(data["providers"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise DeviceError(f"{source}: field 'providers[{i}]' needs a 'name' string")
        options = entry.get("options", {})
        if not isinstance(options, dict):
            raise DeviceError(f"{source}: field 'providers[{i}].options' must be a table")
        # onnxruntime takes provider options as strings; TOML booleans become "true"/"false".
        providers.append((entry["name"], {k: str(v).lower() if isinstance(v, bool) else str(v)
                                          for k, v in options.items()}))
    if not providers:
        raise DeviceError(f"{source}: field 'providers' is empty; list at least CPUExecutionProvider")
    isa = data.get("isa", "")
    if isa not in (*ISA_CLASSES, "detected", ""):
        raise DeviceError(f"{source}: field 'isa' must be one of {ISA_CLASSES}, got {isa!r}")
    unknown = sorted(set(data) - set(_FIELDS) - {"notes", "isa"})
    if unknown:
        raise DeviceError(f"{source}: unknown field(s) {unknown}")
    return DeviceProfile(**{k: data[k] for k in _FIELDS if k != "providers"}, providers=providers, isa=isa,
                         notes=str(data.get("notes", "")), source=source)


def host_isa() -> str:
    """This machine's instruction-set class (see ISA_CLASSES)."""
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "aarch64"
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[-1] for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return isa_of_flags(flags)


def isa_of_flags(flags: str) -> str:
    """The x86 class of a CPU from its /proc/cpuinfo flags: `x86-amx` with AMX int8 tiles (onnxruntime's int8 GEMM
    and OpenVINO's bf16 use them), `x86-vnni` with AVX-512 or AVX VNNI (u8 x s8 dot products summed exactly in 32
    bits), else `x86-avx2` (pairs summed in 16 bits first, which can saturate)."""
    have = set(flags.split())
    if {"amx_tile", "amx_int8"} <= have:
        return "x86-amx"
    if have & {"avx512_vnni", "avx_vnni"}:
        return "x86-vnni"
    return "x86-avx2"


def _detect_host(profile: DeviceProfile) -> DeviceProfile:
    import onnxruntime as ort

    available = ort.get_available_providers()
    profile.arch = platform.machine()
    profile.isa = host_isa()
    profile.cores = os.cpu_count() or 1
    profile.memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)
    preferred = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []
    profile.providers = [(p, {}) for p in preferred + ["CPUExecutionProvider"]]
    return profile


def load_profile(name_or_path: str) -> DeviceProfile:
    """A built-in profile by name, or a profile TOML file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        if name_or_path not in list_profiles():  # a name, never a path built from it
            raise DeviceError(f"unknown device {name_or_path!r}; built-in devices: {', '.join(list_profiles())}, "
                              "or give a profile .toml file")
        path = PROFILE_DIR / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(read_bounded(path, 1 << 20, "a device profile (a small TOML file)").decode())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeviceError(f"{path}: not a readable TOML profile ({exc})") from exc
    profile = parse_profile(data, str(path))
    if profile.name == "host":
        profile = _detect_host(profile)
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    profile.missing_providers = [p for p in profile.provider_names if p not in available]
    return profile


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
