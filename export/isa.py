"""Int8 results on each instruction-set class a device may have (`edgemed.devices.profile.ISA_CLASSES`).

onnxruntime's int8 kernels differ by CPU: x86 with VNNI accumulates u8 x s8 products exactly in 32 bits, and so
do AMX tiles (`x86-amx`, a kernel of its own since onnxruntime 1.14); x86 without VNNI (AVX2) adds pairs of them in
16 bits first (`vpmaddubsw`), which saturates when large activations meet large weights; aarch64 has its own
dot-product kernels. The same int8 file can then give different logits on
different bedside CPUs. This module runs a model on a class other than the host's under qemu-user:

- `x86-avx2` on an x86 host: the same Python under `qemu-x86_64-static -cpu Haswell` (AVX2, no VNNI);
- `aarch64`: an aarch64 Python with numpy and onnxruntime, named by `EDGEMED_AARCH64_PYTHON` (a command; see
  `scripts/setup_aarch64.sh`, which builds one from Debian's and PyPI's aarch64 packages).

Only onnxruntime and numpy run there (`RUNNER`), on the inputs given; the caller compares the logits.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgemed.core.errors import EdgemedError
from edgemed.devices.profile import host_isa

RUNNER = """
import sys
import numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.log_severity_level = 3
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
data = np.load(sys.argv[2])
names = [i.name for i in s.get_inputs()]
n = data[names[0]].shape[0]
out = [s.run(None, {k: data[k][i : i + 64] for k in names})[0] for i in range(0, n, 64)]
np.save(sys.argv[3], np.concatenate(out))
"""
EMULATED_X86 = "Haswell"  # AVX2 without VNNI
TIMEOUT_S = 1800


def reachable(classes: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """For each class: None when it can be run here, else why not."""
    host = host_isa()
    out: dict[str, str | None] = {}
    for c in classes:
        if c == host:
            out[c] = None
        elif c == "x86-avx2" and host.startswith("x86"):
            out[c] = None if shutil.which("qemu-x86_64-static") else "qemu-x86_64-static is not installed"
        elif c in ("x86-vnni", "x86-amx"):
            out[c] = (f"{c} cannot be emulated (qemu implements neither VNNI nor AMX): run `edgemed quantize` on a "
                      f"{c} machine to check it")
        elif c == "aarch64":
            out[c] = None if os.environ.get("EDGEMED_AARCH64_PYTHON") else (
                "no aarch64 Python: set EDGEMED_AARCH64_PYTHON (scripts/setup_aarch64.sh builds one)")
        else:
            out[c] = f"no way to run {c} on this {host} machine"
    return out


def _command(isa: str) -> list[str]:
    if isa == host_isa():
        return [sys.executable]
    if isa == "x86-avx2":
        return ["qemu-x86_64-static", "-cpu", EMULATED_X86, sys.executable]
    if isa == "aarch64" and os.environ.get("EDGEMED_AARCH64_PYTHON"):
        return shlex.split(os.environ["EDGEMED_AARCH64_PYTHON"])
    raise EdgemedError(f"cannot run the {isa} class here: {reachable([isa])[isa]}")


def logits_on(isa: str, model: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The model's first output for `feeds` (batched by 64) computed on instruction-set class `isa`."""
    with tempfile.TemporaryDirectory(prefix="edgemed-isa-") as tmp:
        inputs, out = Path(tmp) / "inputs.npz", Path(tmp) / "logits.npy"
        np.savez(inputs, **feeds)
        proc = subprocess.run([*_command(isa), "-c", RUNNER, str(model), str(inputs), str(out)],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        if proc.returncode != 0 or not out.is_file():
            last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            raise EdgemedError(f"running {model.name} as {isa} failed: {last[:300]}")
        return np.load(out)
