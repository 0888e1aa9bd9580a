from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemed.core.metrics import auroc, classification_report, confusion_matrix


def test_report_matches_hand_counts():
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[pred] * 0.9 + 0.05
    r = classification_report(y, probs, ["a", "b", "c"])
    assert confusion_matrix(y, pred, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    a, b, c = (r["per_class"][k] for k in "abc")
    assert a["sensitivity"] == 2 / 3 and a["specificity"] == 1.0 and a["ppv"] == 1.0
    assert b["sensitivity"] == 0.5 and b["ppv"] == 0.5 and b["specificity"] == 3 / 4
    assert c["sensitivity"] == 1.0 and c["ppv"] == 0.5
    assert np.isclose(r["macro_f1"], np.mean([0.8, 0.5, 2 / 3]))
    assert r["accuracy"] == 4 / 6


def test_absent_class_is_left_out_of_macro_averages():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.2, 0.8, 0.0]])
    r = classification_report(y, probs, ["a", "b", "c"])
    assert r["per_class"]["c"]["sensitivity"] is None
    assert r["macro_f1"] == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40))
def test_auroc_equals_pairwise_definition(pairs):
    scores = np.array([p[0] for p in pairs], float)
    pos = np.array([p[1] for p in pairs])
    got = auroc(scores, pos)
    if pos.all() or not pos.any():
        assert got is None
        return
    wins = [1.0 if a > b else 0.5 if a == b else 0.0
            for (a, pa), (b, pb) in itertools.product(zip(scores, pos, strict=True), repeat=2) if pa and not pb]
    assert np.isclose(got, np.mean(wins))
