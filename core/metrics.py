"""Evaluation metrics (checked against scikit-learn in the tests)."""

from __future__ import annotations

import numpy as np


def topk_accuracy(y_true: np.ndarray, proba: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the ``k`` highest probabilities."""
    if len(y_true) == 0:
        return float("nan")
    k = min(k, proba.shape[1])
    top = np.argpartition(-proba, k - 1, axis=1)[:, :k]
    return float((top == y_true[:, None]).any(1).mean())


def f1_per_class(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 and a mask of classes present in ``y_true`` or ``y_pred``."""
    tp = np.bincount(y_true[y_true == y_pred], minlength=n_classes).astype(float)
    pred = np.bincount(y_pred, minlength=n_classes).astype(float)
    true = np.bincount(y_true, minlength=n_classes).astype(float)
    denom = pred + true
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    return f1, denom > 0


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over the classes present in the truth or the predictions (sklearn's default)."""
    f1, present = f1_per_class(y_true, y_pred, n_classes)
    return float(f1[present].mean()) if present.any() else float("nan")


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """AP of one ranking (sklearn's step-wise definition); NaN without positives."""
    y_true = np.asarray(y_true).astype(bool)
    if not y_true.any():
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], y_true[order]
    # group tied scores, as sklearn does
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(t)[distinct]
    fps = (distinct + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    recall_prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - recall_prev) * precision))


def per_label_ap(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AP of every label (column); NaN for labels without positives."""
    return np.array([average_precision(y_true[:, c], scores[:, c]) for c in range(y_true.shape[1])])


def per_image_ap(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AP of every image's label ranking; NaN for images without labels."""
    return np.array([average_precision(y_true[i], scores[i]) for i in range(y_true.shape[0])])


def precision_recall_at_k(y_true: np.ndarray, scores: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Mean precision@k and recall@k over images with at least one label."""
    has = y_true.sum(1) > 0
    y, s = y_true[has].astype(bool), scores[has]
    if len(y) == 0:
        return float("nan"), float("nan")
    top = np.argsort(-s, axis=1)[:, :k]
    hits = np.take_along_axis(y, top, axis=1).sum(1)
    return float((hits / k).mean()), float((hits / y.sum(1)).mean())


def pr_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Micro-averaged precision/recall points over all (image, label) pairs."""
    y = y_true.ravel().astype(bool)
    s = scores.ravel()
    order = np.argsort(-s, kind="mergesort")
    tps = np.cumsum(y[order])
    precision = tps / np.arange(1, len(y) + 1)
    recall = tps / max(int(y.sum()), 1)
    return precision, recall


def evaluate(y_true: np.ndarray, proba: np.ndarray, *, multilabel: bool) -> dict[str, float]:
    """The headline metrics: ``top1``, ``top5``, ``macro_f1`` (single-label) or ``mAP``,
    ``mAP_img``, ``precision_at_3``, ``recall_at_3`` (multi-label)."""
    if multilabel:
        p3, r3 = precision_recall_at_k(y_true, proba, 3)
        return {
            "mAP": float(np.nanmean(per_label_ap(y_true, proba))),
            "mAP_img": float(np.nanmean(per_image_ap(y_true, proba))),
            "precision_at_3": p3,
            "recall_at_3": r3,
        }
    return {
        "top1": topk_accuracy(y_true, proba, 1),
        "top5": topk_accuracy(y_true, proba, 5),
        "macro_f1": macro_f1(y_true, proba.argmax(1), proba.shape[1]),
    }


def per_label_scores(y_true: np.ndarray, proba: np.ndarray, *, multilabel: bool) -> np.ndarray:
    """Per-label quality: F1 (single-label) or AP (multi-label), for the few-shot view."""
    if multilabel:
        return per_label_ap(y_true, proba)
    f1, present = f1_per_class(y_true, proba.argmax(1), proba.shape[1])
    return np.where(present, f1, np.nan)


def paired_bootstrap_delta(
    y_true: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    *,
    multilabel: bool,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float | str]:
    """The change of a per-image score between two models on the same images, with a paired bootstrap
    interval (images resampled with replacement, both models scored on the same resample).

    The per-image score is top-1 correctness (single-label; ``y_true`` class ids) or the image's AP
    (multi-label; ``y_true`` a 0/1 matrix). An interval that contains 0 means the change may be noise.

    Returns:
        ``{"metric", "delta", "low", "high", "n"}``.
    """
    if multilabel:
        a, b, metric = per_image_ap(y_true, before), per_image_ap(y_true, after), "mAP (images)"
        keep = ~(np.isnan(a) | np.isnan(b))
        a, b = a[keep], b[keep]
    else:
        a = (before.argmax(1) == y_true).astype(np.float64)
        b = (after.argmax(1) == y_true).astype(np.float64)
        metric = "top1"
    if len(a) == 0:
        return {"metric": metric, "delta": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    diff = b - a
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(n_boot, len(diff)))
    means = diff[idx].mean(1)
    tail = (1.0 - level) / 2
    return {
        "metric": metric,
        "delta": float(diff.mean()),
        "low": float(np.quantile(means, tail)),
        "high": float(np.quantile(means, 1.0 - tail)),
        "n": len(diff),
    }


def evaluate_models(
    probs: dict[str, np.ndarray], y_all: np.ndarray, test: np.ndarray, fit_idx: np.ndarray, names: list[str], multilabel: bool
) -> tuple[dict[str, dict[str, float]], dict[str, list]]:
    """Test metrics of every model, and the per-label table (training/test counts, per-label scores).

    Args:
        probs: every row's probabilities per model.
        y_all: targets of every row (:func:`core.training.label_targets`).
        test: (N,) bool, the scored rows.
        fit_idx: rows the classifiers trained on (for the training counts).
        names: the label names.
        multilabel: whether ``y_all`` is a 0/1 matrix.
    """
    y_test = y_all[test]
    metrics = {m: evaluate(y_test, probs[m][test], multilabel=multilabel) for m in probs}

    def counts(y: np.ndarray) -> list[int]:
        c = y.sum(0) if multilabel else np.bincount(y[y >= 0], minlength=len(names))
        return [int(v) for v in c]

    per_label: dict[str, list] = {"label": names, "n_train": counts(y_all[fit_idx]), "n_test": counts(y_test)}
    for m in probs:
        scores = per_label_scores(y_test, probs[m][test], multilabel=multilabel)
        per_label[m] = [None if np.isnan(v) else float(v) for v in scores]
    return metrics, per_label
