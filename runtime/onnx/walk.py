"""A structural check of a whole ONNX file, so that what edgemed describes and digests is what the engine runs.

It walks every message onnx.proto defines that can hold a graph or a tensor (graphs, nodes, attributes, subgraphs,
functions, training info) and refuses, before any engine sees the file:
- a singular field given twice (protobuf merges a second `graph` into the first: `info` and the digest would see
  one graph while onnxruntime runs both), and a metadata key given twice;
- tensors whose data lives in external files (those bytes sit outside every digest and are resolved against the
  engine's working directory): edgemed models keep every weight inside the file;
- nesting deeper than MAX_DEPTH (messages, or local functions calling each other), and graphs whose nodes, once
  every local function is inlined, exceed the `graph_nodes` limit (a few KB of nested functions otherwise expand
  without end while loading), or whose functions call themselves.
"""

from __future__ import annotations

from edgemed.core.errors import InputError
from edgemed.core.limits import check, limit
from edgemed.runtime.onnx.proto import LEN, fields

MAX_DEPTH = 48

# message -> {field number: (name, repeated, child message or None)}; only what can nest or hold tensors is walked.
SCHEMA: dict[str, dict[int, tuple[str, bool, str | None]]] = {
    "model": {1: ("ir_version", False, None), 2: ("producer_name", False, None), 3: ("producer_version", False, None),
              4: ("domain", False, None), 5: ("model_version", False, None), 6: ("doc_string", False, None),
              7: ("graph", False, "graph"), 8: ("opset_import", True, "opset"), 14: ("metadata_props", True, "entry"),
              20: ("training_info", True, "training"), 25: ("functions", True, "function")},
    "training": {1: ("initialization", False, "graph"), 2: ("initialization_binding", True, "entry"),
                 3: ("algorithm", False, "graph"), 4: ("update_binding", True, "entry")},
    "opset": {1: ("domain", False, None), 2: ("version", False, None)},
    "entry": {1: ("key", False, None), 2: ("value", False, None)},
    "graph": {1: ("node", True, "node"), 2: ("name", False, None), 5: ("initializer", True, "tensor"),
              15: ("sparse_initializer", True, "sparse"), 10: ("doc_string", False, None),
              11: ("input", True, "value"), 12: ("output", True, "value"), 13: ("value_info", True, "value"),
              16: ("metadata_props", True, "entry")},
    "node": {1: ("input", True, None), 2: ("output", True, None), 3: ("name", False, None),
             4: ("op_type", False, None), 7: ("domain", False, None), 8: ("overload", False, None),
             5: ("attribute", True, "attribute"), 6: ("doc_string", False, None),
             9: ("metadata_props", True, "entry")},
    "attribute": {1: ("name", False, None), 21: ("ref_attr_name", False, None), 13: ("doc_string", False, None),
                  20: ("type", False, None), 2: ("f", False, None), 3: ("i", False, None), 4: ("s", False, None),
                  5: ("t", False, "tensor"), 6: ("g", False, "graph"), 22: ("sparse_tensor", False, "sparse"),
                  14: ("tp", False, "type"), 10: ("tensors", True, "tensor"), 11: ("graphs", True, "graph"),
                  23: ("sparse_tensors", True, "sparse"), 15: ("type_protos", True, "type")},
    "tensor": {2: ("data_type", False, None), 8: ("name", False, None), 9: ("raw_data", False, None),
               12: ("doc_string", False, None), 13: ("external_data", True, "entry"),
               14: ("data_location", False, None), 16: ("metadata_props", True, "entry")},
    "sparse": {1: ("values", False, "tensor"), 2: ("indices", False, "tensor")},
    "value": {1: ("name", False, None), 2: ("type", False, "type"), 3: ("doc_string", False, None),
              4: ("metadata_props", True, "entry")},
    "type": {1: ("tensor_type", False, "tensor_type"), 4: ("sequence_type", False, "elem"),
             5: ("map_type", False, "map"), 9: ("optional_type", False, "elem"),
             8: ("sparse_tensor_type", False, "tensor_type"), 6: ("denotation", False, None)},
    "tensor_type": {1: ("elem_type", False, None), 2: ("shape", False, None)},
    "elem": {1: ("elem_type", False, "type")},
    "map": {1: ("key_type", False, None), 2: ("value_type", False, "type")},
    "function": {1: ("name", False, None), 4: ("input", True, None), 5: ("output", True, None),
                 6: ("attribute", True, None), 11: ("attribute_proto", True, "attribute"),
                 7: ("node", True, "node"), 8: ("doc_string", False, None), 9: ("opset_import", True, "opset"),
                 10: ("domain", False, None), 13: ("overload", False, None), 12: ("value_info", True, "value"),
                 14: ("metadata_props", True, "entry")},
}
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


