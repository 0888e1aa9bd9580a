"""The PyTorch original timed beside ONNX variants by `edgemed profile --torch`, in a worker subprocess
(`edgemed.export.torch_worker`) so the profiling process never imports torch. It implements the runtime
profiler's `Reference` protocol."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgemed.core.errors import EdgemedError


class TorchReference:
    def __init__(self, checkpoint: Path, buffers: list[dict[str, np.ndarray]], names: list[str], threads: int):
        self._dir = tempfile.TemporaryDirectory()
        path = Path(self._dir.name) / "inputs.npz"
        arrays = {f"{k}_{n}": b[n] for k, b in enumerate(buffers) for n in names}
        np.savez(path, count=len(buffers), names=np.array(names), **arrays)
        self.proc = subprocess.Popen([sys.executable, "-m", "edgemed.export.torch_worker", str(checkpoint), str(path),
                                      str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline().strip()
        if ready != "ready":
            err = self.proc.stderr.read().strip().splitlines()
            self.close()
            raise EdgemedError(f"the PyTorch reference did not start: {err[-1] if err else ready}")

    def run_us(self, k: int) -> float:
        self.proc.stdin.write(f"run {k}\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline()) / 1e3

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self._dir.cleanup()
