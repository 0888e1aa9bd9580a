#!/usr/bin/env bash
# Builds the wheel, installs it WITHOUT extras into a fresh venv, runs `edgemed info` and `edgemed run` on the
# tiny committed model, and proves torch and onnx are neither installed nor imported there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m build --wheel --no-isolation --outdir "$tmp/dist" . > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q -c constraints.txt "$tmp"/dist/edgemed-*.whl
"$tmp/venv/bin/edgemed" info tests/data/tiny_gru.onnx
"$tmp/venv/bin/edgemed" devices list
"$tmp/venv/bin/edgemed" profile tests/data/tiny_gru.onnx --device bedside-x86 --runs 50 --no-cold-start
"$tmp/venv/bin/edgemed" run tests/data/tiny_gru.onnx tests/data/tiny_vitals.npz --out "$tmp/preds.json"
"$tmp/venv/bin/python" - "$tmp/preds.json" <<'PYEOF'
import importlib.util, json, subprocess, sys
for pkg in ("torch", "onnx", "wfdb"):
    assert importlib.util.find_spec(pkg) is None, f"{pkg} is installed in the runtime-only venv"
preds = json.load(open(sys.argv[1]))["predictions"]
assert len(preds) == 12 and all(abs(sum(p["probabilities"].values()) - 1) < 1e-5 for p in preds)
code = ("import sys, numpy as np; from edgemed.runtime.model import EdgeModel;"
        "EdgeModel('tests/data/tiny_gru.onnx').predict(np.zeros((2, 5, 6)));"
        "sys.exit(1 if any(m.split('.')[0] in ('torch', 'onnx') for m in sys.modules) else 0)")
assert subprocess.run([sys.executable, "-c", code]).returncode == 0, "runtime imported torch or onnx"
PYEOF
if [ -f ../shared/data/mitdb/101.hea ]; then  # WFDB is read by the runtime itself; a vitals model refuses ECG leads
  out=$("$tmp/venv/bin/edgemed" run tests/data/tiny_gru.onnx ../shared/data/mitdb/101 2>&1 || true)
  echo "$out" | grep -q "the model needs" || { echo "WFDB record on a vitals model: $out"; exit 1; }
  echo "$out" | grep -q Traceback && { echo "traceback: $out"; exit 1; }
fi
out=$("$tmp/venv/bin/edgemed" verify-bundle tests/data --key tests/data/tiny_gru.onnx 2>&1 || true)
echo "$out" | grep -q "Traceback" && { echo "traceback: $out"; exit 1; }
out=$("$tmp/venv/bin/edgemed" train --model gru --data x --out y 2>&1 || true)
echo "$out" | grep -q "pip install 'edgemed\[train\]'" || { echo "heavy command did not name its extra: $out"; exit 1; }
out=$("$tmp/venv/bin/edgemed" score tests/data/tiny_gru.onnx tests/data --out "$tmp/score" 2>&1 || true)
echo "$out" | grep -q "pip install 'edgemed\[scale\]'" || { echo "score without Ray did not name its extra: $out"; exit 1; }
out=$("$tmp/venv/bin/edgemed" run tests/data/tiny_gru.onnx tests/data/tiny_vitals.npz --backend openvino 2>&1 || true)
echo "$out" | grep -q "pip install 'edgemed\[openvino\]'" || { echo "openvino backend did not name its extra: $out"; exit 1; }
echo "runtime-only wheel: 1 passed, 0 failed"