class Walk:
    """What a structural walk counted and collected, filled in as it goes (a plain class: a dataclass would cost
    every import the compilation of methods nothing calls)."""

    __slots__ = ("calls", "functions", "nodes")

    def __init__(self) -> None:
        self.nodes = 0  # every node of every graph and subgraph, functions not inlined
        self.calls: list[tuple[str, str]] = []  # (domain, op_type) of the main graph's nodes
        self.functions: dict[tuple[str, str], list[tuple[str, str]]] = {}


def _walk(buf: memoryview, kind: str, depth: int, walk: Walk, where: str, calls: list) -> tuple[str, str]:
    """Check one message; nodes append their (domain, op_type) to `calls`. Returns (domain, name) of a node or
    function."""
    if depth > MAX_DEPTH:
        raise InputError(f"not a plain ONNX model (messages nested deeper than {MAX_DEPTH} levels)")
    schema = SCHEMA[kind]
    seen: set[int] = set()
    domain = name = ""
    for f in fields(buf):
        entry = schema.get(f.number)
        if entry is None:
            continue
        field_name, repeated, child = entry
        if not repeated:
            if f.number in seen:
                raise InputError(f"not a plain ONNX model ({where}: field {kind}.{field_name} is given twice; "
                                 "protobuf would merge or override it, so what is shown would not be what runs)")
            seen.add(f.number)
        if kind == "tensor" and (f.number == 13 or (f.number == 14 and f.integer("data_location") == EXTERNAL)):
            raise InputError(f"{where}: a tensor keeps its data in an external file, outside every digest; edgemed "
                             "loads only models with every weight inside the .onnx file (save it with "
                             "onnx.save(model, path, save_as_external_data=False))")
        if (kind, f.number) in (("node", 4), ("function", 1)):
            name = f.text(field_name)
        elif (kind, f.number) in (("node", 7), ("function", 10)):
            domain = f.text(field_name)
        if child is None:
            continue
        if f.wire != LEN:
            raise InputError(f"not an ONNX model ({kind}.{field_name} has protobuf wire type {f.wire})")
        if child == "function":
            body: list[tuple[str, str]] = []
            key = _walk(f.payload(field_name), child, depth + 1, walk, where, body)
            if key in walk.functions:
                raise InputError(f"not a plain ONNX model ({where}: local function {key[1]} is defined twice)")
            walk.functions[key] = body
            continue
        if kind == "graph" and child == "node":
            walk.nodes += 1
        found = _walk(f.payload(field_name), child, depth + 1, walk, where, calls)
        if child == "node":
            calls.append(found)
    return domain, name


def _expanded(walk: Walk, where: str) -> int:
    """Nodes of the main graph once every local function call is inlined (memoised, cycles refused)."""
    size: dict[tuple[str, str], int] = {}
    active: set[tuple[str, str]] = set()
    cap = limit("graph_nodes") + 1

    def expand(key: tuple[str, str]) -> int:
        if key in size:
            return size[key]
        if key in active:
            raise InputError(f"not a plain ONNX model ({where}: local function {key[1]} calls itself)")
        if len(active) >= MAX_DEPTH:
            raise InputError(f"not a plain ONNX model ({where}: local functions call each other more than "
                             f"{MAX_DEPTH} levels deep)")
        active.add(key)
        total = 0
        for call in walk.functions[key]:
            total += 1 + (expand(call) if call in walk.functions else 0)
            if total > cap:
                break
        active.discard(key)
        size[key] = min(total, cap)
        return size[key]

    total = 0
    for call in walk.calls:
        total += 1 + (expand(call) if call in walk.functions else 0)
        if total > cap:
            break
    return total


def check_model(buf: memoryview, where: str = "model") -> Walk:
    """Walk the ModelProto in `buf`; raises InputError for the refusals above and LimitError past `graph_nodes`."""
    walk = Walk()
    _walk(buf, "model", 0, walk, where, walk.calls)
    check("graph_nodes", max(walk.nodes, _expanded(walk, where)), f"{where}: nodes with local functions inlined")
    return walk
