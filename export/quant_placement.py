"""Where int8 pays on onnxruntime's CPU provider, so that quantising never makes a model slower for nothing.

A quantised operator pays only if onnxruntime has an int8 kernel for it and it does enough work to cover its
quantise and dequantise steps. Measured (benchmarks/int8_placement.py: one Gemm alone, one thread, int8 QDQ against
float; AMD EPYC with VNNI): a 64 x 2 product is 1.22x slower in int8 at batch 1 and 1.22x at batch 32, 64 x 64 1.28x
and 1.11x, 128 x 128 1.25x and 0.80x, 256 x 256 1.12x and 0.52x, 512 x 512 0.81x and 0.44x. Every product under
128 x 128 lost at both batches; from there int8 gains at batch 32 and, from about 512 x 512, at batch 1. So:

- Every Conv, MatMul and Gemm computes in int8, except a MatMul or Gemm whose constant weight has fewer than
  `MIN_PRODUCT_WEIGHTS` values (a recurrent model's 64 x 2 head stays float: in int8 it only added time).
- Operators that pass int8 values on without leaving int8 (ReLU, pooling, max and mean reductions, concatenation,
  addition, reshaping...) are quantised only where they touch such a computation, directly or through other such
  operators, so a chain of int8 convolutions stays in int8 between them. The reductions are among them because
  OpenVINO moves dequantisation through them: left float after an int8 pooling, they fed a concatenation of
  dequantised and float values that OpenVINO computed wrongly (`quant_engines`; 271 of 10,235 MIT-BIH labels).
- Everything else stays float: arithmetic with no int8 kernel (Div, Sub, reductions, LogSoftmax, BatchNorm) would
  run in float between a dequantise and a quantise, adding time and rounding, and so would an addition or
  concatenation of float results far from any int8 computation (an ensemble's averaging of log-probabilities).
"""

from __future__ import annotations

import math

import onnx

MIN_PRODUCT_WEIGHTS = 16384  # fewer constant weights: float (128 x 128 first gains on an AMD EPYC; 256 x 256 on a Xeon)
INT8_COMPUTE = frozenset({"Conv", "MatMul", "Gemm"})
INT8_PASS = frozenset({"Relu", "Clip", "LeakyRelu", "Sigmoid", "Softmax", "MaxPool", "AveragePool",
                       "GlobalAveragePool", "ReduceMax", "ReduceMean", "Concat", "Add", "Mul", "Transpose", "Reshape",
                       "Squeeze", "Unsqueeze", "Flatten", "Split", "Slice", "Pad", "Identity", "Resize"})


def _weights(node: onnx.NodeProto, sizes: dict[str, int]) -> int | None:
    """The element count of a product's constant operand (None when neither operand is constant)."""
    counts = [sizes[i] for i in node.input[:2] if i in sizes]
    return max(counts) if counts else None


def small_products(model: onnx.ModelProto, min_weights: int = MIN_PRODUCT_WEIGHTS) -> list[str]:
    """Names of the MatMul/Gemm nodes whose constant weight has fewer than `min_weights` values."""
    sizes = {i.name: math.prod(i.dims) for i in model.graph.initializer}
    return sorted(n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm")
                  and (w := _weights(n, sizes)) is not None and w < min_weights)


def int8_nodes(model: onnx.ModelProto, keep: list[str], min_weights: int = MIN_PRODUCT_WEIGHTS) -> list[str]:
    """Names of the nodes to quantise (see the module's rules); the `keep` nodes never are. Nodes must be named
    (`graph_passes.decision_nodes` names the unnamed)."""
    graph = model.graph
    excluded = set(keep) | set(small_products(model, min_weights))
    chosen = {n.name for n in graph.node if n.op_type in INT8_COMPUTE and n.name not in excluded}
    producer = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    stack = [n for n in graph.node if n.name in chosen]
    while stack:
        node = stack.pop()
        near = [producer[i] for i in node.input if i in producer]
        near += [c for out in node.output for c in consumers.get(out, [])]
        for other in near:
            if other.op_type in INT8_PASS and other.name not in excluded and other.name not in chosen:
                chosen.add(other.name)
                stack.append(other)
    return sorted(chosen)
