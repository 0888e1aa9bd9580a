"""Device profiles, profiling and bundles (issue 6)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgemed.cli.main import cli
from edgemed.devices.profile import EMULATION_NOTE, DeviceError, list_profiles, load_profile
from edgemed.export.pipeline import export_target, target_from_checkpoint
from edgemed.export.torch_reference import TorchReference
from edgemed.runtime.deploy.bundle import BundleError, load_bundle, make_bundle, verify_bundle
from edgemed.runtime.ops.profile import SCHEMA, LatencyStats, profile

REQUIRED = {"bedside-x86", "raspberry-pi-5", "jetson-orin", "intel-openvino", "cuda-server", "host"}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def onnx_models(checkpoints, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dev")
    return {name: export_target(target_from_checkpoint(checkpoints[name]), root / f"{name}.onnx").path
            for name in ("cnn_gru", "gru")}


def test_builtin_profiles_load_and_host_is_detected():
    assert REQUIRED <= set(list_profiles())
    for name in list_profiles():
        p = load_profile(name)
        configured_budget = p.latency_budget_ms  # a profile field, not a measured time
        assert configured_budget > 0 and p.providers and p.threads >= 1
    host = load_profile("host")
    import os
    import platform

    assert host.arch == platform.machine() and host.cores == os.cpu_count() and host.emulation is None
    jetson = load_profile("jetson-orin")
    assert jetson.provider_names[0] == "TensorrtExecutionProvider" and jetson.precision == "fp16"
    assert jetson.emulation == EMULATION_NOTE  # no aarch64 Jetson here


@pytest.mark.parametrize("flags,isa", [
    ("fpu sse2 avx2 fma", "x86-avx2"),
    ("avx2 avx512f avx512_vnni avx512_bf16", "x86-vnni"),  # e.g. AMD EPYC Zen 4, Intel Ice Lake
    ("avx2 avx_vnni", "x86-vnni"),  # Alder Lake and later client CPUs
    ("avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8", "x86-amx"),  # Sapphire Rapids
    ("avx512_vnni amx_tile", "x86-vnni"),  # tiles without int8 are no help to int8 GEMMs
    ("avx512_vnnix", "x86-avx2"),  # whole flags only
])
def test_cpu_class_from_the_flags(flags, isa):
    from edgemed.devices.profile import ISA_CLASSES, isa_of_flags

    assert isa_of_flags(flags) == isa and isa in ISA_CLASSES
    assert load_profile("xeon-amx").isa == "x86-amx"


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda t: t.replace('cores = 2\n', ''), "missing field 'cores'"),
        (lambda t: t.replace('latency_budget_ms = 50.0', 'latency_budget_ms = -5'), "must be a positive number"),
        (lambda t: t.replace('latency_budget_ms = 50.0', 'latency_budget_ms = "fast"'), "'latency_budget_ms' must be"),
        (lambda t: t.replace('precision = "int8"', 'precision = "int4"'), "field 'precision' must be one of"),
        (lambda t: 'colour = "blue"\n' + t, "unknown field(s) ['colour']"),
        (lambda t: t.replace('[[providers]]\nname = "CPUExecutionProvider"', 'providers = []'), "'providers' is empty"),
        (lambda t: t + "[[[", "not a readable TOML profile"),
    ],
)
def test_bad_profile_files_name_the_field(tmp_path, edit, message):
    text = (Path(load_profile("bedside-x86").source)).read_text()
    path = tmp_path / "mine.toml"
    path.write_text(edit(text))
    with pytest.raises(DeviceError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_profile(str(path))


def test_devices_cli_and_unknown_device(onnx_models):
    listed = invoke("devices", "list")
    assert listed.exit_code == 0 and all(name in listed.output for name in REQUIRED)
    assert EMULATION_NOTE in listed.output
    shown = json.loads(invoke("devices", "show", "raspberry-pi-5", "--json").output)
    assert shown["arch"] == "aarch64" and shown["emulation"] == EMULATION_NOTE
    text = invoke("devices", "show", "jetson-orin").output  # read by a person: names, options, none
    assert "TensorrtExecutionProvider (trt_fp16_enable=" in text and "'name'" not in text
    assert "emulation            none" in invoke("devices", "show", "host").output
    tiny = Path(__file__).parent / "data" / "tiny_vitals.npz"
    emulated = invoke("run", onnx_models["gru"], tiny, "--device", "raspberry-pi-5")
    assert emulated.exit_code == 0 and f"device raspberry-pi-5: {EMULATION_NOTE}" in emulated.output
    bad = invoke("run", onnx_models["cnn_gru"], "x.npy", "--device", "toaster")
    assert bad.exit_code == 1 and "unknown device 'toaster'" in bad.output


def test_device_profile_sets_threads_and_providers(onnx_models):
    from edgemed.runtime.model import EdgeModel

    pi = EdgeModel(onnx_models["cnn_gru"], device="raspberry-pi-5")
    assert pi.threads == 2 and pi.providers.requested == ["CPUExecutionProvider"]
    assert EdgeModel(onnx_models["cnn_gru"], device="raspberry-pi-5", threads=1).threads == 1


def test_latency_stats_and_budget_share():
    s = LatencyStats.of("m", [1000.0] * 90 + [60000.0] * 10, batch=2, budget_ms=50.0)
    assert s.budget_miss_share == pytest.approx(0.1)
    assert s.p50 == 1000.0 and s.max == 60000.0
    assert s.throughput_per_s == pytest.approx(2 / (6900 / 1e6))


def test_profile_report_schema_and_emulation(onnx_models, checkpoints, tmp_path):
    int8 = tmp_path / "copy.onnx"
    shutil.copy(onnx_models["cnn_gru"], int8)
    torch_ref = {"pytorch": lambda buffers, threads: TorchReference(checkpoints["cnn_gru"], buffers, list(buffers[0]),
                                                                    threads)}
    result = profile(onnx_models["cnn_gru"], device="jetson-orin", runs=20, warmup=2, compare=[int8],
                     references=torch_ref, with_per_op=True, with_cold_start=True).to_dict()
    assert result["schema"] == SCHEMA and result["emulation"] == EMULATION_NOTE
    assert result["inputs"] == "random from the spec, sizes batch 1, samples 1008"  # words, not a dict's repr
    assert set(result["variants"]) == {"cnn_gru.onnx", "copy.onnx", "pytorch"}
    for v in result["variants"].values():
        assert v["latency_us"]["runs"] == 20 and v["latency_us"]["p99_9"] >= v["latency_us"]["p50"]
        assert 0.0 <= v["budget_miss_share"] <= 1.0
    assert result["threads"] == 2 and result["cold_start"]["torch_imported"] is False
    assert result["cold_start"]["session_ms"] > 0 and result["per_op"][0]["share"] > 0
    assert result["peak_rss_mb"] > 10 and result["providers"]["problems"]  # TensorRT and CUDA missing here


def test_profile_cli_json_plot_and_no_torch_in_process(onnx_models, tmp_path):
    code = (
        "import sys; from edgemed.cli.main import cli; "
        f"cli(['profile', {str(onnx_models['gru'])!r}, '--runs', '10', '--warmup', '1', '--no-cold-start', "
        f"'--json', {str(tmp_path / 'p.json')!r}, '--plot', {str(tmp_path / 'p.png')!r}], standalone_mode=False); "
        "sys.exit(3 if 'torch' in sys.modules else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["device"]["name"] == "cpu" and data["variants"]["gru.onnx"]["latency_us"]["runs"] == 10
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("suffix", ["", ".zip"])
def test_bundle_round_trip_and_tampering(onnx_models, tmp_path, suffix):
    out = tmp_path / f"bundle{suffix}"
    manifest = make_bundle([onnx_models["cnn_gru"], onnx_models["gru"]], "bedside-x86", out)
    assert manifest.device["name"] == "bedside-x86" and len(manifest.models) == 2
    assert set(manifest.files) == {"cnn_gru.onnx", "gru.onnx", "README.md", "cnn_gru.onnx.sha256", "gru.onnx.sha256",
                                   "cnn_gru.reference.npz", "gru.reference.npz"}
    assert any(r.startswith("onnxruntime==") for r in manifest.requirements)
    assert manifest.models[0].parity["passed"] is True and manifest.models[0].provenance
    assert verify_bundle(out).schema == "edgemed.bundle/1"
    assert load_bundle(out, "gru.onnx").threads == 1
    result = invoke("verify-bundle", out)
    assert result.exit_code == 0 and "7 files match" in result.output
    if suffix:
        with zipfile.ZipFile(out) as z:
            members = {n: z.read(n) for n in z.namelist()}
        members["gru.onnx"] = members["gru.onnx"][:-1] + b"\x00"
        with zipfile.ZipFile(out, "w") as z:
            for n, data in members.items():
                z.writestr(n, data)
    else:
        (out / "README.md").unlink()
    with pytest.raises(BundleError, match="refused: " + ("gru.onnx was altered" if suffix else "README.md is missing")):
        load_bundle(out)
    result = invoke("verify-bundle", out)
    assert result.exit_code == 1 and "refused" in result.output


def test_bundle_bad_input(onnx_models, tmp_path):
    result = invoke("bundle", onnx_models["gru"], "--device", "toaster", "-o", tmp_path / "b")
    assert result.exit_code == 1 and "unknown device" in result.output and not (tmp_path / "b").exists()
    (tmp_path / "exists").mkdir()
    result = invoke("bundle", onnx_models["gru"], "--device", "host", "-o", tmp_path / "exists")
    assert result.exit_code == 1 and "already exists" in result.output


def test_profile_on_real_data_rotates_its_windows(onnx_models, tmp_path):
    import numpy as np

    x = np.random.default_rng(0).normal(size=(20, 2, 160)).astype(np.float32)
    np.savez(tmp_path / "w.npz", X=x)
    result = profile(onnx_models["cnn_gru"], runs=8, warmup=1, data=tmp_path / "w.npz", batch=4,
                     with_cold_start=False)
    assert result.inputs == "w.npz: X [20, 2, 160]"
    assert result.variants["cnn_gru.onnx"].runs == 8
