"""Alarm thresholds and priorities of the monitor, per device or patient, from a TOML file (the built-in `adult`,
or a path). Every field is checked: a number in its range, a priority high/medium/low; a missing file or field
says which."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemed.core.bounds import number
from edgemed.core.errors import InputError
from edgemed.core.limits import read_bounded

PROFILES = Path(__file__).resolve().parent / "profiles"
PRIORITIES = ("high", "medium", "low")
KINDS = ("asystole", "ventricular_run", "extreme_rate", "pause", "bradycardia", "tachycardia", "atrial_fibrillation",
         "lead_off", "signal_quality", "source_fault", "frequent_pvc", "couplet")
FIELDS = {  # section.field: (low, high)
    "heart_rate.window_beats": (2, 64), "heart_rate.bradycardia_bpm": (10, 200),
    "heart_rate.tachycardia_bpm": (40, 300),
    "heart_rate.extreme_bradycardia_bpm": (5, 200), "heart_rate.extreme_tachycardia_bpm": (40, 400),
    "heart_rate.hold_s": (0, 600), "ectopy.pvc_per_minute": (1, 200), "ectopy.vrun_beats": (3, 50),
    "pause.seconds": (1, 60), "asystole.seconds": (1, 60), "asystole.flat_mv": (0, 5), "asystole.window_s": (0.5, 30),
    "quality.uncertain_share": (0, 1), "quality.window_beats": (2, 500),
}


@dataclass(frozen=True)
class AlarmProfile:
    name: str
    description: str
    values: dict[str, float]
    priorities: dict[str, str]

    def __getitem__(self, key: str) -> float:
        return self.values[key]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "thresholds": self.values,
                "priorities": self.priorities}


def load_alarm_profile(name_or_path: str = "adult") -> AlarmProfile:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(p.stem for p in PROFILES.glob("*.toml"))
            raise InputError(f"no alarm profile {name_or_path!r}; built-in: {known}, or give a .toml file")
    try:
        data = tomllib.loads(read_bounded(path, 1 << 20, "an alarm profile").decode())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable TOML alarm profile ({exc})") from exc
    values = {}
    for key, (low, high) in FIELDS.items():
        section, field = key.split(".")
        if field not in data.get(section, {}):
            raise InputError(f"{path}: [{section}] {field} is missing")
        values[key] = number(data[section][field], f"{path}: [{section}] {field}", low, high, error=InputError)
    priorities = data.get("priorities", {})
    for kind in KINDS:
        if priorities.get(kind) not in PRIORITIES:
            raise InputError(f"{path}: [priorities] {kind} must be one of {', '.join(PRIORITIES)}")
    return AlarmProfile(str(data.get("name", path.stem)), str(data.get("description", "")), values,
                        {k: priorities[k] for k in KINDS})
