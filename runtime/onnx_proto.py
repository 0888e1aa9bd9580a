"""A minimal reader of the ONNX protobuf wire format, so the runtime can describe a model without the onnx package.

It reads what `edgemed info` shows: opsets, producer, node op types (top-level graph), initializer sizes,
graph inputs and outputs, and metadata_props. Tensor payloads are sliced, never decoded, so a large model
reads in milliseconds. Field numbers follow onnx.proto (ModelProto, GraphProto, NodeProto, TensorProto).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from edgemed.core.errors import InputError

ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
              11: "float64", 16: "bfloat16"}


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise InputError("truncated ONNX file (varint runs past the end)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) for every field of one message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise InputError("truncated ONNX file (a field runs past the end)")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = buf[pos : pos + width], pos + width
        else:
            raise InputError(f"not an ONNX model (unknown protobuf wire type {wire})")
        yield number, wire, value


def _text(value: memoryview) -> str:
    return bytes(value).decode("utf-8", errors="replace")


def _dims(wire: int, value) -> list[int]:
    if wire == 0:
        return [value]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(v)
    return out


@dataclass
class ValueInfo:
    name: str
    dtype: str
    shape: list[int | str]


@dataclass
class ModelSummary:
    ir_version: int = 0
    producer: str = ""
    opsets: dict[str, int] = field(default_factory=dict)
    op_types: Counter = field(default_factory=Counter)
    parameters: int = 0
    initializers: int = 0
    external_data: bool = False
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


def _value_info(buf: memoryview) -> ValueInfo:
    name, dtype, shape = "", "?", []
    for number, _, value in _fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:  # TypeProto
            for tn, _, tv in _fields(value):
                if tn != 1:  # tensor_type only
                    continue
                for fn, _, fv in _fields(tv):
                    if fn == 1:
                        dtype = ELEM_TYPES.get(fv, str(fv))
                    elif fn == 2:  # TensorShapeProto
                        for dn, _, dv in _fields(fv):
                            if dn != 1:
                                continue
                            dim: int | str = "?"
                            for kn, _, kv in _fields(dv):
                                dim = kv if kn == 1 else _text(kv) if kn == 2 else dim
                            shape.append(dim)
    return ValueInfo(name, dtype, shape)


def read_summary(data: bytes) -> ModelSummary:
    """Parse a serialized ModelProto; raises InputError when the bytes are not a readable ONNX model."""
    buf = memoryview(data)
    summary = ModelSummary()
    graph = None
    for number, _, value in _fields(buf):
        if number == 1:
            summary.ir_version = value
        elif number == 2:
            summary.producer = _text(value)
        elif number == 7:
            graph = value
        elif number == 8:
            opset = {fn: fv for fn, _, fv in _fields(value)}
            summary.opsets[_text(opset.get(1, b"")) or "ai.onnx"] = opset.get(2, 0)
        elif number == 14:
            entry = {fn: _text(fv) for fn, _, fv in _fields(value)}
            summary.metadata[entry.get(1, "")] = entry.get(2, "")
    if graph is None or not summary.opsets:
        raise InputError("not an ONNX model (no graph or no opset import)")
    for number, _, value in _fields(graph):
        if number == 1:
            summary.op_types[next((_text(v) for n, _, v in _fields(value) if n == 4), "?")] += 1
        elif number == 5:
            count = 1
            for fn, fw, fv in _fields(value):
                if fn == 1:
                    for d in _dims(fw, fv):
                        count *= d
                elif fn == 14 and fv == 1:
                    summary.external_data = True
            summary.parameters += count
            summary.initializers += 1
        elif number == 11:
            summary.inputs.append(_value_info(value))
        elif number == 12:
            summary.outputs.append(_value_info(value))
    return summary
