"""The architecture holds: imports flow one way through the layers (core at the bottom, cli on top), modules
import each other without cycles, and no source file or function outgrows its one job (docs/development.md)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

# Lowest first: a module may import its own layer and the layers below it, never one above.
LAYERS = ("edgemed.core", "edgemed.devices", "edgemed.runtime.onnx", "edgemed.runtime.engines",
          "edgemed.runtime.model", "edgemed.runtime.ecg", "edgemed.runtime.monitor", "edgemed.runtime.deploy",
          "edgemed.runtime.ops",
          "edgemed.train", "edgemed.export", "edgemed.cli")
PACKAGES = ("core", "devices", "runtime", "train", "export", "cli")
MAX_LINES, MAX_FUNCTION_LINES = 300, 60


def _layer(module: str) -> int | None:
    matches = [i for i, name in enumerate(LAYERS) if module == name or module.startswith(name + ".")]
    return max(matches, key=lambda i: len(LAYERS[i])) if matches else None


def _sources() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out["edgemed." + ".".join(parts)] = path
    return out


def _imports(path: Path, top_level_only: bool) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgemed"):
            found += [(node.module, node.lineno)]
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("edgemed")]
    return found


def test_imports_follow_the_layer_order():
    wrong = []
    for module, path in _sources().items():
        own = _layer(module)
        for name, line in _imports(path, top_level_only=False):
            other = _layer(name)
            if own is not None and other is not None and other > own:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({LAYERS[own]}) imports {name} ({LAYERS[other]})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_modules_import_each_other_without_cycles():
    sources = _sources()
    graph = {m: {n for n, _ in _imports(p, top_level_only=True) if n in sources and n != m}
             for m, p in sources.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state and (cycle := visit(other)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_source_file_or_function_outgrows_its_job():
    long = []
    for path in _sources().values():
        text = path.read_text()
        if text.count("\n") > MAX_LINES:
            long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {size} lines")
    assert not long, "over the limits:\n" + "\n".join(long)


def test_the_layer_check_would_see_an_upward_import(tmp_path):
    """The check itself: an import from core into the CLI is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from edgemed.cli.main import cli\n")
    assert _imports(bad, top_level_only=False)[0][0] == "edgemed.cli.main"
    assert _layer("edgemed.cli.main") > _layer("edgemed.core.limits")
    assert _layer("edgemed.runtime.ops.run") > _layer("edgemed.runtime.model.stream") > _layer("edgemed.runtime.onnx")
    assert Path(ROOT / "docs" / "development.md").read_text().count("runtime/engines") >= 1


def test_library_messages_name_parameters_not_flags():
    """The library speaks Python: its messages name parameters (`sampling_rate_hz`), which the CLI shows as flags
    (edgemed.cli.options.as_flags). Only the generated bundle README quotes a command line."""
    import io
    import re
    import tokenize

    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
    found = []
    for module, path in _sources().items():
        if module.startswith("edgemed.cli") or module == "edgemed.runtime.deploy.make":
            continue
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            text = tok.string
            docstring = text.lstrip("rbuRBUfF").startswith(('"""', "'''"))
            if tok.type == tokenize.STRING and " " in text and not docstring and flag.search(text):
                found.append(f"{path.relative_to(ROOT)}:{tok.start[0]} {flag.search(text).group(0)}")
    assert not found, "library messages naming CLI flags:\n" + "\n".join(found)
    from edgemed.cli.options import as_flags

    assert as_flags("pass `force` or set `sampling_rate_hz`") == "pass --force or set --sampling-rate"
