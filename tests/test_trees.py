"""Boosted trees as tensors: the walk equals scikit-learn's trees (at the thresholds too), the ensemble weighs them
as documented, crafted options are refused, and every quantiser leaves the trees' decisions exact."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from edgemed.core.errors import ModelError
from edgemed.export.graph_passes import decision_nodes
from edgemed.export.quant_data import quantization_data
from edgemed.export.quantize import QuantEngine, QuantMode, quantize
from edgemed.runtime.onnx.info import describe
from edgemed.train.models import create_model
from edgemed.train.models.trees import BoostedTrees, TreeOptions


def _features(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 0.5, size=(n, 5)).astype(np.float32)
    y = (x[:, 0] > 1.0).astype(np.int64) + 2 * (x[:, 1] * x[:, 2] > 1.5)
    return x, np.minimum(y, 3)


@pytest.mark.parametrize("classes,relabel", [(4, None), (2, lambda y: (y > 0).astype(np.int64)),
                                             (5, None)])  # 5: the fifth class never occurs
def test_walk_equals_scikit_learn_even_at_the_thresholds(classes, relabel):
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _features()
    y = relabel(y) if relabel else y
    trees = BoostedTrees(TreeOptions(rounds=6, leaves=8, min_samples_leaf=10), classes, (), 5)
    opts = trees.fit(x, y, seed=0)
    assert 1 <= opts.depth <= 7
    ref = HistGradientBoostingClassifier(max_iter=6, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=10,
                                         early_stopping=False, random_state=0)
    ref.fit(x, y, sample_weight=1.0 / np.bincount(y)[y])
    # new rows whose values sit exactly on the float32 thresholds the trees test, and just either side
    threshold, feature = trees.threshold.numpy(), trees.feature.numpy()
    internal = np.flatnonzero(trees.left.numpy() != np.arange(len(threshold)))
    rows = []
    for towards in (None, np.float32(np.inf), np.float32(-np.inf)):
        on = _features(len(internal), seed=2)[0]
        t = threshold[internal] if towards is None else np.nextafter(threshold[internal], towards)
        on[np.arange(len(internal)), feature[internal]] = t
        rows.append(on)
    probe = np.concatenate([_features(500, seed=1)[0], *rows])
    with torch.no_grad():
        ours = torch.softmax(trees(torch.from_numpy(probe)), dim=1).numpy()
    theirs = np.zeros_like(ours)
    theirs[:, ref.classes_] = ref.predict_proba(probe)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    if classes == 5:
        assert ours[:, 4].max() < 1e-6  # a class the data lacks is all but impossible, not a NaN


def test_crafted_tree_options_are_refused():
    for bad, message in [({"rounds": 10**9}, "rounds"), ({"leaves": 1}, "leaves"), ({"weight": float("nan")},
                         "weight"), ({"depht": 3}, "unknown option"), ({"rounds": 1000, "leaves": 256}, "node slots")]:
        with pytest.raises(ModelError, match=message):
            create_model("beat_ensemble", channels=(8, 16), members=[{}], trees=bad, labels=("N", "S", "V"))
    with pytest.raises(ModelError, match="feature_names must be names"):
        create_model("beat_ensemble", channels=(8, 16), members=[{}], trees={"feature_names": 3})
    with pytest.raises(ModelError, match="not all among"):
        create_model("beat_ensemble", channels=(8, 16), members=[{}], trees={"feature_names": ["nope"]})


@pytest.mark.parametrize("table,index,value,message", [
    ("trees.feature", 0, 999, "feature index outside"),
    ("trees.left", 0, 10**6, "left child outside its tree"),
    ("trees.right", 1, 0, "right child outside its tree or not after its parent"),  # a loop back to the root
    ("trees.threshold", 0, float("nan"), "non-finite threshold"),
])
def test_crafted_tree_tables_are_refused_on_load(checkpoints, tmp_path, table, index, value, message):
    from click.testing import CliRunner

    from edgemed.cli.main import cli

    ckpt = torch.load(checkpoints["beat_ensemble"], weights_only=True)
    weights = dict(ckpt["state_dict"])
    tampered = weights[table].clone()
    internal = torch.nonzero(weights["trees.left"] != torch.arange(len(tampered))).flatten()
    tampered[internal[index]] = value
    weights[table] = tampered
    torch.save({**ckpt, "state_dict": weights}, tmp_path / "m.pt")
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "tables are not trees" in result.output and message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m.onnx").exists()


def test_ensemble_weighs_the_trees_as_documented():
    model = create_model("beat_ensemble", channels=(8, 16), members=[{"rr_skip": True}],
                         trees={"rounds": 3, "leaves": 4, "weight": 2.0}).eval()
    x, y = _features(400)
    model.trees.fit(np.concatenate([x, x[:, :1]], axis=1), np.minimum(y, 1), seed=0)  # 6 features: beat_cnn's default
    inputs = (torch.randn(5, 1, 64), torch.from_numpy(np.concatenate([x[:5], x[:5, :1]], axis=1)),
              torch.randn(5, 1, 64))
    with torch.no_grad():
        net = torch.log_softmax(model.members[0](*inputs), dim=1)
        trees = torch.log_softmax(model.trees(inputs[1]), dim=1)
        np.testing.assert_allclose(model(*inputs).numpy(), ((net + 2.0 * trees) / 3.0).numpy(), atol=1e-6)


def _with_leaf_values(path) -> tuple[ort.InferenceSession, str]:
    """The model with the trees' looked-up leaf values as an extra output."""
    model = onnx.load(str(path))
    keep = set(decision_nodes(model))
    leaf = [n for n in model.graph.node if n.name in keep and n.op_type == "Gather"
            and n.input[0] in {i.name for i in model.graph.initializer}
            and onnx.numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == n.input[0])).dtype
            == np.float32]
    name = leaf[-1].output[0]
    model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]), name


