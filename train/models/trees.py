"""Gradient-boosted decision trees as a torch module, so that they join a network in one ONNX graph.

Fitted by scikit-learn's histogram gradient boosting (`fit`), then held as tensors: per node its feature, threshold,
children and leaf value, the trees of one boosting round side by side, one per class. `forward` walks every tree at
once, one level per step (a gather of each tree's current node, a comparison, a choice of child): plain Gather,
GatherElements, LessOrEqual and Where nodes in ONNX, exact in float32 on every engine. The quantisers leave these
nodes in float (`edgemed.export.graph_passes.decision_nodes`): a threshold test flips under rounding.

Measured on MIT-BIH DS1 (patient-wise cross-validation, docs/results/mitdb_cv.md): a short boost over the beat's
rhythm and morphology features ranks S beats better than the CNN (AUROC 0.93-0.95 against 0.82-0.87); long boosts
learn the training patients' own rhythms and lose S on new patients.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from edgemed.core.errors import ModelError

ABSENT_CLASS_SCORE = -20.0  # raw score of a class the training data lacked (probability about 2e-9)
MAX_ROUNDS, MAX_LEAVES = 1000, 256  # bounds on a config read from a checkpoint
MAX_NODE_SLOTS = 2**20  # rounds x classes x nodes: 40 MB of buffers at most
CONVERSION_ATOL = 1e-4  # scikit-learn sums in float64, the graph in float32; a wrong conversion is off by far more


@dataclass(frozen=True)
class TreeOptions:
    """How the trees are grown and how much they count in an ensemble."""

    rounds: int = 30
    leaves: int = 15
    learning_rate: float = 0.05
    min_samples_leaf: int = 200
    weight: float = 2.0  # their log-probabilities' weight in the ensemble's mean (each network member counts 1)
    feature_names: tuple[str, ...] = ()  # the context features they read (empty: all the data has)
    depth: int = 0  # steps of the walk: the deepest leaf, set by `fit`

    @classmethod
    def from_dict(cls, data: dict, classes: int) -> TreeOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"trees: unknown option(s) {unknown}; valid: {sorted(known)}")
        names = data.get("feature_names", ())
        if isinstance(names, str):
            names = (names,)
        if not isinstance(names, list | tuple):
            raise ModelError(f"trees: feature_names must be names of the data's context features, got {names!r}")
        opts = cls(**{**data, "feature_names": tuple(names)})
        opts.check(classes)
        return opts

    def check(self, classes: int) -> None:
        ints = {"rounds": (1, MAX_ROUNDS), "leaves": (2, MAX_LEAVES), "min_samples_leaf": (1, 10**7),
                "depth": (0, MAX_LEAVES)}
        for name, (low, high) in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                raise ModelError(f"trees: {name} must be a whole number in [{low}, {high}], got {v!r}")
        for name in ("learning_rate", "weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 100:
                raise ModelError(f"trees: {name} must be a number in (0, 100], got {v!r}")
        if self.rounds * classes * self.nodes > MAX_NODE_SLOTS:
            raise ModelError(f"trees: {self.rounds} rounds x {classes} classes x {self.nodes} nodes is more than "
                             f"{MAX_NODE_SLOTS:,} node slots")
        if not all(isinstance(f, str) for f in self.feature_names):
            raise ModelError("trees: feature_names must be names of the data's context features")

    @property
    def nodes(self) -> int:
        return 2 * self.leaves - 1


class BoostedTrees(nn.Module):
    """(features [batch, all context features]) -> raw class scores [batch, classes]; softmax gives the trees'
    probabilities."""

    def __init__(self, options: TreeOptions, classes: int, available: tuple[str, ...], inputs: int) -> None:
        super().__init__()
        self.options, self.classes = options, classes
        chosen = [available.index(f) for f in options.feature_names if f in available]
        if len(chosen) != len(options.feature_names):
            raise ModelError(f"trees: feature_names {list(options.feature_names)} are not all among the data's "
                             f"features {list(available)}")
        self.register_buffer("feature_index", torch.tensor(chosen, dtype=torch.long), persistent=False)
        slots, n = options.rounds * classes, options.nodes
        self.register_buffer("feature", torch.zeros(slots * n, dtype=torch.long))
        self.register_buffer("threshold", torch.zeros(slots * n))
        nodes = torch.arange(slots * n)
        self.register_buffer("left", nodes.clone())
        self.register_buffer("right", nodes.clone())
        self.register_buffer("value", torch.zeros(slots * n))
        self.register_buffer("baseline", torch.zeros(classes))
        self.register_buffer("roots", (torch.arange(slots) * n).unsqueeze(0), persistent=False)
        self.inputs = len(chosen) or inputs  # columns the walk reads
        self.register_load_state_dict_post_hook(lambda module, _: module.check_tables())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.index_select(1, self.feature_index) if self.feature_index.numel() else features
        node = self.roots.expand(x.shape[0], -1)
        for _ in range(self.options.depth):
            go_left = torch.gather(x, 1, self.feature[node]) <= self.threshold[node]
            node = torch.where(go_left, self.left[node], self.right[node])
        scores = self.value[node].reshape(x.shape[0], self.options.rounds, self.classes).sum(dim=1)
        return scores + self.baseline

    def check_tables(self) -> None:
        """Tables read from a checkpoint must describe trees: features among the inputs, each child inside its own
        tree and after its parent, leaves pointing to themselves, finite numbers, every leaf within `depth` steps."""
        o, n = self.options, self.options.nodes
        feature, left, right = self.feature.numpy(), self.left.numpy(), self.right.numpy()
        own = np.arange(len(feature))
        start = own - own % n
        leaf = (left == own) & (right == own)
        inner = ~leaf
        problems = []
        if ((feature < 0) | (feature >= self.inputs)).any():
            problems.append(f"a feature index outside 0..{self.inputs - 1}")
        for name, child in (("left", left), ("right", right)):
            if (inner & ((child <= own) | (child >= start + n))).any():
                problems.append(f"a {name} child outside its tree or not after its parent")
        for name in ("threshold", "value", "baseline"):
            if not torch.isfinite(getattr(self, name)).all():
                problems.append(f"a non-finite {name}")
        if not problems:
            deepest = self._deepest(left, right, leaf, start[::n])
            if deepest > o.depth:
                problems.append(f"trees {deepest} levels deep, more than the config's depth {o.depth}")
        if problems:
            raise ModelError("trees: the tables are not trees: " + "; ".join(problems))

    @staticmethod
    def _deepest(left: np.ndarray, right: np.ndarray, leaf: np.ndarray, roots: np.ndarray) -> int:
        """Steps from the roots to the deepest leaf (children come after parents, so this ends)."""
        frontier, depth = roots, 0
        while not leaf[frontier].all():
            inner = frontier[~leaf[frontier]]
            frontier, depth = np.concatenate([left[inner], right[inner]]), depth + 1
        return depth

    def fit(self, features: np.ndarray, y: np.ndarray, seed: int) -> TreeOptions:
        """Grow the trees on `features` (every context feature, as `forward` takes them) with class-balanced sample
        weights, load them into the buffers, and check the graph's scores against scikit-learn's on the training
        data. Returns the options with the depth found (the caller keeps it in the model's config)."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        x = np.asarray(features, np.float32)
        if self.feature_index.numel():
            x = x[:, self.feature_index.numpy()]
        if not np.isfinite(x).all():
            raise ModelError("trees: the context features hold NaN or infinite values")
        o = self.options
        counts = np.bincount(y, minlength=self.classes)
        clf = HistGradientBoostingClassifier(max_iter=o.rounds, learning_rate=o.learning_rate,
                                             max_leaf_nodes=o.leaves, min_samples_leaf=o.min_samples_leaf,
                                             early_stopping=False, random_state=seed)
        clf.fit(x, y, sample_weight=1.0 / counts[y])
        depth = self._load(clf)
        self.options = replace(o, depth=depth)
        self.check_tables()
        self._check_conversion(clf, features, x)
        return self.options

    def _load(self, clf) -> int:
        """Copy the fitted trees into the buffers; the deepest leaf's depth."""
        n = self.options.nodes
        present = [int(c) for c in clf.classes_]
        per_round = [present[1]] if len(present) == 2 else present  # binary: one tree, the second class's score
        feature, threshold = self.feature.numpy(), self.threshold.numpy()
        left, right, value = self.left.numpy(), self.right.numpy(), self.value.numpy()
        depth = 0
        for r, trees in enumerate(clf._predictors):
            for cls, tree in zip(per_round, trees, strict=True):
                nodes = tree.nodes
                if len(nodes) > n:
                    raise ModelError(f"trees: a tree has {len(nodes)} nodes, more than {n}")
                at = (r * self.classes + cls) * n
                leaf = nodes["is_leaf"].astype(bool)
                feature[at:at + len(nodes)] = np.where(leaf, 0, nodes["feature_idx"])
                # x <= t in float64 is x <= (the largest float32 not above t) for float32 x: exact in float32.
                t = nodes["num_threshold"]
                t32 = t.astype(np.float32)
                threshold[at:at + len(nodes)] = np.where(t32.astype(np.float64) > t,
                                                         np.nextafter(t32, np.float32(-np.inf)), t32)
                own = at + np.arange(len(nodes))
                left[at:at + len(nodes)] = np.where(leaf, own, at + nodes["left"])
                right[at:at + len(nodes)] = np.where(leaf, own, at + nodes["right"])
                value[at:at + len(nodes)] = np.where(leaf, nodes["value"], 0.0)
                depth = max(depth, int(nodes["depth"][leaf].max()))
        baseline = np.full(self.classes, ABSENT_CLASS_SCORE, np.float32)
        if len(present) == 2:
            baseline[present] = (0.0, float(np.ravel(clf._baseline_prediction)[0]))
        else:
            baseline[present] = np.ravel(clf._baseline_prediction)
        self.baseline.copy_(torch.from_numpy(baseline))
        return depth

    @torch.no_grad()
    def _check_conversion(self, clf, features: np.ndarray, selected: np.ndarray) -> None:
        """The graph's class scores on `features` must equal scikit-learn's on the columns it was fitted on,
        `selected` (its private tree layout could change)."""
        ours = self(torch.from_numpy(np.asarray(features, np.float32))).numpy()
        theirs = clf.decision_function(selected)
        present = [int(c) for c in clf.classes_]
        if len(present) == 2:
            ours, theirs = ours[:, present[1]] - ours[:, present[0]], np.ravel(theirs)
        else:
            ours = ours[:, present]
        diff = float(np.abs(ours - theirs).max())
        if not diff <= CONVERSION_ATOL:
            raise ModelError(f"trees: the converted trees differ from scikit-learn's by {diff:.3g} (more than "
                             f"{CONVERSION_ATOL}); this scikit-learn version's tree layout is not supported")
