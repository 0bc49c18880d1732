"""Retrieval quality against a ground-truth similarity: NDCG@R and Pearson correlation @R.

For every query, the database is ranked by the model's score (the query itself left out). At
depth R: NDCG@R is the DCG of the ground-truth similarities of the model's top R over the DCG
of the best possible top R; PCC@R is Pearson's correlation between the model's scores and the
ground-truth similarities of those R images. Curves are averaged over queries; the "AUC" is the
mean of a curve over R = 1..R_max, times 100 (Gordo & Larlus, Table 2).
"""

from __future__ import annotations

import numpy as np


def ranking_curves(model: np.ndarray, truth: np.ndarray, r_max: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(NDCG@R, PCC@R) for R = 1..r_max, averaged over queries.

    Args:
        model: (Q, D) model scores of each query against the database.
        truth: (Q, D) ground-truth similarities; entries to leave out (the query itself) are NaN.
        r_max: deepest rank.
    """
    q, d = model.shape
    r_max = min(r_max, d - 1)
    ranks = np.arange(1, r_max + 1)
    discount = 1.0 / np.log2(ranks + 1)
    ndcg = np.zeros(r_max)
    pcc = np.zeros(r_max)
    n_ndcg = np.zeros(r_max)
    n_pcc = np.zeros(r_max)
    for i in range(q):
        keep = ~np.isnan(truth[i])
        s, g = model[i, keep], truth[i, keep]
        top = np.argsort(-s, kind="stable")[:r_max]
        gains = g[top]
        dcg = np.cumsum(gains * discount[: len(top)])
        ideal = np.cumsum(np.sort(g)[::-1][: len(top)] * discount[: len(top)])
        ok = ideal > 0
        ndcg[: len(top)][ok] += dcg[ok] / ideal[ok]
        n_ndcg[: len(top)][ok] += 1
        # Pearson over every prefix at once, from running sums
        a, b = s[top].astype(np.float64), gains.astype(np.float64)
        r = np.arange(1, len(top) + 1)
        ma, mb = np.cumsum(a) / r, np.cumsum(b) / r
        cov = np.cumsum(a * b) / r - ma * mb
        va, vb = np.cumsum(a * a) / r - ma**2, np.cumsum(b * b) / r - mb**2
        good = (r >= 2) & (va > 1e-12) & (vb > 1e-12)
        pcc[: len(top)][good] += cov[good] / np.sqrt(va[good] * vb[good])
        n_pcc[: len(top)][good] += 1
    with np.errstate(invalid="ignore"):
        return ndcg / n_ndcg, pcc / n_pcc


def auc(curve: np.ndarray) -> float:
    """Mean of a curve over its defined points, times 100."""
    return float(np.nanmean(curve) * 100) if np.isfinite(curve).any() else float("nan")
