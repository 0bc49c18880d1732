"""2-D maps (UMAP) of the co-embedding: phrase prototypes and images in one layout.

Computed at fit time and stored, so the app never pays UMAP's numba compilation. Above
``max_fit`` points UMAP is fitted on a sample and the rest are placed with ``transform``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.progress import ProgressFn, silent


def _numba_cache() -> None:
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "pixctx" / "numba"))


def umap_2d(x: np.ndarray, *, seed: int = 0, max_fit: int = 30_000, progress: ProgressFn = silent) -> np.ndarray:
    """(N, 2) float32 coordinates of L2-normalised vectors (cosine metric). PCA below 10 points."""
    n = len(x)
    progress("2-D map", 0, 1)
    if n < 10:
        xc = x - x.mean(0)
        u, s, _ = np.linalg.svd(xc, full_matrices=False)
        out = np.zeros((n, 2), np.float32)
        k = min(2, u.shape[1])
        out[:, :k] = u[:, :k] * s[:k]
        progress("2-D map", 1, 1)
        return out
    _numba_cache()
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - in requirements.txt
        raise ImportError("2-D maps need `pip install umap-learn`") from exc
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), min_dist=0.1, metric="cosine", random_state=seed, n_jobs=1)
    if n <= max_fit:
        xy = reducer.fit_transform(x)
    else:
        rng = np.random.default_rng(seed)
        fit_idx = rng.choice(n, max_fit, replace=False)
        xy = np.zeros((n, 2), np.float32)
        xy[fit_idx] = reducer.fit_transform(x[fit_idx])
        rest = np.setdiff1d(np.arange(n), fit_idx)
        xy[rest] = reducer.transform(x[rest])
    progress("2-D map", 1, 1)
    return np.asarray(xy, dtype=np.float32)
