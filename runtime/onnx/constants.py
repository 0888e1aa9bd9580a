"""The graphs of an ONNX file as `folding` needs them: nodes with their inputs, outputs and attributes,
initializers with their element counts and shapes, and the values of small int64 tensors (shapes), read with the
runtime's own protobuf reader (`proto`), after `walk` has checked the file's structure."""

from __future__ import annotations

import math
from typing import NamedTuple

from edgemed.runtime.onnx.proto import LEN, MAX_DIMS, VARINT, Field, fields, tensor_dims, varint


class Const(NamedTuple):
    """A value known at load: at most `count` elements, its shape when known, its int64 values when small."""

    count: int
    shape: tuple[int, ...] | None = None
    values: tuple[int, ...] | None = None


class Node(NamedTuple):
    op: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    attributes: list[Field]


class Graph(NamedTuple):
    """A graph's (or function's) initializers, nodes in order, inputs (a function's parameters; a graph's inputs,
    which an initializer of the same name only defaults) and outputs."""

    initializers: dict[str, Const]
    nodes: list[Node]
    inputs: list[str]
    outputs: list[str]


def _ints(f: Field) -> list[int]:
    """A repeated int64 field, packed or not (two's complement read back as signed)."""
    if f.wire == VARINT:
        raw = [f.value]
    else:
        buf, raw, pos = f.payload("int64 list"), [], 0
        while pos < len(buf):
            v, pos = varint(buf, pos)
            raw.append(v)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in raw]


def tensor(buf: memoryview) -> tuple[str, Const]:
    """A TensorProto's name and bound; int64 values are kept when there are at most MAX_DIMS of them."""
    name, dims, int_fields, raw, dtype = "", [], [], None, 0
    for f in fields(buf):
        if f.number == 1:
            dims += tensor_dims(f)
        elif f.number == 2 and f.wire == VARINT:
            dtype = f.value
        elif f.number == 8:
            name = f.text("tensor name")
        elif f.number == 7 and len(int_fields) <= MAX_DIMS:
            int_fields.append(f)
        elif f.number == 9 and f.wire == LEN:
            raw = f.payload("raw_data")
    count = math.prod(dims)
    values = None  # decoded only for a small tensor: a shape, not the weights
    if count <= MAX_DIMS and int_fields:
        values = [v for f in int_fields for v in _ints(f)]
    elif dtype == 7 and raw is not None and len(raw) == 8 * count <= 8 * MAX_DIMS:
        values = [int.from_bytes(raw[i : i + 8], "little", signed=True) for i in range(0, len(raw), 8)]
    kept = tuple(values) if values is not None and len(values) == count <= MAX_DIMS else None
    return name, Const(count, tuple(dims), kept)


def _sparse(buf: memoryview) -> tuple[str, Const]:
    name, dims = "", []
    for f in fields(buf):
        if f.number == 1:
            name = tensor(f.payload("sparse values"))[0]
        elif f.number == 3:
            dims += tensor_dims(f)
    return name, Const(math.prod(dims), tuple(dims))


def read_graph(buf: memoryview, function: bool = False) -> Graph:
    """The nodes (op, domain, inputs, outputs, attributes) and initializers of a GraphProto or FunctionProto."""
    graph = Graph({}, [], [], [])
    node_field, inputs, outputs = (7, 4, 5) if function else (1, 11, 12)
    for f in fields(buf):
        if f.number == node_field:
            graph.nodes.append(_node(f.payload("node")))
        elif not function and f.number == 5:
            name, const = tensor(f.payload("initializer"))
            graph.initializers[name] = const
        elif not function and f.number == 15:
            name, const = _sparse(f.payload("sparse initializer"))
            graph.initializers[name] = const
        elif f.number in (inputs, outputs):
            name = f.text("function input") if function else _value_name(f.payload("graph input"))
            (graph.inputs if f.number == inputs else graph.outputs).append(name)
    return graph


def _value_name(buf: memoryview) -> str:
    return next((f.text("value name") for f in fields(buf) if f.number == 1), "")


def _node(buf: memoryview) -> Node:
    op, domain, ins, outs, attrs = "", "", [], [], []
    for f in fields(buf):
        if f.number == 1:
            ins.append(f.text("node input"))
        elif f.number == 2:
            outs.append(f.text("node output"))
        elif f.number == 4:
            op = f.text("op_type")
        elif f.number == 7:
            domain = f.text("domain")
        elif f.number == 5:
            attrs.append(f)
    return Node(op, domain, ins, outs, attrs)


def attribute(f: Field, constant: bool = False) -> tuple[str, Const | None, list[memoryview]]:
    """An AttributeProto's name, its value as a constant when `constant` (a Constant node's `value*`), and its
    subgraphs."""
    name, count, const, graphs = "", 0, None, []
    values: list[int] = []
    for a in fields(f.payload("attribute")):
        if a.number == 1:
            name = a.text("attribute name")
        elif a.number == 5:
            const = tensor(a.payload("attribute tensor"))[1]
        elif a.number == 22:
            const = _sparse(a.payload("attribute sparse tensor"))[1]
        elif a.number in (2, 3, 4):
            const = Const(1, (), (a.integer("attribute int"),) if a.number == 3 else None)
        elif a.number == 8 and constant:
            values += _ints(a)
        elif a.number == 7:
            count += len(a.value) // 4 if a.wire == LEN else 1
        elif a.number == 9:
            count += 1
        elif a.number in (6, 11):
            graphs.append(a.payload("subgraph"))
    if values:
        const = Const(len(values), (len(values),), tuple(values) if len(values) <= MAX_DIMS else None)
    elif count:
        const = Const(count, (count,))
    return name, const, graphs
