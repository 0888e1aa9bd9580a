"""ONNX graph rewrites that keep the function and pay at run time; each is followed by a parity check.

- `fuse_pad_into_conv`: PyTorch cannot express a causal conv's asymmetric padding, so the exporter writes a
  zero `Pad` before each `Conv`; ONNX `Conv` takes asymmetric `pads`, so the copy goes away. In a QDQ model
  the Pad would otherwise sit between the int8 convs in float.
- `recurrent_weights_int8`: onnxruntime never quantises the recurrent ops `GRU`, `LSTM` and `RNN`
  (onnxruntime#9796), and in a CNN-GRU their weights are about half of the file. Storing W and R as int8 with a
  per-row scale, dequantised in the graph, halves the file again; the cell still computes in float32, so parity
  is checked after.
- `float_graph_outputs`: the QDQ quantiser also rounds the graph's outputs (the logits) to 8 bits, a step of
  range / 255 on every probability's input (about 0.2 on a classifier's logits); the last op's int32 accumulator
  gives them in float at no cost, so the output's QuantizeLinear/DequantizeLinear pair goes.
- `decision_nodes`: what the quantisers must leave in float32: comparisons (a tree's threshold test flips when
  its input or threshold is rounded), the lookups and data movement that feed them, and the lookups their
  decisions select (a tree's leaf values). Not a rewrite: the names go to the quantisers' exclusion lists.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _initializer(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def fuse_pad_into_conv(model: onnx.ModelProto) -> int:
    """Fold constant-zero Pads on spatial axes into the Conv they feed; returns how many were fused.
    Needs the pads as initializers (run onnxruntime's constant folding first, as `quant_pre_process` does)."""
    consumers = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            consumers[name].append(node)
    fused = []
    for pad in [n for n in model.graph.node if n.op_type == "Pad"]:
        mode = next((a.s.decode() for a in pad.attribute if a.name == "mode"), "constant")
        users = consumers[pad.output[0]]
        if mode != "constant" or len(users) != 1 or users[0].op_type != "Conv" or len(pad.input) < 2:
            continue
        pads = _initializer(model, pad.input[1])
        value = _initializer(model, pad.input[2]) if len(pad.input) > 2 and pad.input[2] else np.zeros(1)
        if pads is None or value is None or np.any(value != 0):
            continue
        rank = len(pads) // 2
        if np.any(pads[:2] != 0) or np.any(pads[rank : rank + 2] != 0):  # batch and channel must stay unpadded
            continue
        conv, spatial = users[0], rank - 2
        attrs = {a.name: a for a in conv.attribute}
        auto_pad = attrs.get("auto_pad")
        if auto_pad is not None and auto_pad.s not in (b"", b"NOTSET"):
            continue
        old = list(attrs["pads"].ints) if "pads" in attrs else [0] * (2 * spatial)
        new = [old[i] + int(pads[2 + i]) for i in range(spatial)] + \
              [old[spatial + i] + int(pads[rank + 2 + i]) for i in range(spatial)]
        for name in ("pads", "auto_pad"):
            if name in attrs:
                conv.attribute.remove(attrs[name])
        conv.attribute.append(helper.make_attribute("pads", new))
        conv.input[0] = pad.input[0]
        fused.append(pad)
    for pad in fused:
        model.graph.node.remove(pad)
    return len(fused)


RECURRENT_OPS = ("GRU", "LSTM", "RNN")  # inputs 1 and 2 are W and R in all three


def recurrent_weights_int8(model: onnx.ModelProto) -> int:
    """Replace each recurrent op's W and R initializers by int8 + per-row scale + DequantizeLinear; returns the
    bytes saved."""
    inits = {i.name: i for i in model.graph.initializer}
    added, saved = [], 0
    for node in model.graph.node:
        if node.op_type not in RECURRENT_OPS:
            continue
        for index in (1, 2):  # W, R: [directions, 3 * hidden, inputs]
            name = node.input[index]
            if name not in inits:
                continue
            w = numpy_helper.to_array(inits[name]).astype(np.float32)
            rows = w.reshape(-1, w.shape[-1])
            scale = np.abs(rows).max(axis=1) / 127.0
            scale[scale == 0] = 1.0
            q = np.clip(np.round(rows / scale[:, None]), -127, 127).astype(np.int8)
            model.graph.initializer.remove(inits[name])
            model.graph.initializer.extend([
                numpy_helper.from_array(q, f"{name}_int8"),
                numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
                numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{name}_zero"),
                numpy_helper.from_array(np.array(w.shape, np.int64), f"{name}_shape"),
            ])
            added += [helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                                       [f"{name}_rows"], axis=0, name=f"{name}_dequantize"),
                      helper.make_node("Reshape", [f"{name}_rows", f"{name}_shape"], [name], name=f"{name}_reshape")]
            saved += w.nbytes - q.nbytes - scale.nbytes * 2
    for node in reversed(added):
        model.graph.node.insert(0, node)
    return saved


