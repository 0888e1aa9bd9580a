"""The first line of a model card: it names the sha256 of the model it describes, so a card can be matched to
its model (and refused beside another) without reading the rest. Written by `edgemed evaluate`
(`edgemed.runtime.ecg.model_card`), read by `edgemed bundle --card`."""

from __future__ import annotations

import re

from edgemed.core.errors import BundleError

CARD_SCHEMA = "edgemed.model_card/1"
_HEADER = re.compile(r"<!-- edgemed\.model_card/1 model_sha256=([0-9a-f]{64}) -->")


def card_header(model_sha256: str) -> str:
    return f"<!-- {CARD_SCHEMA} model_sha256={model_sha256} -->"


def card_model_sha256(text: str, where: str) -> str:
    """The model sha256 a card's first line names; BundleError if it names none."""
    m = _HEADER.match(text.split("\n", 1)[0].strip())
    if m is None:
        raise BundleError(f"{where}: not an edgemed model card (its first line names no model sha256)")
    return m.group(1)
