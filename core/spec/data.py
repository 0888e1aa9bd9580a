"""What a dataset declares about its samples (`DataSpec`), from which a model's spec takes what concerns the data.
Datasets and training use it; the runtime never loads it."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgemed.core.record import Record
from edgemed.core.spec.model import CHANNEL_AXES
from edgemed.core.spec.preprocessing import Preprocessing


@dataclass(eq=False, repr=False)
class DataSpec(Record):
    """What a dataset declares about its samples: class names, layout of X, channel names, the preprocessing the
    samples already had (rate, units, band-pass, window), and which plausibility checks suit them."""

    labels: tuple[str, ...]
    layout: str | None = None  # e.g. "batch,lead,sample"; None when the source cannot tell (plain arrays)
    channel_names: tuple[str, ...] = ()
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    signal_checks: tuple[str, ...] = ("range",)

    def __post_init__(self) -> None:
        self.labels = tuple(str(v) for v in self.labels)
        self.channel_names = tuple(str(v) for v in self.channel_names)
        self.signal_checks = tuple(self.signal_checks)

    @property
    def channel_axis(self) -> int | None:
        """The axis of X holding channels (named lead, feature or channel in the layout), if the layout is known."""
        parts = (self.layout or "").split(",")
        return next((i for i, name in enumerate(parts) if name in CHANNEL_AXES), None)