def float_graph_outputs(model: onnx.ModelProto) -> int:
    """Remove the QuantizeLinear -> DequantizeLinear pair in front of each graph output, so the producing op writes
    the output in float; returns how many outputs were freed."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            consumers[name].append(node)
    graph_outputs = {o.name for o in model.graph.output}
    freed, dropped = 0, set()
    for output in model.graph.output:
        dq = producer.get(output.name)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear" or len(consumers[q.output[0]]) != 1:
            continue
        source = q.input[0]
        origin = producer.get(source)
        if origin is None or len(consumers[source]) != 1 or source in graph_outputs:
            continue
        origin.output[list(origin.output).index(source)] = output.name
        model.graph.node.remove(q)
        model.graph.node.remove(dq)
        dropped.update([*q.input[1:], *dq.input[1:]])
        freed += 1
    used = _names_used(model.graph)
    for init in [i for i in model.graph.initializer if i.name in dropped and i.name not in used]:
        model.graph.initializer.remove(init)
    return freed


def _names_used(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name a node of `graph` or of its subgraphs reads."""
    used: set[str] = set()
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                used |= _names_used(sub)
    return used


COMPARISONS = frozenset({"Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal"})
DATA_MOVEMENT = frozenset({"Gather", "GatherElements", "GatherND", "Reshape", "Expand", "Squeeze", "Unsqueeze",
                           "Slice", "Concat", "Transpose", "Identity", "Flatten", "Cast"})
LOOKUPS = frozenset({"Gather", "GatherElements", "GatherND"})
CARRIES_DECISIONS = DATA_MOVEMENT - LOOKUPS | {"Where", "Not", "And", "Or", "Xor"}
INTEGER_TYPES = frozenset({onnx.TensorProto.INT32, onnx.TensorProto.INT64})


def decision_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes to keep in float: every comparison, the data movement between its inputs and the
    nearest computing node or graph input (walking back), and every lookup indexed by what decisions chose
    (walking forward: a Where's choice, and what integer tables give for it, e.g. a tree's next node). Unnamed
    nodes are named first."""
    graph = model.graph
    _name_unnamed(graph)
    producer = {out: node for node in graph.node for out in node.output}
    integer_tables = {i.name for i in graph.initializer if i.data_type in INTEGER_TYPES}
    keep: set[str] = set()
    stack = [n for n in graph.node if n.op_type in COMPARISONS]
    while stack:
        node = stack.pop()
        if node.name not in keep:
            keep.add(node.name)
            stack += [producer[i] for i in node.input if i in producer and producer[i].op_type in DATA_MOVEMENT]
    decided = {out for n in graph.node if n.op_type in COMPARISONS for out in n.output}
    size = -1
    while size != len(decided):
        size = len(decided)
        for node in graph.node:
            if node.op_type in LOOKUPS and len(node.input) > 1 and node.input[1] in decided:
                keep.add(node.name)
                if node.input[0] in integer_tables or node.input[0] in decided:
                    decided.update(node.output)
            elif node.op_type in CARRIES_DECISIONS and any(i in decided for i in node.input):
                decided.update(node.output)
    return sorted(keep)


def _name_unnamed(graph: onnx.GraphProto) -> None:
    """Give every unnamed node a name no other node has (the quantisers' exclusion lists go by name)."""
    taken = {n.name for n in graph.node}
    for k, node in enumerate(graph.node):
        if node.name:
            continue
        name, j = f"edgemed_{node.op_type}_{k}", 0
        while name in taken:
            j += 1
            name = f"edgemed_{node.op_type}_{k}_{j}"
        node.name = name
        taken.add(name)


def restore_float_inputs(model: onnx.ModelProto, keep: list[str]) -> int:
    """Feed the `keep` nodes the float32 values a quantiser or the fp16 converter rounded on their way (a
    QuantizeLinear/DequantizeLinear pair, a cast to half and back, a cast to half): those nodes were excluded,
    but a tensor they share with quantised nodes is rounded once for all its readers. A node that read a half
    value now reads float32; its outputs' recorded types go, for onnxruntime to infer. Returns inputs rewired."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    float32 = {v.name for v in [*graph.input, *graph.value_info]
               if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    float32 |= {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    halves = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}

    def cast_to(node: onnx.NodeProto) -> int:
        return next((a.i for a in node.attribute if a.name == "to"), -1)

    def unrounded(name: str) -> str | None:
        """The float32 value `name` was rounded from, if it was."""
        p = producer.get(name)
        if p is None or not p.input:
            return None
        inner = producer.get(p.input[0])
        if p.op_type == "DequantizeLinear" and inner is not None and inner.op_type == "QuantizeLinear":
            return inner.input[0]
        if p.op_type == "Cast" and cast_to(p) in halves and p.input[0] in float32:
            return p.input[0]
        if (p.op_type == "Cast" and cast_to(p) == onnx.TensorProto.FLOAT and inner is not None
                and inner.op_type == "Cast" and cast_to(inner) in halves and inner.input[0] in float32):
            return inner.input[0]
        return None

    keep_names = set(keep)
    retyped: set[str] = set()
    rewired = 0
    for node in graph.node:
        if node.name not in keep_names:
            continue
        for k, name in enumerate(node.input):
            source = unrounded(name)
            if source is None:
                continue
            while (deeper := unrounded(source)) is not None:
                source = deeper
            if producer[name].op_type == "Cast" and cast_to(producer[name]) in halves:
                retyped.update(node.output)
            node.input[k] = source
            rewired += 1
    kept = [v for v in graph.value_info if v.name not in retyped]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return rewired
