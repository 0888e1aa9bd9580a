"""A bound on the work an engine does while loading a model: the nodes that compute on constants alone.

onnxruntime and OpenVINO fold such nodes when they load a file, before any run and its deadline (`watchdog`): a
1 KB file that makes a 2048 x 2048 matrix and multiplies it by itself twenty times held a load for 4 s on
onnxruntime and 26 s on OpenVINO, and nothing stops it asking for hours. Exporters fold constants themselves, so
the few left are small (torch's padding arithmetic, int8 weights dequantised). Before any engine sees a file, each
constant gets an upper bound on its element count: initializers and Constant nodes from their dims, a
ConstantOfShape from its shape's values, every other result from its inputs' bounds by its operator's rule (the
same count, at most the first input's, the sum, the broadcast shape, or the product). All folded results
together must stay within the `array_mb` limit, counted as float32 values. An operator with no rule here (Expand,
Tile, Range, Resize, Pad, Conv, Loop, ...) is refused where it would be folded. Subgraphs see their outer graph's
constants; a local function is counted at each call with its arguments' bounds, as the engines inline it.
"""

from __future__ import annotations

import math
from collections import ChainMap, defaultdict
from collections.abc import Mapping

from edgemed.core.errors import InputError, LimitError
from edgemed.core.limits import LIMITS, limit_bytes
from edgemed.runtime.onnx.constants import Const, Graph, Node, attribute, read_graph
from edgemed.runtime.onnx.proto import MAX_DIMS, fields

SAME = frozenset("Identity Cast CastLike DequantizeLinear QuantizeLinear Neg Abs Relu LeakyRelu Elu Selu Sigmoid "
                 "HardSigmoid Tanh Sqrt Exp Log Reciprocal Floor Ceil Round Not Sign Erf Softmax LogSoftmax IsNaN "
                 "IsInf Clip Sin Cos".split())  # elementwise: the same shape
RESHAPED = frozenset("Transpose Reshape Squeeze Unsqueeze Flatten".split())  # the same count
SMALLER = frozenset("Slice ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ArgMax "
                    "ArgMin".split())  # at most the first input's count
BROADCAST = frozenset("Add Sub Mul Div Pow Mod Max Min Sum Mean Equal Less Greater LessOrEqual GreaterOrEqual And "
                      "Or Xor Where BitShift".split())
PRODUCT = frozenset("MatMul Gemm Gather GatherElements".split())  # at most the product of the inputs' counts
DOMAINS = ("", "ai.onnx", "com.microsoft")


def in_order(nodes: list[Node]) -> list[Node]:
    """The nodes with each after those making its inputs: engines sort a graph themselves, so the file's order
    proves nothing. Nodes in a cycle are left out (no engine loads them)."""
    producer = {out: i for i, node in enumerate(nodes) for out in node.outputs if out}
    consumers: dict[int, list[int]] = defaultdict(list)
    waiting = [0] * len(nodes)
    for j, node in enumerate(nodes):
        for name in node.inputs:
            if name in producer:
                consumers[producer[name]].append(j)
                waiting[j] += 1
    ready = [i for i, w in enumerate(waiting) if w == 0]
    order = []
    while ready:
        i = ready.pop()
        order.append(nodes[i])
        for j in consumers[i]:
            waiting[j] -= 1
            if not waiting[j]:
                ready.append(j)
    return order


def _broadcast(args: list[Const]) -> Const:
    """Numpy's broadcast shape where every shape is known and they agree; else the product of the counts."""
    shapes = [a.shape for a in args]
    if all(s is not None for s in shapes):
        rank = max(len(s) for s in shapes)
        padded = [(1,) * (rank - len(s)) + s for s in shapes]
        out = tuple(max(dims) for dims in zip(*padded, strict=True))
        if all(d in (1, o) for s in padded for d, o in zip(s, out, strict=True)):
            return Const(math.prod(out), out)
    return Const(math.prod(a.count for a in args))


def _matmul(a: Const, b: Const) -> tuple[Const, int] | None:
    """A product of two matrices of known shapes, and its multiply-adds."""
    if a.shape is None or b.shape is None or len(a.shape) != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[0]:
        return None
    (n, k), m = a.shape, b.shape[1]
    return Const(n * m, (n, m)), n * k * m


def _result(op: str, args: list[Const]) -> Const | None:
    """The bound of a folded node's result, or None when its operator has no rule here."""
    first = args[0]
    if op in SAME:
        return Const(first.count, first.shape)
    if op in RESHAPED or op in SMALLER:
        return Const(first.count)
    if op == "Concat":
        return Const(sum(a.count for a in args))
    if op in BROADCAST:
        return _broadcast(args)
    if op in PRODUCT:
        return Const(math.prod(a.count for a in args))
    if op == "Shape":
        return Const(len(first.shape), (len(first.shape),), first.shape) if first.shape is not None else \
            Const(MAX_DIMS)
    if op == "Size":
        return Const(1, (), (first.count,))
    if op == "ConstantOfShape" and first.values is not None:
        shape = tuple(max(v, 0) for v in first.values)
        return Const(math.prod(shape), shape)
    return None


