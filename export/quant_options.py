"""The choices of `edgemed quantize`, as enums (mode, calibration method, engine, int8 scheme, recurrent weights),
and what a quantisation returns."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from onnxruntime import quantization as ortq

from edgemed.export.quant_placement import MIN_PRODUCT_WEIGHTS
from edgemed.export.quant_report import QuantReport

DEFAULT_MAX_DROP = 0.5  # macro-F1 points
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                 "ConvInteger", "MatMulInteger", "QGemm"}


class QuantMode(enum.Enum):
    DYNAMIC = "dynamic"
    STATIC = "static"
    FP16 = "fp16"


class RecurrentWeights(enum.Enum):
    """How an int8 model stores the GRU/LSTM/RNN weights (onnxruntime has no int8 recurrent kernel, so they are
    computed in float either way). `float`: plain constants, which onnxruntime pre-packs once at load: the fastest.
    `int8`: int8 + per-row scales behind DequantizeLinear: about 4x smaller, but the dequantised weights are not
    constants, so they are not pre-packed and every run is slower (measured in benchmarks/quantization.py)."""

    FLOAT = "float"
    INT8 = "int8"


class QuantEngine(enum.Enum):
    """Who places the int8 quantisation: onnxruntime's quantiser, or NNCF (the `openvino` extra) in its
    accuracy-control mode, which keeps layers in float until the validation macro-F1 drop is within the limit.
    Both write the same QDQ ONNX file, gated the same way, and run on either backend."""

    ONNXRUNTIME = "onnxruntime"
    NNCF = "nncf"


class QuantScheme(enum.Enum):
    """Static int8 types. `u8s8` (u8 activations, s8 weights) is onnxruntime's default and exact on x86 CPUs with
    VNNI and on aarch64, but on x86 without VNNI its products are summed in pairs into 16 bits and saturate
    (measured: logits 0.28 off on a vitals GRU, against 0.02 elsewhere). `u8s8-reduced` keeps weights to 7 bits
    (no saturation), `u8u8` uses u8 weights (another kernel); `auto` takes the first that holds on every target
    class (`--isa`)."""

    AUTO = "auto"
    U8S8 = "u8s8"
    U8S8_REDUCED = "u8s8-reduced"
    U8U8 = "u8u8"


SCHEMES = {QuantScheme.U8S8: dict(activation_type=ortq.QuantType.QUInt8, weight_type=ortq.QuantType.QInt8),
            QuantScheme.U8S8_REDUCED: dict(activation_type=ortq.QuantType.QUInt8, weight_type=ortq.QuantType.QInt8,
                                           reduce_range=True),
            QuantScheme.U8U8: dict(activation_type=ortq.QuantType.QUInt8, weight_type=ortq.QuantType.QUInt8)}
ISA_SAMPLES = 64  # validation samples replayed on each other instruction-set class (emulated: slow)
ISA_ATOL = 0.05  # logits may move this much from the host's int8 result on another class


class CalibrationMethod(enum.Enum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


ORT_METHODS = {CalibrationMethod.MINMAX: ortq.CalibrationMethod.MinMax,
                CalibrationMethod.ENTROPY: ortq.CalibrationMethod.Entropy,
                CalibrationMethod.PERCENTILE: ortq.CalibrationMethod.Percentile}


@dataclass(frozen=True)
class QuantOptions:
    """How to quantise (see `edgemed.export.quantize.quantize`)."""

    mode: QuantMode
    method: CalibrationMethod = CalibrationMethod.MINMAX
    max_drop: float = DEFAULT_MAX_DROP
    force_gate: bool = False
    recurrent_weights: RecurrentWeights = RecurrentWeights.FLOAT
    engine: QuantEngine = QuantEngine.ONNXRUNTIME
    scheme: QuantScheme = QuantScheme.AUTO
    isa_classes: tuple[str, ...] = ()
    min_product_weights: int = MIN_PRODUCT_WEIGHTS


@dataclass
class QuantResult:
    path: Path | None
    report: QuantReport
