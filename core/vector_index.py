"""Every nearest-neighbour look-up of the product (phrase prototypes, Explore's similar images,
semantic retrieval, tag neighbours) goes through this module: one :class:`NeighbourSearch`
protocol, and the index chosen by size.

* :class:`VectorIndex`: a faiss inner-product index over L2-normalised vectors, exact (``Flat``)
  up to :data:`EXACT_MAX` vectors, an inverted file with fp16 residuals above (measured for
  phrase prototypes, see :mod:`core.phrases.index`); any faiss factory string overrides it.
* :func:`neighbour_index`: the factory for rows that live in a workspace (visual features,
  embeddings), which may be too many to copy into memory: the exact :class:`VectorIndex` up to
  :data:`EXACT_MAX` rows; above, a :class:`ReducedIndex` (the default) or a :class:`FlatScan`.
* :class:`ReducedIndex`: each row's projection on its top :data:`DIM` principal directions
  (:class:`Projection`, fitted on a sample; N x 128 float32 = 0.5 GB at 1M, memory-mapped, where
  the exact index would copy 5 GB of 1,280-d features), scanned for :data:`CANDIDATES` candidates
  that are re-ranked by exact cosine on the full rows, read from their memory map.
* :class:`FlatScan`: an exact scan of L2-normalised rows where they lie (for narrow rows, such as
  the 256-d semantic-search database).

The projection of a workspace's visual features (:func:`visual_index`) is computed by the fit
(:func:`save_visual_index`, stage ``neighbour index``) and saved in ``WS/index/`` (a derived file:
a refit replaces it, a retrain keeps it, as it changes no visual feature); a workspace fitted
before fits saved it builds it on first use.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from safetensors.numpy import save_file

from core.progress import ProgressFn, silent
from core.vectors import l2n, top_k

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


def faiss_module():
    """The ``faiss`` module (a clear message if it is missing)."""
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
        faiss = faiss_module()
        if "IVF" in self.factory:
            ivf = faiss.extract_index_ivf(self.index)
            ivf.nprobe = self.nprobe
        if "RFlat" in self.factory or "Refine" in self.factory:
            faiss.downcast_index(self.index).k_factor = self.k_factor

    @classmethod
    def build(cls, prototypes: np.ndarray, factory: str | None = None, *, seed: int = 0) -> VectorIndex:
        """Index ``prototypes`` (rows L2-normalised; zero rows never match)."""
        faiss = faiss_module()
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
        faiss_module().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path, factory: str) -> VectorIndex:
        return cls(faiss_module().read_index(str(path)), factory)

    def top(self, query: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` rows nearest one query vector as ``(row, score)``, best first, ``exclude`` left out."""
        scores, ids = self.search(query, k + (exclude is not None))
        out = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and i != exclude]
        return out[:k]


#: Principal directions kept, candidates re-ranked exactly, rows that fit the directions.
DIM, CANDIDATES, SAMPLE = 128, 512, 20_000
CHUNK = 50_000  # rows projected at a time
FOLDER, FILE = "index", "visual_pca.safetensors"  # where a workspace keeps its projection
STAGE = "neighbour index"  # the progress stage of building it