class Folding:
    """The folding of one model: the work counted so far (elements made or read) against the cap."""

    def __init__(self, functions: dict[tuple[str, str], Graph], where: str, fixed_inputs: bool = False) -> None:
        self.functions, self.where, self.work, self.fixed_inputs = functions, where, 0, fixed_inputs
        self.cap = limit_bytes("array_mb") // 4
        self._calls: dict[tuple, tuple[int, list[Const | None]]] = {}

    def graph(self, graph: Graph, outer: Mapping[str, Const | None],
              args: dict[str, Const] | None = None) -> Mapping[str, Const | None]:
        """Count what would be folded in `graph` (a function's body: with these arguments); the constants by name
        after it. A graph input shadows an outer constant, and an initializer of its name is only its default
        (before ONNX IR 4, when every initializer was listed as an input, engines fold it as a constant).
        Subgraphs are counted last, when every constant of this graph they may read is known."""
        inputs = set(graph.inputs)
        local = dict(graph.initializers if self.fixed_inputs else
                     {k: v for k, v in graph.initializers.items() if k not in inputs})
        local.update(args or {})
        # Layered, not copied: a model may hold many subgraphs under many constants.
        known: ChainMap[str, Const | None] = ChainMap(local, dict.fromkeys(inputs - local.keys()), outer)
        subgraphs: list[memoryview] = []
        for node in in_order(graph.nodes):
            parsed = [attribute(a, node.op == "Constant") for a in node.attributes]
            subgraphs += [sub for _, _, graphs in parsed for sub in graphs]
            results = self.node(node, parsed, known)
            known.update((o, c) for o, c in zip(node.outputs, results, strict=False) if c is not None and o)
        for sub in subgraphs:
            self.graph(read_graph(sub), known)
        return known

    def node(self, node: Node, parsed: list, known: Mapping[str, Const | None]) -> list[Const | None]:
        """The constants a node makes when the engines fold it (none when it waits for an input)."""
        if node.op == "Constant" and node.domain in DOMAINS:
            return [next((c for _, c, _ in parsed if c is not None), Const(0))]
        args = [known.get(name) for name in node.inputs if name]
        if (node.domain, node.op) in self.functions:
            return self._call((node.domain, node.op), args)
        if not args or any(a is None for a in args):
            return []  # computed at run time, under the run deadline
        exact = _matmul(*args) if node.op == "MatMul" and len(args) == 2 else None  # type: ignore[arg-type]
        result = exact[0] if exact else _result(node.op, args) if node.domain in DOMAINS else None  # type: ignore
        if result is None:
            raise InputError(f"{self.where}: a {node.op} node computes on constants alone, so every engine would "
                             "compute it while loading, and edgemed cannot bound that work; fold the model's "
                             "constants before loading it (edgemed's own exports carry none of this kind)")
        self._count((exact[1] if exact else result.count) + sum(a.count for a in args))  # type: ignore[union-attr]
        return [result] * len(node.outputs)

    def _call(self, key: tuple[str, str], args: list[Const | None]) -> list[Const | None]:
        """A local function as the engines inline it: its body folded with these arguments."""
        memo = (key, tuple(args))
        if memo not in self._calls:
            body, before = self.functions[key], self.work
            known = self.graph(body, {}, {p: a for p, a in zip(body.inputs, args, strict=False) if a is not None})
            self._calls[memo] = (self.work - before, [known.get(o) for o in body.outputs])
        else:
            self._count(self._calls[memo][0])
        return self._calls[memo][1]

    def _count(self, elements: int) -> None:
        self.work += elements
        if self.work > self.cap:
            raise LimitError(f"{self.where}: the nodes that compute on constants alone, which every engine computes "
                             f"while loading, would make or read over {self.cap:,} values; the limit is "
                             f"{LIMITS['array_mb'].env} ({limit_bytes('array_mb') // 2**20:,} MB as float32): fold "
                             "the model's constants before loading it, or raise the limit if it is genuine")


def check_folding(buf: memoryview, where: str = "model") -> int:
    """Refuse a model whose constant folding has no bound or exceeds the limit (above); the work counted."""
    graph, functions, ir_version = None, {}, 0
    for f in fields(buf):
        if f.number == 1:
            ir_version = f.integer("ir_version")
        elif f.number == 7:
            graph = read_graph(f.payload("graph"))
        elif f.number == 25:
            body = f.payload("function")
            head = {g.number: g.text("function field") for g in fields(body) if g.number in (1, 10)}
            functions[(head.get(10, ""), head.get(1, ""))] = read_graph(body, function=True)
    folding = Folding(functions, where, fixed_inputs=ir_version < 4)
    if graph is not None:
        folding.graph(graph, {})
    return folding.work
