"""Which inputs parity runs: shapes around the export shape, real data, and streaming chunk by chunk."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgemed.core.examples import example_inputs, example_sizes
from edgemed.core.spec import ModelSpec
from edgemed.export.parity import Inputs, ParityCase, ParityRow, compare


def _fit(length: int, multiple: int, minimum: int, odd: bool) -> int:
    """Round to a valid length: a multiple when the spec needs one (an odd multiple if asked), odd otherwise."""
    length = max(length, minimum, multiple)
    if multiple > 1:
        k = max(1, length // multiple)
        return (k + 1 if odd and k % 2 == 0 else k) * multiple
    return length + 1 if odd and length % 2 == 0 else length


def shape_cases(spec: ModelSpec, export_length: int, seed: int = 0) -> list[ParityCase]:
    """Six or more shapes: batch 1 and larger; lengths shorter than, equal to and longer than the export's. A model
    whose other dynamic axes are not a sequence (image height and width) gets those varied too."""
    axis = spec.sequence_axis
    if axis is None:  # only the batch axis is dynamic
        return [ParityCase(f"batch {b}", example_inputs(spec, example_sizes(spec, b), seed=seed + b))
                for b in (1, 2, 3, 4, 7)]
    others = [n for n in spec.signal.dynamic_axes.values() if n not in ("batch", axis)]
    if others:
        return _spatial_cases(spec, seed)
    multiple = spec.streaming.chunk_multiple if spec.streaming else 1
    minimum = spec.signal.min_sizes.get(axis, 1)
    plan = [
        ("batch 1, export length", 1, export_length, False),
        ("batch 2, export length (export shape)", 2, export_length, False),
        ("batch 3, shorter, odd", 3, export_length // 3, True),
        ("batch 4, longer, odd", 4, 2 * export_length + 1, True),
        ("batch 1, minimum length", 1, minimum, False),
        ("batch 5, 3x longer", 5, 3 * export_length, False),
    ]
    cases = []
    for i, (name, batch, length, odd) in enumerate(plan):
        sizes = {**example_sizes(spec, batch), axis: _fit(length, multiple, minimum, odd)}
        cases.append(ParityCase(name, example_inputs(spec, sizes, seed=seed + i)))
        if spec.streaming and i in (0, 3):
            random_state = example_inputs(spec, sizes, seed=seed + i, state="random")
            cases.append(ParityCase(name + ", random state", random_state))
    return cases


def _spatial_cases(spec: ModelSpec, seed: int) -> list[ParityCase]:
    """Images: batch 1 to 5 at the model's own size, half of it, one and a half times it, odd and non-square."""
    base = example_sizes(spec, 1)
    axes = [n for n in spec.signal.dynamic_axes.values() if n != "batch"]
    minimum = max(spec.signal.min_sizes.get(a, 1) for a in axes)
    plan = [("batch 1, model size", 1, 1.0, 0), ("batch 2, model size", 2, 1.0, 0),
            ("batch 3, half size", 3, 0.5, 0), ("batch 4, 1.5x size, odd", 4, 1.5, 1),
            ("batch 1, minimum size", 1, 0.0, 0), ("batch 5, non-square", 5, 1.0, 2)]
    cases = []
    for i, (name, batch, scale, shape_kind) in enumerate(plan):
        sizes = {"batch": batch}
        for k, a in enumerate(axes):
            n = max(minimum, int(base[a] * scale))
            if shape_kind == 1:
                n += 1 - n % 2
            if shape_kind == 2:
                n = int(base[a] * (0.75 if k == 0 else 1.25))
            sizes[a] = n
        cases.append(ParityCase(name, example_inputs(spec, sizes, seed=seed + i)))
    return cases


def stream_rows(model: nn.Module, wrapper: nn.Module, spec: ModelSpec, run_onnx, signal: np.ndarray,
                chunk: int, state: str, source: str, atol: float, rtol: float, seed: int = 0,
                max_chunks: int = 24) -> list[ParityRow]:
    """Feed `signal` chunk by chunk through the ONNX streaming model, carrying its state, and compare the
    logits after every chunk with PyTorch on the whole prefix so far: the original model for a zero
    initial state, the streaming wrapper fed the whole prefix in one call for a random one. At most
    `max_chunks` chunks: the reference reruns every prefix, so its cost grows with their square."""
    s = spec.streaming
    axis = spec.signal.shape.index(s.chunk_axis)
    batch, total = signal.shape[0], min(signal.shape[axis] // chunk, max_chunks) * chunk
    init = example_inputs(spec, {**example_sizes(spec, batch), s.chunk_axis: chunk}, seed=seed, state=state)
    carried = {t.name: init[t.name] for t in s.state_inputs}
    got, ref = [], []
    with torch.no_grad():
        for end in range(chunk, total + 1, chunk):
            piece = np.take(signal, np.arange(end - chunk, end), axis=axis)
            outs = run_onnx({s.chunk_input: piece, **carried})
            carried = dict(zip((t.name for t in s.state_inputs), outs[1:], strict=True))
            prefix = torch.from_numpy(np.take(signal, np.arange(end), axis=axis))
            if state == "zeros":
                expected = model(prefix)
            else:
                expected = wrapper(prefix, *(torch.from_numpy(init[t.name]) for t in s.state_inputs))[0]
            got.append(outs[0])
            ref.append(expected.numpy())
    name = f"stream {total // chunk} chunks of {chunk}, {state} state"
    case = ParityCase(name, {s.chunk_input: signal}, source)
    rows = compare(case, ["logits"], [np.stack(got)], [np.stack(ref)], atol, rtol)
    return rows


def as_torch(spec: ModelSpec, inputs: Inputs) -> tuple[torch.Tensor, ...]:
    names = [t.name for t in spec.inputs] + ([t.name for t in spec.streaming.state_inputs] if spec.streaming else [])
    return tuple(torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in names)
