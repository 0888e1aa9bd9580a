"""Attack suite, round 2, class 1 and the checkpoint half of class 4: code that runs during `export`, and
checkpoints whose config asks for more than the file holds.

TorchScript is a program: loading and running it (parity runs its forward) executes whatever it holds, so every
TorchScript file needs `--trust-pickle`, like a pickle or a .pt2. Checkpoints are plain data: a config is checked
against the weights the file actually holds before any tensor is allocated.
"""

from __future__ import annotations

import io
import zipfile

import pytest
import torch
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.core.errors import CheckpointError, UnsafeFileError
from edgemed.export.foreign import FileKind, inspect_file
from edgemed.train.checkpoint import load_checkpoint, read_checkpoint

from helpers import snapshot


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


class _WritesAFile(torch.nn.Module):
    """No custom class, no __setstate__: its forward() maps a file and overwrites it."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        mapped = torch.from_file(self.target, shared=True, size=4, dtype=torch.uint8)
        mapped.fill_(88)
        return self.fc(x)


def test_torchscript_without_custom_classes_is_code_and_needs_the_opt_in(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("safe")
    path = tmp_path / "plain_ts.pt"
    torch.jit.save(torch.jit.script(_WritesAFile(str(victim))), path)
    assert inspect_file(path)[0] is FileKind.TORCHSCRIPT
    before = snapshot(tmp_path)
    result = invoke("export", path, "--input-shape", "2,4", "--dynamic-axis", "0=batch", "--labels", "a,b",
                    "-o", tmp_path / "out.onnx")
    assert result.exit_code == 1 and "TorchScript program" in result.output and "--trust-pickle" in result.output
    assert "Traceback" not in result.output
    assert victim.read_text() == "safe" and snapshot(tmp_path) == before


def _reframed(path, extra: dict[str, bytes]):
    """The archive at `path` with members added (read as data, written back as a new zip)."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    prefix = next(iter(members)).split("/", 1)[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name, data in extra.items():
            z.writestr(f"{prefix}/{name}", data)
    return buf.getvalue()


def test_a_checkpoint_carrying_torchscript_code_is_refused(checkpoints, tmp_path):
    """torch.load dispatches a zip with constants.pkl to torch.jit.load: such a file is code, not a checkpoint."""
    path = tmp_path / "mixed.pt"
    path.write_bytes(_reframed(checkpoints["gru"], {"constants.pkl": b"\x80\x02).", "code/__torch__.py": b""}))
    with pytest.raises(UnsafeFileError, match="TorchScript"):
        read_checkpoint(path)
    result = invoke("export", path, "-o", tmp_path / "out.onnx")
    assert result.exit_code == 1 and "refused" in result.output and not (tmp_path / "out.onnx").exists()


def test_an_archive_with_two_pickles_is_refused(checkpoints, tmp_path):
    """The scan must read the pickle torch.load reads; with two, it cannot know which."""
    path = tmp_path / "twins.pt"
    path.write_bytes(_reframed(checkpoints["gru"], {"more/data.pkl": b"\x80\x02}."}))
    with pytest.raises(UnsafeFileError, match="ambiguous"):
        read_checkpoint(path)
    with pytest.raises(UnsafeFileError, match="ambiguous|two members"):
        inspect_file(path)


@pytest.mark.parametrize("hidden", [60_000, 10**9, 10**400])
def test_a_checkpoint_config_larger_than_its_weights_is_refused_before_allocating(checkpoints, tmp_path, hidden):
    """A 159 KB checkpoint once asked for 19 GB: the config is compared with the weights on the meta device."""
    ckpt = torch.load(checkpoints["gru"], weights_only=True)
    ckpt["config"]["hidden_size"] = hidden
    path = tmp_path / "big.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="do not fit|out of range"):
        load_checkpoint(path)
    result = invoke("export", path, "-o", tmp_path / "big.onnx")
    assert result.exit_code == 1 and "Traceback" not in result.output and not (tmp_path / "big.onnx").exists()


def test_a_checkpoint_with_a_crafted_spec_is_refused(checkpoints, tmp_path):
    ckpt = torch.load(checkpoints["gru"], weights_only=True)
    ckpt["spec"]["preprocessing"]["window"] = {"kind": "rhythm", "seconds": float("inf")}
    path = tmp_path / "spec.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="window seconds"):
        load_checkpoint(path)
