"""Does a quantised file give the same results on OpenVINO as on onnxruntime, where its gate measured it?

The same QDQ file is executed differently by the two engines: OpenVINO moves dequantisation through operators
(its low-precision transformations) where onnxruntime runs each as written. On one int8 file of `make mitdb`'s model
(a float Gemm fed by a concatenation of dequantised and float values) OpenVINO returned logits of 1e35 on 0.25 % of
the validation beats while onnxruntime matched fp32 within 0.85. So every int8 file is run on OpenVINO too (when
it is installed) over the whole validation set, and the verdict is recorded; `EdgeModel(backend="openvino")` refuses
a file whose record says the engines disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.errors import EdgemedError
from edgemed.core.spec import ModelSpec
from edgemed.export.quant_data import Labelled


def openvino_agreement(path: Path, validation: Labelled, spec: ModelSpec, ref: np.ndarray,
                       batch: int = 64) -> dict[str, Any]:
    """OpenVINO's logits against onnxruntime's (`ref`, the accuracy gate's) on every validation sample: agrees when
    every logit is finite and no label changes (the engines round differently: logits 1.1 apart on a small int8
    GRU, its labels the same)."""
    from edgemed.runtime.engines import openvino

    if spec.streaming is not None:
        return {"checked": False, "why": "streaming models are checked on onnxruntime only"}
    if not openvino.available():
        return {"checked": False, "why": "OpenVINO is not installed (pip install 'edgemed[openvino]')"}
    try:
        engine = openvino.OpenVINOEngine(path.read_bytes(), threads=2, precision="fp32")
        ours = np.concatenate([engine.run(validation.feeds(s, min(s + batch, len(validation.y)), spec))[0]
                               for s in range(0, len(validation.y), batch)]).astype(np.float64)
    except EdgemedError as exc:  # e.g. int8 recurrent weights: OpenVINO's GRU takes constant weights only
        return {"checked": True, "agrees": False, "why": str(exc)[:300]}
    finite = bool(np.isfinite(ours).all())
    worst = float(np.abs(ours - ref).max()) if finite else float("inf")
    flips = int((ours.argmax(1) != ref.argmax(1)).sum())
    return {"checked": True, "samples": int(len(ref)), "max_abs_vs_onnxruntime": worst, "labels_changed": flips,
            "agrees": finite and flips == 0}
