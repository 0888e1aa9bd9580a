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
