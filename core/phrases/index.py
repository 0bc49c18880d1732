"""Nearest-prototype search with faiss (paper Eq. 3: top-k phrases = top-k prototypes).

Prototypes are L2-normalised, so inner product = cosine similarity. Up to 100k prototypes exact
search is under 1 ms per image on 2 CPU cores; above, an IVF index with 32-byte 4-bit fast-scan
PQ codes whose 128 x k best candidates are re-ranked with half-precision vectors
(``Refine(SQfp16)``): recall@3 0.96 at 1M and 10M prototypes, well under 1 ms per image, 1.6 GiB
at 10M (``bench/phrase_index.py``, ``docs/results.md``). :func:`auto_factory` picks one; any
faiss factory string overrides it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: Up to this many prototypes, exact search is fast enough (0.9 ms per image at 100k on 2 CPU cores).
EXACT_MAX = 100_000
#: Search settings of the approximate index (recall@3 >= 0.95 at 1M and 10M in the benchmark).
NPROBE, K_FACTOR = 32, 128


def ivf_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: about 4 * sqrt(n), a power of two in [256, 65536]."""
    return 1 << max(8, min(16, round(math.log2(4 * math.sqrt(n)))))


def auto_factory(n: int, dim: int = 64) -> str:
    """The faiss factory string used for ``n`` prototypes of dimension ``dim`` when none is given."""
    m = next((m for m in (64, 32, 16, 8) if m <= dim and dim % m == 0), None)
    if n <= EXACT_MAX or m is None:
        return "Flat"
    return f"IVF{ivf_nlist(n)},PQ{m}x4fs,Refine(SQfp16)"


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - in requirements.txt
        raise ImportError("phrase search needs faiss: `pip install faiss-cpu`") from exc
    return faiss


class PhraseIndex:
    """A faiss index over L2-normalised prototypes."""

    def __init__(self, index: object, factory: str, nprobe: int = NPROBE, k_factor: int = K_FACTOR) -> None:
        self.index = index
        self.factory = factory
        self.nprobe = nprobe
        self.k_factor = k_factor
        self._configure()

    def _configure(self) -> None:
        faiss = _faiss()
        if "IVF" in self.factory:
            ivf = faiss.extract_index_ivf(self.index)
            ivf.nprobe = self.nprobe
        if "RFlat" in self.factory or "Refine" in self.factory:
            faiss.downcast_index(self.index).k_factor = self.k_factor

    @classmethod
    def build(cls, prototypes: np.ndarray, factory: str | None = None, *, seed: int = 0) -> PhraseIndex:
        """Index ``prototypes`` (rows L2-normalised; zero rows never match)."""
        faiss = _faiss()
        x = np.ascontiguousarray(prototypes, dtype=np.float32)
        fac = factory or auto_factory(len(x), x.shape[1])
        index = faiss.index_factory(x.shape[1], fac, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            rng = np.random.default_rng(seed)
            n_train = min(len(x), 256 * 1024)
            sample = x[rng.choice(len(x), n_train, replace=False)] if n_train < len(x) else x
            index.train(sample)
        index.add(x)
        return cls(index, fac)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` nearest prototypes per query (ids -1 when fewer exist)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        k = max(1, min(k, self.ntotal))
        return self.index.search(q, k)

    def save(self, path: str | Path) -> None:
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path, factory: str) -> PhraseIndex:
        return cls(_faiss().read_index(str(path)), factory)
