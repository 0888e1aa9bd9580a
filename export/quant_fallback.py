"""Accuracy-aware static int8 on onnxruntime: when the int8 file fails the accuracy gate, leave the int8 products
that cost the most accuracy in float, until it passes (as NNCF's accuracy control reverts layers).

Each product is first reverted alone and the macro-F1 drop on the validation data measured; then the products are
reverted cumulatively in that order (the most harmful first) until the drop is within `max_drop`. That is at most
twice as many quantisations as there are int8 products, and only when the first file fails. The gate in the report
is measured again on the file kept; every step is recorded, so the report says what was left float and why.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgemed.core.calibration import softmax
from edgemed.core.metrics import classification_report
from edgemed.core.spec import ModelSpec
from edgemed.export.quant_checks import logits_of, session_for
from edgemed.export.quant_data import Labelled
from edgemed.export.quant_int8 import static_by_scheme
from edgemed.export.quant_options import QuantOptions, QuantScheme
from edgemed.export.quant_placement import INT8_COMPUTE, int8_nodes

Convert = Callable[[list[str], Path], bool]  # (products to leave float, path): writes it; False: it cannot be kept
Drop = Callable[[Path], float]  # macro-F1 points lost against fp32 on the validation data


def _points(drop: float) -> float | None:
    """A drop as recorded (JSON has no infinity): None for a trial that cannot be kept."""
    return drop if math.isfinite(drop) else None


def revert_until_gate(out: Path, products: list[str], convert: Convert, drop_of: Drop, max_drop: float,
                      work: Path) -> dict[str, Any] | None:
    """None when `out` already passes (or has no product to revert); otherwise `out` is replaced by the file with
    the fewest products reverted that passes (or, when none does, the one with every product reverted) and the
    steps are returned."""
    first = drop_of(out)
    if first <= max_drop or not products:
        return None
    trial = work / "fallback-trial.onnx"

    def tried(left_float: list[str]) -> float:
        return drop_of(trial) if convert(left_float, trial) else math.inf

    alone = {name: tried([name]) for name in products}
    order = sorted(products, key=lambda n: (alone[n], n))  # the smallest drop left: the most harmful product
    steps: list[dict[str, Any]] = []
    drop = first
    for count in range(1, len(order) + 1):
        drop = tried(order[:count])
        steps.append({"reverted": count, "product": order[count - 1], "drop_points": _points(drop)})
        if drop <= max_drop:
            break
    shutil.copyfile(trial, out)
    return {"drop_points_before": first, "drop_points_after": _points(drop), "products_int8_before": len(products),
            "left_float": order[: len(steps)], "drop_points_each_alone": {n: _points(d) for n, d in alone.items()},
            "steps": steps}


def static_fallback(pre: Path, raw: Path, prepared: onnx.ModelProto, keep: list[str],
                    batches: list[dict[str, np.ndarray]], opts: QuantOptions, scheme: dict[str, Any],
                    validation: Labelled, spec: ModelSpec, work: Path) -> dict[str, Any] | None:
    """`revert_until_gate` for onnxruntime's static int8 file `raw` of the prepared graph `pre` (`scheme`: the
    search's record, whose chosen scheme every trial keeps; the `keep` nodes float). A trial whose results differ on
    another target class cannot be kept, as the search's would not be; the kept file's own record (`scheme`) and
    its count of int8 nodes (`int8_nodes`) are in the result. The drop is measured against `pre`, which matches
    fp32 within 1e-5."""
    op_types = {n.name: n.op_type for n in prepared.graph.node}
    products = [n for n in int8_nodes(prepared, keep, opts.min_product_weights) if op_types[n] in INT8_COMPUTE]
    records: list[tuple[dict[str, Any], int]] = []  # each trial's scheme record and int8 node count, the kept last

    def macro_f1(path: Path) -> float:
        probs = softmax(logits_of(session_for(path, 2), validation, spec))
        return classification_report(validation.y, probs, spec.labels)["macro_f1"] or 0.0

    def convert(left_float: list[str], path: Path) -> bool:
        kept = sorted(set(keep) | set(left_float))
        quantise = int8_nodes(prepared, kept, opts.min_product_weights)
        if not quantise:  # onnxruntime reads an empty node list as every node; float holds on every class
            shutil.copyfile(pre, path)
            records.append(({**scheme, "tried": [], "chosen": "none: every product float"}, 0))
            return True
        record = static_by_scheme(pre, path, batches, opts.method, QuantScheme(scheme["chosen"]), opts.isa_classes,
                                  validation, spec, opts.max_drop, work, kept, quantise)
        records.append((record, len(quantise)))
        return record["tried"][-1]["result"] == "holds"

    reference = macro_f1(pre)
    fallback = revert_until_gate(raw, products, convert, lambda path: 100.0 * (reference - macro_f1(path)),
                                 opts.max_drop, work)
    if fallback:
        fallback["scheme"], fallback["int8_nodes"] = records[-1]
    return fallback
