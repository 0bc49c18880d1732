"""Nearest-prototype search with faiss (paper Eq. 3: top-k phrases = top-k prototypes).

Prototypes are L2-normalised, so inner product = cosine similarity. Up to 100k prototypes exact
search takes about 1 ms per image on 2 CPU cores. Above, an inverted-file index over about
4 * sqrt(n) lists that stores each prototype's residual from its list centre in half precision
(``IVF{nlist},SQfp16``): recall@3 0.978 at 10M prototypes in 0.3 ms per image and 1.3 GiB
(``bench/phrase_index.py``, ``docs/results.md``). Product-quantised codes re-ranked with fp16
vectors were tried and stop near 0.94 at 10M: neighbours that dense differ by about the error fp16
rounding of a whole vector adds to a score, while a residual's rounding error is a fraction of it.
:func:`auto_factory` picks one; any faiss factory string overrides it.
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
