"""UA / WA / macro-F1 on hand-computed cases."""

from __future__ import annotations

import pytest

from emobox.training.metrics import mean_std, scores, ua_from_confusion


def test_hand_computed_confusion():
    # gold: 4 x class0, 2 x class1, 2 x class2
    gold = [0, 0, 0, 0, 1, 1, 2, 2]
    pred = [0, 0, 0, 1, 1, 0, 2, 1]
    s = scores(gold, pred, 3)
    # recalls: 3/4, 1/2, 1/2 -> UA = 0.5833; WA = 5/8
    assert s["ua"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert s["wa"] == pytest.approx(5 / 8)
    # precision: c0 3/4, c1 1/3, c2 1/1; F1: c0 .75, c1 .4, c2 .6667 -> macro .6056
    f1 = [2 * .75 * .75 / 1.5, 2 * (1 / 3) * .5 / (1 / 3 + .5), 2 * 1 * .5 / 1.5]
    assert s["f1"] == pytest.approx(sum(f1) / 3)
    assert s["confusion"] == [[3, 1, 0], [1, 1, 0], [0, 1, 1]]
    assert s["per_class_recall"] == [0.75, 0.5, 0.5]
    assert ua_from_confusion(s["confusion"]) == pytest.approx(s["ua"])


def test_class_absent_from_gold_does_not_count_in_ua():
    s = scores([0, 0, 1, 1], [0, 0, 1, 3], 4)
    assert s["ua"] == pytest.approx((1.0 + 0.5) / 2)
    assert s["per_class_recall"] == [1.0, 0.5, None, None]


def test_unbalanced_ua_differs_from_wa():
    gold = [0] * 9 + [1]
    pred = [0] * 10
    s = scores(gold, pred, 2)
    assert s["wa"] == pytest.approx(0.9) and s["ua"] == pytest.approx(0.5)


def test_mean_std_over_folds():
    assert mean_std([0.5, 0.7]) == (pytest.approx(0.6), pytest.approx(0.1))
    assert mean_std([0.4]) == (0.4, 0.0)


def test_class_predicted_but_absent_from_gold_counts_in_macro_f1_not_in_ua():
    s = scores([0, 0, 1, 1], [0, 1, 1, 2], 3)
    # recall: c0 1/2, c1 1/2 (c2 has no support) -> UA 0.5; WA 2/4
    assert s["ua"] == pytest.approx(0.5) and s["wa"] == pytest.approx(0.5)
    # F1 over the labels in gold or predictions: c0 2/3, c1 1/2, c2 0 -> 0.3889
    assert s["f1"] == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    assert s["confusion"] == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    assert s["per_class_recall"] == [0.5, 0.5, None]
