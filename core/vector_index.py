"""A faiss inner-product index over L2-normalised vectors, with one rule for choosing it: exact
(``Flat``) up to :data:`EXACT_MAX` vectors, an inverted file with fp16 residuals above (measured
for phrase prototypes, see :mod:`core.phrases.index`). Every neighbour look-up of the product goes
through it: phrase prototypes, Explore's similar images, semantic retrieval, tag neighbours.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: Up to this many prototypes, exact search is fast enough (0.9-1.3 ms per image at 100k on 2 CPU cores).
EXACT_MAX = 100_000
#: Lists probed per query by IVF indexes (recall@3 0.98 at 10M in the benchmark); re-ranking depth
#: of factories with a refinement stage (``Refine(...)``, ``RFlat``), which only user factories have.
NPROBE, K_FACTOR = 32, 128


def ivf_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: about 4 * sqrt(n), a power of two in [256, 65536]."""
    return 1 << max(8, min(16, round(math.log2(4 * math.sqrt(n)))))


def ivf_train_size(n: int, nlist: int) -> int:
    """Points that train an ``nlist``-list coarse quantiser: the 39 per list faiss asks for, at least 256k."""
    return min(n, max(256 * 1024, 39 * nlist))


def auto_factory(n: int) -> str:
    """The faiss factory string used for ``n`` prototypes when none is given."""
    return "Flat" if n <= EXACT_MAX else f"IVF{ivf_nlist(n)},SQfp16"


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - in requirements.txt
        raise ImportError("nearest-neighbour search needs faiss: `pip install faiss-cpu`") from exc
    return faiss


class VectorIndex:
    """A faiss index over L2-normalised vectors (inner product = cosine similarity)."""

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
    def build(cls, prototypes: np.ndarray, factory: str | None = None, *, seed: int = 0) -> VectorIndex:
        """Index ``prototypes`` (rows L2-normalised; zero rows never match)."""
        faiss = _faiss()
        x = np.ascontiguousarray(prototypes, dtype=np.float32)
        fac = factory or auto_factory(len(x))
        index = faiss.index_factory(x.shape[1], fac, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            rng = np.random.default_rng(seed)
            ivf = faiss.try_extract_index_ivf(index)
            n_train = ivf_train_size(len(x), ivf.nlist) if ivf is not None else min(len(x), 256 * 1024)
            sample = x[rng.choice(len(x), n_train, replace=False)] if n_train < len(x) else x
            index.train(sample)
        index.add(x)
        return cls(index, fac)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` nearest vectors per query (ids -1 when fewer exist)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        k = max(1, min(k, self.ntotal))
        return self.index.search(q, k)

    def save(self, path: str | Path) -> None:
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path, factory: str) -> VectorIndex:
        return cls(_faiss().read_index(str(path)), factory)

    def top(self, query: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` rows nearest one query vector as ``(row, score)``, best first, ``exclude`` left out."""
        scores, ids = self.search(query, k + (exclude is not None))
        out = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and i != exclude]
        return out[:k]
