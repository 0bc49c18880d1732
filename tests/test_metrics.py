from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, top_k_accuracy_score

from core.metrics import average_precision, evaluate, macro_f1, per_image_ap, per_label_ap, precision_recall_at_k, topk_accuracy

rng = np.random.default_rng(0)


@pytest.mark.parametrize("seed", range(5))
def test_single_label_metrics_match_sklearn(seed):
    r = np.random.default_rng(seed)
    y = r.integers(0, 7, 200)
    p = r.random((200, 7))
    p[np.arange(200), y] += r.random(200)  # some signal
    for k in (1, 3, 5):
        assert topk_accuracy(y, p, k) == pytest.approx(top_k_accuracy_score(y, p, k=k, labels=range(7)))
    assert macro_f1(y, p.argmax(1), 7) == pytest.approx(f1_score(y, p.argmax(1), average="macro"))


def test_macro_f1_ignores_absent_classes_like_sklearn():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    assert macro_f1(y, pred, 10) == pytest.approx(f1_score(y, pred, average="macro"))


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn_with_ties(seed):
    r = np.random.default_rng(seed)
    y = r.random(100) < 0.3
    s = np.round(r.random(100), 1)  # many ties
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))


def test_multilabel_metrics():
    y = (rng.random((60, 5)) < 0.3).astype(float)
    y[0] = 0
    s = rng.random((60, 5)) + y * 0.5
    lab = per_label_ap(y, s)
    assert lab == pytest.approx([average_precision_score(y[:, c], s[:, c]) for c in range(5)])
    img = per_image_ap(y, s)
    assert np.isnan(img[0]) and img[1:] == pytest.approx(
        [average_precision_score(y[i], s[i]) if y[i].any() else np.nan for i in range(1, 60)], nan_ok=True
    )
    p3, r3 = precision_recall_at_k(y, s, 3)
    has = y.sum(1) > 0
    top = np.argsort(-s[has], 1)[:, :3]
    hits = np.take_along_axis(y[has], top, 1).sum(1)
    assert p3 == pytest.approx((hits / 3).mean()) and r3 == pytest.approx((hits / y[has].sum(1)).mean())
    m = evaluate(y, s, multilabel=True)
    assert set(m) == {"mAP", "mAP_img", "precision_at_3", "recall_at_3"} and 0 < m["mAP"] <= 1


def test_perfect_scores():
    y = np.array([0, 1, 2])
    m = evaluate(y, np.eye(3), multilabel=False)
    assert m == {"top1": 1.0, "top5": 1.0, "macro_f1": 1.0}


def test_paired_bootstrap_delta_separates_noise_from_a_real_change():
    from core.metrics import paired_bootstrap_delta

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=200)
    right = np.eye(4)[y]
    wrong = np.eye(4)[(y + 1) % 4]
    same = paired_bootstrap_delta(y, right, right, multilabel=False)
    assert same["delta"] == same["low"] == same["high"] == 0.0
    # 4 of 200 images flip from wrong to right and 3 the other way: noise, the interval holds 0
    before, after = right.copy(), right.copy()
    before[:4], after[4:7] = wrong[:4], wrong[4:7]
    noise = paired_bootstrap_delta(y, before, after, multilabel=False)
    assert noise["delta"] == pytest.approx(1 / 200) and noise["low"] < 0 < noise["high"]
    # 60 images fixed: a real change, the interval excludes 0
    before = right.copy()
    before[:60] = wrong[:60]
    real = paired_bootstrap_delta(y, before, right, multilabel=False)
    assert real["delta"] == pytest.approx(0.3) and real["low"] > 0.2
    multi = paired_bootstrap_delta(right.astype(int), wrong, right, multilabel=True)
    assert multi["metric"] == "mAP (images)" and multi["low"] > 0
