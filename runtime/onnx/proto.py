"""A minimal, bounded reader of the ONNX protobuf wire format, so the runtime can describe and check a model
without the onnx package.

It reads what `edgemed info` shows (opsets, producer, node op types of the top-level graph, initializer sizes,
graph inputs and outputs, metadata_props) and the byte spans the integrity checks hash (the initializers, and
the metadata entry holding the integrity record). Tensor payloads are sliced, never decoded, so a large model
reads in milliseconds. Every malformed input raises `InputError`: varints are at most 10 bytes, every field
must have the wire type onnx.proto gives it, and sizes and counts are bounded, so a crafted file cannot make
the reader allocate or loop without limit. Field numbers follow onnx.proto (ModelProto, GraphProto, NodeProto,
TensorProto, ValueInfoProto, TypeProto, TensorShapeProto).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple

from edgemed.core.errors import InputError
from edgemed.core.limits import check

ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
              9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}
VARINT, I64, LEN, I32 = 0, 1, 2, 5
MAX_DIMS = 64
MAX_DIM = 2**62
MAX_PARAMETERS = 2**40


def varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    for _ in range(10):
        if pos >= len(buf):
            raise InputError("truncated ONNX file (a varint runs past the end)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise InputError("not an ONNX model (a varint longer than 10 bytes)")


class Field(NamedTuple):
    """One protobuf field of a message: number, wire type, value (an int, or the bytes of a length-delimited
    field) and its span."""

    number: int
    wire: int
    value: int | memoryview
    start: int  # span of the whole field (key included) in the message it belongs to
    end: int

    def integer(self, what: str) -> int:
        if self.wire != VARINT:
            raise InputError(f"not an ONNX model ({what} has protobuf wire type {self.wire}, expected a varint)")
        return self.value  # type: ignore[return-value]

    def payload(self, what: str) -> memoryview:
        if self.wire != LEN:
            raise InputError(f"not an ONNX model ({what} has protobuf wire type {self.wire}, expected bytes)")
        return self.value  # type: ignore[return-value]

    def text(self, what: str) -> str:
        return bytes(self.payload(what)).decode("utf-8", errors="replace")


def fields(buf: memoryview) -> Iterator[Field]:
    """Every field of one message, in file order."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise InputError("not an ONNX model (protobuf field number 0)")
        if wire == VARINT:
            value, pos = varint(buf, pos)
        elif wire == LEN:
            size, pos = varint(buf, pos)
            if size > len(buf) - pos:
                raise InputError("truncated ONNX file (a field runs past the end)")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (I64, I32):
            width = 8 if wire == I64 else 4
            if pos + width > len(buf):
                raise InputError("truncated ONNX file (a fixed-width field runs past the end)")
            value, pos = buf[pos : pos + width], pos + width
        else:
            raise InputError(f"not an ONNX model (unknown protobuf wire type {wire})")
        yield Field(number, wire, value, start, pos)


def tensor_dims(f: Field) -> list[int]:
    """TensorProto.dims: packed or one varint per field."""
    if f.wire == VARINT:
        return [f.value]  # type: ignore[list-item]
    raw, out, pos = f.payload("tensor dims"), [], 0
    while pos < len(raw):
        v, pos = varint(raw, pos)
        out.append(v)
        if len(out) > MAX_DIMS:
            raise InputError(f"not an ONNX model (a tensor with more than {MAX_DIMS} dimensions)")
    return out


class ValueInfo(NamedTuple):
    """A graph input or output: name, element type, shape (ints for fixed axes, names for dynamic ones)."""

    name: str
    dtype: str
    shape: list[int | str]


class ModelSummary:
    """What the reader found in one file (see the module's docstring), filled in as it reads (a plain class: a
    dataclass would cost every import the compilation of methods nothing calls)."""

    def __init__(self) -> None:
        self.ir_version = 0
        self.producer = ""
        self.opsets: dict[str, int] = {}
        self.op_types: Counter = Counter()
        self.parameters = 0
        self.initializers = 0
        self.external_data = False
        self.inputs: list[ValueInfo] = []
        self.outputs: list[ValueInfo] = []
        self.metadata: dict[str, str] = {}
        # For the integrity checks: (name, raw TensorProto bytes) per initializer, and the span of each
        # metadata entry in the file, by key.
        self.initializer_bytes: list[tuple[str, bytes]] = []
        self.metadata_spans: dict[str, tuple[int, int]] = {}