class NeighbourSearch(Protocol):
    """What every index here answers."""

    def top(self, query: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` rows nearest an L2-normalised query as ``(row, cosine)``, best first, ``exclude`` left out."""
        ...


def fingerprint(features: np.ndarray) -> str:
    """A key of the rows a saved projection belongs to: shape and a hash of a row sample."""
    rows = np.linspace(0, len(features) - 1, num=min(len(features), 64)).astype(np.int64)
    digest = hashlib.sha256(np.ascontiguousarray(features[rows]).tobytes()).hexdigest()[:24]
    return f"{features.shape[0]}x{features.shape[1]}:{digest}"


@dataclass(frozen=True)
class Projection:
    """Rows' coordinates on their top principal directions (what a :class:`ReducedIndex` scans).

    Attributes:
        mean: (D,) mean of the L2-normalised sample the directions were fitted on.
        components: (D, DIM) the directions.
        projected: (N, DIM) every L2-normalised row, centred, on the directions.
        key: :func:`fingerprint` of the rows.
    """

    mean: np.ndarray
    components: np.ndarray
    projected: np.ndarray
    key: str

    @classmethod
    def fit(cls, features: np.ndarray, *, seed: int = 0, progress: ProgressFn = silent) -> Projection:
        """Fit the directions on a sample of ``features`` (N x D, any scale) and project every row, in chunks."""
        rng = np.random.default_rng(seed)
        n = len(features)
        progress(STAGE, 0, n)
        sample = l2n(features[np.sort(rng.choice(n, min(n, SAMPLE), replace=False))])
        mean = sample.mean(0)
        _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
        components = np.ascontiguousarray(vt[:DIM].T, dtype=np.float32)
        projected = np.empty((n, components.shape[1]), dtype=np.float32)
        for s in range(0, n, CHUNK):
            progress(STAGE, s, n)
            projected[s : s + CHUNK] = (l2n(features[s : s + CHUNK]) - mean) @ components
        progress(STAGE, n, n)
        return cls(mean.astype(np.float32), components, projected, fingerprint(features))

    def arrays(self) -> dict[str, np.ndarray]:
        """What its file stores (safetensors)."""
        key = np.frombuffer(self.key.encode(), dtype=np.uint8)
        return {"mean": self.mean, "components": self.components, "projected": self.projected, "key": key}

    @classmethod
    def load(cls, path: Path, features: np.ndarray) -> Projection | None:
        """The projection saved at ``path`` (memory-mapped) if it belongs to ``features``; ``None``
        when missing, stale (other features) or damaged."""
        from core.safetensors_mmap import SafetensorsError, load_mmap

        try:
            saved = load_mmap(path)
            key = bytes(saved["key"]).decode()
        except (FileNotFoundError, KeyError, SafetensorsError, UnicodeDecodeError):
            return None
        return cls(saved["mean"], saved["components"], saved["projected"], key) if key == fingerprint(features) else None


class ReducedIndex:
    """Cosine neighbours through a :class:`Projection`, re-ranked exactly on the full rows."""

    def __init__(self, features: np.ndarray, projection: Projection) -> None:
        self.features, self.projection = features, projection

    def top(self, query: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` rows nearest an L2-normalised query as ``(row, cosine)``, best first."""
        p = self.projection
        approx = p.projected @ (query @ p.components)
        m = min(len(approx), CANDIDATES + 1)
        cands = np.sort(np.argpartition(-approx, m - 1)[:m])  # sorted: the memory map is read in order
        exact = l2n(self.features[cands]) @ query
        return [(int(cands[i]), s) for i, s in top_k(exact, k, exclude=_position(cands, exclude))]


def _position(rows: np.ndarray, row: int | None) -> int | None:
    """Where ``row`` is in ``rows`` (``None`` if absent)."""
    if row is None:
        return None
    hit = np.flatnonzero(rows == row)
    return int(hit[0]) if len(hit) else None


class FlatScan:
    """Exact cosine search by scanning L2-normalised rows where they are (a memory map stays a
    memory map: nothing is copied into an index); for a few hundred dimensions at 1M rows."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def top(self, query: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` rows nearest an L2-normalised query as ``(row, cosine)``, best first."""
        return top_k(self.vectors @ query, k, exclude=exclude)


def is_exact(n: int) -> bool:
    """Whether :func:`neighbour_index` holds ``n`` rows in the exact in-memory index."""
    return n <= EXACT_MAX


def neighbour_index(
    vectors: np.ndarray, *, reduce: bool = True, projection: Projection | None = None, progress: ProgressFn = silent
) -> NeighbourSearch:
    """The index of the rows of ``vectors``, chosen by size.

    Args:
        vectors: (N, D) rows, in memory or memory-mapped (never copied above :data:`EXACT_MAX` rows).
        reduce: above :data:`EXACT_MAX` rows, a :class:`ReducedIndex` (rows of any scale); else a
            :class:`FlatScan` (rows L2-normalised already).
        projection: the :class:`ReducedIndex`'s projection when it was saved (else fitted here).
        progress: reports fitting a projection.

    Returns:
        A :class:`VectorIndex` (exact, over the L2-normalised rows) up to :data:`EXACT_MAX` rows;
        above, a :class:`ReducedIndex` or a :class:`FlatScan`.
    """
    if is_exact(len(vectors)):
        return VectorIndex.build(l2n(vectors))
    if not reduce:
        return FlatScan(vectors)
    return ReducedIndex(vectors, projection or Projection.fit(vectors, progress=progress))


def visual_index(features: np.ndarray, workspace: Path, progress: ProgressFn = silent) -> NeighbourSearch:
    """The neighbour index of a workspace's visual ``features`` (Explore's similar images), its
    projection read from ``workspace/index/`` (:func:`save_visual_index`); one missing, stale or
    damaged is fitted with ``progress`` and saved, unless another process writes the workspace."""
    from core.workspace_files import cache_arrays

    saved = None if is_exact(len(features)) else Projection.load(workspace / FOLDER / FILE, features)
    index = neighbour_index(features, projection=saved, progress=progress)
    if isinstance(index, ReducedIndex) and saved is None:
        cache_arrays(workspace, FOLDER, FILE, index.projection.arrays())
    return index


def save_visual_index(features: np.ndarray, workspace: Path, progress: ProgressFn = silent) -> bool:
    """At fit time: save the projection :func:`visual_index` reads into ``workspace/index/`` (the
    fit's staging folder) when the workspace is above :data:`EXACT_MAX` images, so that the first
    image detail need not fit it. Returns whether it did."""
    if is_exact(len(features)):
        return False
    (workspace / FOLDER).mkdir(exist_ok=True)
    save_file(Projection.fit(features, progress=progress).arrays(), str(workspace / FOLDER / FILE))
    return True
