"""Data issues ranked by cleanlab: label errors from out-of-fold probabilities, near-duplicates
and outliers from features (Datalab).

cleanlab (Northcutt et al., 2021) is imported lazily: ``pip install cleanlab`` (and
``datasets`` for the Datalab checks, ``pip install 'cleanlab[datalab]'``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _cleanlab():
    try:
        import cleanlab.filter
        import cleanlab.multilabel_classification.rank
        import cleanlab.rank
    except ImportError as exc:  # pragma: no cover - cleanlab is in requirements.txt
        raise ImportError("the label-error queue needs cleanlab: pip install cleanlab==2.9.0") from exc
    return cleanlab


def _normalise(proba: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-9, None)
    return p / p.sum(1, keepdims=True)


@dataclass
class LabelIssues:
    """Rows whose given label looks wrong, most likely first.

    Attributes:
        order: flagged rows (by :func:`cleanlab.filter.find_label_issues`; single-label: only
            rows whose top prediction is another label), lowest label quality first.
        quality: every row's label quality score (:func:`cleanlab.rank.get_label_quality_scores`,
            self-confidence: the probability of the given label); NaN for rows without a label.
        ranking: every labelled row, lowest quality first (flagged rows first): what a
            precision@k is measured on.
    """

    order: np.ndarray
    quality: np.ndarray
    ranking: np.ndarray


def rank_label_issues(y: np.ndarray, proba: np.ndarray, multilabel: bool) -> LabelIssues:
    """Rank label issues with cleanlab.

    Args:
        y: (N,) class indices (-1: no label) or an (N, C) 0/1 matrix (multi-label).
        proba: (N, C) out-of-fold probabilities.
        multilabel: whether ``y`` is multi-label.
    """
    cl = _cleanlab()
    known = np.flatnonzero(y.sum(1) > 0 if multilabel else y >= 0)
    quality = np.full(len(y), np.nan)
    if len(known) == 0:
        return LabelIssues(np.array([], dtype=np.int64), quality, np.array([], dtype=np.int64))
    if multilabel:
        p = np.clip(np.asarray(proba[known], dtype=np.float64), 1e-9, 1 - 1e-9)
        given = [list(np.flatnonzero(row)) for row in y[known]]
        quality[known] = cl.multilabel_classification.rank.get_label_quality_scores(given, p)
        flagged = cl.filter.find_label_issues(given, p, multi_label=True)
    else:
        p = _normalise(proba[known])
        labels = y[known]
        quality[known] = cl.rank.get_label_quality_scores(labels, p, method="self_confidence")
        # a row whose top prediction is its label is no label error, whatever the noise-rate estimate says
        flagged = _find_single_label(cl, labels, p) & (p.argmax(1) != labels)
    by_quality = known[np.argsort(quality[known], kind="stable")]
    flag = np.zeros(len(y), dtype=bool)
    flag[known[flagged]] = True
    order = by_quality[flag[by_quality]]
    return LabelIssues(order, quality, np.concatenate([order, by_quality[~flag[by_quality]]]))


def _find_single_label(cl, labels: np.ndarray, p: np.ndarray) -> np.ndarray:
    """cleanlab's issue mask over classes that occur; classes without a labelled row are left out
    of its noise-matrix estimate (it needs every class it counts to occur)."""
    present = np.unique(labels)
    if len(present) < 2:
        return np.zeros(len(labels), dtype=bool)
    remap = np.full(p.shape[1], -1)
    remap[present] = np.arange(len(present))
    sub = _normalise(p[:, present])
    return np.asarray(cl.filter.find_label_issues(remap[labels], sub), dtype=bool)


DATALAB_CHECKS = {"near_duplicate": "near_duplicate_score", "outlier": "outlier_score"}


def datalab_issues(features: np.ndarray, check: str) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Rows flagged by cleanlab Datalab's ``near_duplicate`` or ``outlier`` check.

    Args:
        features: (N, D) embeddings (e.g. the stored visual features).
        check: ``near_duplicate`` or ``outlier``.

    Returns:
        ``(flagged rows most severe first, every row's score (lower = worse), near-duplicate
        sets per row (empty for outliers))``.
    """
    if check not in DATALAB_CHECKS:
        raise ValueError(f"unknown Datalab check {check!r}; one of {', '.join(DATALAB_CHECKS)}")
    try:
        from cleanlab import Datalab

        lab = Datalab(data={"row": np.arange(len(features))}, verbosity=0)
    except ImportError as exc:
        raise ImportError("near-duplicate and outlier queues need cleanlab's Datalab: pip install 'cleanlab[datalab]'") from exc
    lab.find_issues(features=np.ascontiguousarray(features, dtype=np.float32), issue_types={check: {}})
    df = lab.get_issues(check)
    score = df[DATALAB_CHECKS[check]].to_numpy(dtype=np.float64)
    flagged = np.flatnonzero(df[f"is_{check}_issue"].to_numpy())
    order = flagged[np.argsort(score[flagged], kind="stable")]
    sets = [list(map(int, s)) for s in df["near_duplicate_sets"]] if check == "near_duplicate" else [[] for _ in score]
    return order, score, sets
