"""The wheel's package list matches the folders, and the runtime stays free of torch and onnx."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from conftest import ROOT

NOT_PACKAGES = {"tests", "benchmarks", "scripts", "build", "dist"}


def _folders_with_code() -> set[str]:
    found = set()
    for init in ROOT.glob("**/__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts and not rel.parts[0].startswith(".") and rel.parts[0] not in NOT_PACKAGES:
            found.add("edgemed." + ".".join(rel.parts))
    return found


def test_wheel_package_list_matches_folders():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages, dirs = set(config["packages"]), config["package-dir"]
    assert packages == _folders_with_code(), "pyproject.toml [tool.setuptools] packages is out of step with folders"
    for pkg in packages:
        assert dirs[pkg] == pkg.removeprefix("edgemed.").replace(".", "/")


def test_every_python_folder_is_a_package():
    """A folder of .py files without __init__.py would silently vanish from the wheel."""
    for py in ROOT.glob("*/**/*.py"):
        rel = py.relative_to(ROOT)
        if rel.parts[0].startswith(".") or rel.parts[0] in NOT_PACKAGES:
            continue
        assert (py.parent / "__init__.py").exists(), f"{py.parent} has Python files but no __init__.py"


def test_runtime_imports_neither_torch_nor_onnx():
    code = (
        "import sys, edgemed.runtime, edgemed.core.spec, edgemed.core.metrics, edgemed.cli.main;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx'));"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"runtime import pulled in: {proc.stdout} {proc.stderr}"


def test_cli_help_does_not_import_torch():
    code = (
        "import sys; from click.testing import CliRunner; from edgemed.cli.main import cli;"
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output;"
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_built_wheel_contains_every_subpackage(tmp_path):
    """Builds the real wheel (no isolation: offline) and checks each folder's modules are inside it."""
    import zipfile

    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                           str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("edgemed-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for pkg in _folders_with_code():
        folder = ROOT / pkg.removeprefix("edgemed.").replace(".", "/")
        for module in folder.glob("*.py"):
            arcname = "/".join(pkg.split(".")) + "/" + module.name
            assert arcname in names, f"{arcname} is missing from the wheel"
    assert not any(n.startswith(("edgemed/__init__", "tests/")) for n in names), "edgemed must stay a namespace"
    for profile in (ROOT / "devices" / "profiles").glob("*.toml"):
        assert f"edgemed/devices/profiles/{profile.name}" in names, f"{profile.name} is missing from the wheel"
