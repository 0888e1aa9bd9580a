"""The accuracy-aware fallback: int8 products left float, most harmful first, until the gate passes."""

from __future__ import annotations

import json
from pathlib import Path

from edgemed.export.quant_fallback import revert_until_gate

HARM = {"a": 0.5, "b": 2.0, "c": 1.0}  # macro-F1 points each product costs in int8


def _fake(tmp_path: Path, base: float = 3.5):
    calls: list[list[str]] = []

    def convert(left_float: list[str], path: Path) -> bool:
        calls.append(sorted(left_float))
        path.write_text(",".join(sorted(left_float)))
        return True

    def drop_of(path: Path) -> float:
        left = [n for n in path.read_text().split(",") if n]
        return base - sum(HARM[n] for n in left)

    out = tmp_path / "q.onnx"
    out.write_text("")
    return out, convert, drop_of, calls


def test_the_most_harmful_products_are_left_float_until_the_gate_passes(tmp_path):
    out, convert, drop_of, calls = _fake(tmp_path)
    record = revert_until_gate(out, ["a", "b", "c"], convert, drop_of, 0.5, tmp_path)
    assert record["drop_points_each_alone"] == {"a": 3.0, "b": 1.5, "c": 2.5}
    assert record["left_float"] == ["b", "c"] and out.read_text() == "b,c"  # b alone (1.5) fails; b and c (0.5) pass
    assert record["drop_points_before"] == 3.5 and record["drop_points_after"] == 0.5
    assert calls == [["a"], ["b"], ["c"], ["b"], ["b", "c"]]


def test_a_passing_file_or_one_without_products_is_left_alone(tmp_path):
    out, convert, drop_of, calls = _fake(tmp_path, base=0.4)
    assert revert_until_gate(out, ["a", "b", "c"], convert, drop_of, 0.5, tmp_path) is None
    assert calls == [] and out.read_text() == ""
    out, convert, drop_of, calls = _fake(tmp_path, base=3.0)
    assert revert_until_gate(out, [], convert, drop_of, 0.5, tmp_path) is None
    assert calls == [] and out.read_text() == ""


def test_when_nothing_passes_every_product_is_left_float(tmp_path):
    out, convert, drop_of, _ = _fake(tmp_path, base=10.0)
    record = revert_until_gate(out, ["a", "b", "c"], convert, drop_of, 0.5, tmp_path)
    assert record["left_float"] == ["b", "c", "a"] and out.read_text() == "a,b,c"
    assert record["drop_points_after"] == 6.5


def test_a_trial_that_differs_on_another_cpu_class_is_not_kept(exported, tmp_path, monkeypatch):
    """Every trial keeps the chosen scheme and is checked on the target classes as the search's file was; one that
    differs there cannot pass, and the kept file's own record replaces the search's."""
    import shutil

    from edgemed.export import quant_fallback
    from edgemed.export.quant_data import quantization_data
    from edgemed.export.quantize import QuantMode, quantize
    from edgemed.runtime.onnx.info import describe

    def differs(pre, out, *args, **kwargs):
        shutil.copyfile(pre, out)
        return {"chosen": "u8s8", "targets": ["x86-vnni", "aarch64"], "tried": [
            {"scheme": "u8s8", "result": "differs by more than 0.05 on another class"}]}

    monkeypatch.setattr(quant_fallback, "static_by_scheme", differs)
    meta = describe(exported["cnn_gru"]).metadata
    cal, val = quantization_data(meta.spec, meta.provenance, None, None)
    report = quantize(exported["cnn_gru"], tmp_path / "q.onnx", QuantMode.STATIC, cal, val, max_drop=-100,
                      force_gate=True, min_product_weights=0).report.to_dict()
    fallback, scheme = report["graph_passes"]["accuracy_fallback"], report["graph_passes"]["scheme"]
    assert set(fallback["drop_points_each_alone"].values()) == {None}  # each trial alone differed elsewhere
    assert [s["drop_points"] for s in fallback["steps"]][:-1] == [None] * (len(fallback["steps"]) - 1)
    assert len(fallback["left_float"]) == fallback["products_int8_before"] and fallback["drop_points_after"] == 0.0
    assert report["graph_passes"]["int8_nodes"] == 0
    assert scheme["chosen"] == "none: every product float" and json.loads(json.dumps(report, allow_nan=False)) == report