def test_every_quantiser_leaves_the_trees_decisions_exact(exported, tmp_path):
    """int8 static, int8 dynamic, fp16 and NNCF's int8 (where installed) round the networks but not a single tree
    decision: the leaf each tree reaches is the fp32 model's on every row (without the exclusion, the static
    quantiser rounds the RR input and the fp16 converter the thresholds, and leaves change)."""
    path = exported["beat_ensemble"]
    meta = describe(path).metadata
    cal, val = quantization_data(meta.spec, meta.provenance, None, None)
    rng = np.random.default_rng(0)
    n = 2048
    feeds = {"x": rng.normal(size=(n, 1, 128)).astype(np.float32),
             "rr": rng.gamma(2.0, 0.5, size=(n, meta.spec.inputs[1].shape[1])).astype(np.float32),
             "template": rng.normal(size=(n, 1, 128)).astype(np.float32)}
    ref, name = _with_leaf_values(path)
    expected = ref.run([name], feeds)[0]
    runs = [(QuantMode.STATIC, QuantEngine.ONNXRUNTIME), (QuantMode.DYNAMIC, QuantEngine.ONNXRUNTIME),
            (QuantMode.FP16, QuantEngine.ONNXRUNTIME)]
    if importlib.util.find_spec("nncf") is not None:
        runs.append((QuantMode.STATIC, QuantEngine.NNCF))
    for mode, engine in runs:
        out = tmp_path / f"{mode.value}-{engine.value}.onnx"
        result = quantize(path, out, mode, cal, val, max_drop=100, engine=engine)
        assert result.report.to_dict()["graph_passes"]["kept_float_for_decisions"] > 0
        got, got_name = _with_leaf_values(out)
        np.testing.assert_array_equal(got.run([got_name], feeds)[0], expected, err_msg=out.name)


def test_tree_options_from_the_command_line(tmp_path):
    """`-c trees.KEY=VALUE` sets one tree option; over a recipe the others stay the recipe's."""
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from edgemed.cli.main import cli
    from edgemed.train.recipes import MITDB_RECIPE
    from edgemed.train.request import TrainRequest, resolve

    *_, config = resolve(TrainRequest(data="x", out=Path("y"), recipe="mitdb",
                                      model_config={"trees": {"rounds": 50}}))
    assert config["trees"] == {**MITDB_RECIPE.model_config["trees"], "rounds": 50}
    assert config["members"] == MITDB_RECIPE.model_config["members"]
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--model", "beat_ensemble", "--data", "synthetic-beats", "--samples", "10",
                                 "--epochs", "1", "-c", "channels=8", "-c", "trees.rounds=3", "-c", "trees.leaves=4",
                                 "-c", "trees.min_samples_leaf=5", "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["config"]["trees"]
    assert saved["rounds"] == 3 and saved["leaves"] == 4 and saved["depth"] >= 1
    bad = runner.invoke(cli, ["train", "--model", "beat_ensemble", "--data", "synthetic-beats", "-c", "trees=3",
                              "-c", "trees.rounds=3", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "both as a value and as a mapping" in bad.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_the_export_and_the_model_card_record_the_trees(exported):
    """What was shipped: the exported file's provenance holds the configuration as trained, trees included, and the
    model card prints it."""
    from edgemed.runtime.ecg.model_card import _hyperparameters
    from edgemed.runtime.model import EdgeModel

    model = EdgeModel(exported["beat_ensemble"])
    trees = model.metadata.provenance["model_config"]["trees"]
    assert trees["rounds"] == 4 and trees["leaves"] == 4 and trees["depth"] >= 1
    line = _hyperparameters(model)[0]
    assert line.startswith("Configuration: `") and '"trees": {' in line and '"calibration"' in line