def _value_info(buf: memoryview) -> ValueInfo:
    name, dtype, shape = "", "?", []
    for f in fields(buf):
        if f.number == 1:
            name = f.text("value name")
        elif f.number == 2:  # TypeProto
            for t in fields(f.payload("type")):
                if t.number != 1:  # tensor_type only
                    continue
                for tf in fields(t.payload("tensor type")):
                    if tf.number == 1:
                        code = tf.integer("element type")
                        dtype = ELEM_TYPES.get(code, str(code))
                    elif tf.number == 2:  # TensorShapeProto
                        for d in fields(tf.payload("shape")):
                            if d.number != 1:
                                continue
                            dim: int | str = "?"
                            for k in fields(d.payload("dimension")):
                                if k.number == 1:
                                    dim = k.integer("dimension value")
                                elif k.number == 2:
                                    dim = k.text("dimension name")
                            shape.append(dim)
                            if len(shape) > MAX_DIMS:
                                raise InputError(f"not an ONNX model (a value with more than {MAX_DIMS} dimensions)")
    return ValueInfo(name, dtype, shape)


def _initializer(buf: memoryview, summary: ModelSummary) -> None:
    count, name = 1, ""
    for f in fields(buf):
        if f.number == 1:
            for d in tensor_dims(f):
                if d > MAX_DIM:
                    raise InputError("not an ONNX model (an initializer dimension is out of range)")
                count *= d
                if count > MAX_PARAMETERS:
                    raise InputError("not an ONNX model (an initializer claims more than 2**40 values)")
        elif f.number == 8:
            name = f.text("initializer name")
        elif f.number == 14 and f.wire == VARINT and f.value == 1:
            summary.external_data = True
    summary.parameters += count
    summary.initializers += 1
    summary.initializer_bytes.append((name, bytes(buf)))


def read_summary(data: bytes) -> ModelSummary:
    """Parse a serialized ModelProto; raises InputError when the bytes are not a readable ONNX model."""
    buf = memoryview(data)
    summary = ModelSummary()
    graph = None
    metadata_bytes = 0
    for f in fields(buf):
        if f.number == 1:
            summary.ir_version = f.integer("ir_version")
        elif f.number == 2:
            summary.producer = f.text("producer_name")
        elif f.number == 7:
            graph = f.payload("graph")
        elif f.number == 8:
            domain, version = "", 0
            for o in fields(f.payload("opset import")):
                if o.number == 1:
                    domain = o.text("opset domain")
                elif o.number == 2:
                    version = o.integer("opset version")
            summary.opsets[domain or "ai.onnx"] = version
        elif f.number == 14:
            key, value = "", ""
            for m in fields(f.payload("metadata entry")):
                if m.number == 1:
                    key = m.text("metadata key")
                elif m.number == 2:
                    value = m.text("metadata value")
            if key in summary.metadata:
                raise InputError(f"not a plain ONNX model (metadata key {key!r} is given twice; readers would "
                                 "disagree on its value)")
            metadata_bytes += f.end - f.start
            check("metadata_mb", metadata_bytes, "ONNX metadata_props", scale=2**20)
            summary.metadata[key] = value
            summary.metadata_spans[key] = (f.start, f.end)
    if graph is None or not summary.opsets:
        raise InputError("not an ONNX model (no graph or no opset import)")
    for f in fields(graph):
        if f.number == 1:
            op = next((n.text("op_type") for n in fields(f.payload("node")) if n.number == 4), "?")
            summary.op_types[op] += 1
        elif f.number == 5:
            _initializer(f.payload("initializer"), summary)
        elif f.number == 11:
            summary.inputs.append(_value_info(f.payload("graph input")))
        elif f.number == 12:
            summary.outputs.append(_value_info(f.payload("graph output")))
    return summary
