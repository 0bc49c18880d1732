"""Vector helpers on plain numpy arrays (no torch): normalisation, top-k search and row samples.

Modules that only read stored arrays (:mod:`core.explore`, :mod:`core.maps`,
:mod:`core.zeroshot`, :mod:`core.retrieval.semantic`) import these instead of a model module,
so they stay light.
"""

from __future__ import annotations

import numpy as np


def l2n(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def top_k(scores: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
    """``(index, score)`` of the ``k`` best scores, best first, leaving out index ``exclude``
    and non-finite scores."""
    if exclude is not None:
        scores = scores.copy()
        scores[exclude] = -np.inf
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
    top = top[np.argsort(-scores[top])]
    return [(int(i), float(scores[i])) for i in top if np.isfinite(scores[i])]


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """A seeded uniform sample of ``size`` of the row indices ``0..n-1`` (all of them when
    ``n <= size``), without replacement, sorted (rows of a memory-mapped array are then read in
    file order). Memory is ``O(size)``, not ``O(n)``: a few rows of 40M are drawn without a
    permutation of 40M."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False)).astype(np.int64)
