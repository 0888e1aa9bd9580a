"""Meta-tests of the CLI: every command has help and a page in the docs; heavy commands degrade cleanly."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from edgemed.cli.main import LAZY_COMMANDS, cli

from conftest import ROOT


def _all_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    ctx = click.Context(group)
    out = {}
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        out[f"{prefix}{name}"] = cmd
        if isinstance(cmd, click.Group):
            out.update(_all_commands(cmd, f"{prefix}{name} "))
    return out


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "edgemed, version" in result.output


def test_every_command_has_help_and_a_docs_page():
    nav = (ROOT / "mkdocs.yml").read_text()
    commands = _all_commands(cli)
    assert set(LAZY_COMMANDS) <= set(commands)
    for name, cmd in commands.items():
        assert cmd.help and len(cmd.help.strip()) > 10, f"edgemed {name} has no help text"
        result = CliRunner().invoke(cli, [*name.split(), "--help"])
        assert result.exit_code == 0, result.output
        page = ROOT / "docs" / "commands" / f"{name.split()[0]}.md"
        assert page.is_file(), f"edgemed {name} has no page {page.relative_to(ROOT)}"
        assert f"edgemed {name}" in page.read_text(), f"{page.name} does not show `edgemed {name}`"
        assert f"commands/{page.name}" in nav, f"{page.name} is not in the mkdocs nav"


def test_docs_build_strictly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_heavy_command_without_its_extra_says_what_to_install():
    """Simulates the runtime-only install: torch cannot be imported."""
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from edgemed.cli.main import cli\n"
        "cli(['train', '--model', 'gru', '--data', 'x', '--out', 'y'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "pip install 'edgemed[train]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "edgemed.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Usage: edgemed" in proc.stdout


def test_commands_that_need_no_session_do_not_load_onnxruntime():
    """The runtime commands' help and `info` never start onnxruntime (75+ ms and 50 MB); `--help` and `info` not
    even numpy; the version is looked up only when asked. The CLI's option lists come from light modules."""
    runtime = [name for name, entry in LAZY_COMMANDS.items() if entry[2] == "runtime"]
    code = (
        "import sys\n"
        "from edgemed.cli.main import cli\n"
        "assert 'importlib.metadata' not in sys.modules, 'the version was looked up at import'\n"
        "def call(args, banned):\n"
        "    try:\n"
        "        cli(args)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (args, exc.code)\n"
        "    bad = [m for m in banned if m in sys.modules]\n"
        "    assert not bad, f'{args} loaded {bad}'\n"
        "call(['--help'], ['numpy', 'onnxruntime'])\n"
        "call(['info', sys.argv[1]], ['numpy', 'onnxruntime'])\n"
        "for name in sys.argv[2:]:\n"
        "    call([name, '--help'], ['onnxruntime'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "tests/data/tiny_gru.onnx"), *runtime],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_output_folders_are_checked_before_any_work(tmp_path):
    """A file where a results folder belongs, or results that would be replaced without --force, stop the command
    before it loads a model or reads a record."""
    from edgemed.core.atomic import check_output_folder
    from edgemed.core.errors import OverwriteError

    taken = tmp_path / "taken"
    taken.write_text("someone's file")
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "no-model.onnx"), str(tmp_path), "--out", str(taken)])
    assert result.exit_code == 1 and "exists and is not a folder" in result.output
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "evaluation.md").write_text("earlier results")
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "no-model.onnx"), str(tmp_path),
                                      "--out", str(tmp_path / "ev")])
    assert result.exit_code == 1 and "already exists" in result.output and "--force" in result.output
    assert (tmp_path / "ev" / "evaluation.md").read_text() == "earlier results"
    assert check_output_folder(tmp_path / "new", ["a.json"]) == tmp_path / "new"
    with pytest.raises(OverwriteError, match="not a folder"):
        check_output_folder(taken, what="--out")


def test_an_unanticipated_error_is_one_line_with_its_own_exit_code(tmp_path, monkeypatch):
    """A bug still ends in one line (exit 70, not the 1 of a refused input); EDGEMED_DEBUG shows the traceback."""
    from edgemed.cli import describe as runtime_cli

    def broken(path):
        raise ValueError("an unforeseen case")

    monkeypatch.setattr(runtime_cli, "describe", broken)
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "m.onnx")])
    assert result.exit_code == 70 and "Traceback" not in result.output
    assert result.output.count("\n") == 1 and "internal error (ValueError: an unforeseen case)" in result.output
    monkeypatch.setenv("EDGEMED_DEBUG", "1")
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "m.onnx")])
    assert isinstance(result.exception, ValueError)


def test_warnings_are_one_line_in_every_command(exported, tmp_path):
    """A model without sidecar or metadata warns in `profile` and `monitor` as in `run`: `warning: ...` on one
    line, not Python's file, line number and source text."""
    import shutil

    import onnx

    model = onnx.load(exported["cnn_gru"])
    del model.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(model, path)
    result = CliRunner().invoke(cli, ["profile", str(path), "--runs", "2", "--warmup", "1", "--no-cold-start"])
    assert result.exit_code == 0, result.output
    assert "warning: bare.onnx has no edgemed metadata" in result.output
    assert ".py:" not in result.output and "Warning:" not in result.output
    shutil.copy(exported["beat_cnn"], tmp_path / "beat.onnx")  # no sidecar beside it
    result = CliRunner().invoke(cli, ["monitor", str(tmp_path / "beat.onnx"), "-", "-q"], input=b"")
    assert "warning: beat.onnx has no beat.onnx.sha256 sidecar" in result.output and ".py:" not in result.output
