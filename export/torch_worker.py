"""A PyTorch reference process for `edgemed profile --torch`, so the profiling process never imports torch.

Protocol on stdin/stdout, one line each: the parent writes `run K` and the worker answers with the
nanoseconds one inference on input buffer K took (measured inside the worker, so pipe time is excluded);
`quit` ends it. Usage: python -m edgemed.export.torch_worker CHECKPOINT INPUTS.npz THREADS
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from edgemed.train.checkpoint import load_checkpoint


def main() -> None:
    checkpoint, inputs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    model, _ = load_checkpoint(checkpoint)
    with np.load(inputs) as z:
        count = int(z["count"])
        buffers = [tuple(torch.from_numpy(z[f"{k}_{name}"]) for name in z["names"]) for k in range(count)]
    print("ready", flush=True)
    with torch.inference_mode():
        for line in sys.stdin:
            command = line.split()
            if not command or command[0] == "quit":
                break
            args = buffers[int(command[1]) % count]
            t0 = time.perf_counter_ns()
            model(*args)
            print(time.perf_counter_ns() - t0, flush=True)


if __name__ == "__main__":
    main()
