"""Visually similar images over a workspace of any size (Explore's neighbours of an image).

Up to :data:`core.vector_index.EXACT_MAX` rows the exact index holds every L2-normalised visual
feature in memory (N x D float32: 0.5 GB at 100k). Above, that would be 5 GB at 1M, so
:class:`ReducedIndex` keeps only each feature's projection on its top :data:`DIM` principal
directions (fitted on a sample; N x 128 float32 = 0.5 GB at 1M, memory-mapped), scans those for the
:data:`CANDIDATES` best candidates and re-ranks them by exact cosine on the full features, read
from the workspace's memory map (a few hundred rows). The projection is computed by the fit, in
chunks, and saved in ``WS/index/`` (a derived file: a refit replaces it, a retrain keeps it, as it
changes no visual feature); a workspace fitted before fits saved it builds it on first use.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from safetensors.numpy import save_file

from core.progress import ProgressFn, silent
from core.vectors import l2n, top_k

if TYPE_CHECKING:
    from core.workspace import Workspace

#: Principal directions kept, candidates re-ranked exactly, rows that fit the directions.
DIM, CANDIDATES, SAMPLE = 128, 512, 20_000
CHUNK = 50_000  # rows projected at a time
FOLDER, FILE = "index", "visual_pca.safetensors"
STAGE = "neighbour index"  # the progress stage of building it


class NeighbourSearch(Protocol):
    """What every index here answers (:class:`core.vector_index.VectorIndex` too)."""

    def top(self, query: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` rows nearest an L2-normalised query as ``(row, cosine)``, best first, ``exclude`` left out."""
        ...


def fingerprint(features: np.ndarray) -> str:
    """A key of the features a cached projection belongs to: shape and a hash of a row sample."""
    rows = np.linspace(0, len(features) - 1, num=min(len(features), 64)).astype(np.int64)
    digest = hashlib.sha256(np.ascontiguousarray(features[rows]).tobytes()).hexdigest()[:24]
    return f"{features.shape[0]}x{features.shape[1]}:{digest}"


class ReducedIndex:
    """Cosine neighbours through a PCA projection, re-ranked exactly on the full features."""

    def __init__(self, features: np.ndarray, mean: np.ndarray, components: np.ndarray, projected: np.ndarray) -> None:
        self.features, self.mean, self.components, self.projected = features, mean, components, projected

    @classmethod
    def build(cls, features: np.ndarray, *, seed: int = 0, progress: ProgressFn = silent) -> ReducedIndex:
        """Fit the directions on a sample of ``features`` (N x D, any scale) and project every row."""
        rng = np.random.default_rng(seed)
        n = len(features)
        progress(STAGE, 0, n)
        sample = l2n(features[np.sort(rng.choice(n, min(n, SAMPLE), replace=False))])
        mean = sample.mean(0)
        _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
        components = np.ascontiguousarray(vt[:DIM].T, dtype=np.float32)  # D x DIM
        projected = np.empty((n, components.shape[1]), dtype=np.float32)
        for s in range(0, n, CHUNK):
            progress(STAGE, s, n)
            projected[s : s + CHUNK] = (l2n(features[s : s + CHUNK]) - mean) @ components
        progress(STAGE, n, n)
        return cls(features, mean.astype(np.float32), components, projected)

    def arrays(self, key: str) -> dict[str, np.ndarray]:
        """What the cache stores (``key``: :func:`fingerprint` of the features)."""
        return {
            "mean": self.mean,
            "components": self.components,
            "projected": self.projected,
            "key": np.frombuffer(key.encode(), dtype=np.uint8),
        }

    def top(self, query: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` rows nearest an L2-normalised query as ``(row, cosine)``, best first."""
        approx = self.projected @ (query @ self.components)
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


def exact_index(vectors: np.ndarray) -> NeighbourSearch:
    """Exact search over L2-normalised rows: faiss in memory up to :data:`core.vector_index.EXACT_MAX`
    rows, a :class:`FlatScan` of the rows where they are above."""
    from core.vector_index import EXACT_MAX, VectorIndex

    return VectorIndex.build(vectors) if len(vectors) <= EXACT_MAX else FlatScan(vectors)


def visual_index(ws: Workspace, progress: ProgressFn = silent) -> NeighbourSearch:
    """The neighbour index of a workspace's visual features: exact in memory up to
    :data:`core.vector_index.EXACT_MAX` rows, else a :class:`ReducedIndex` read from ``WS/index/``
    (written by the fit, :func:`save_visual_index`; for a workspace fitted before that, or a stale or
    damaged file, built here with ``progress`` and cached, unless another process writes the workspace)."""
    from core.vector_index import EXACT_MAX, VectorIndex
    from core.workspace_files import cache_arrays

    features = ws.visual
    if len(features) <= EXACT_MAX:
        return VectorIndex.build(l2n(features))
    key = fingerprint(features)
    cached = _cached(ws.path / FOLDER / FILE, features, key)
    if cached is not None:
        return cached
    index = ReducedIndex.build(features, progress=progress)
    cache_arrays(ws.path, FOLDER, FILE, index.arrays(key))
    return index


def save_visual_index(features: np.ndarray, workspace: Path, progress: ProgressFn = silent) -> bool:
    """At fit time: build the neighbour index of ``features`` into ``workspace/index/`` (a staging
    folder the fit writes) when :func:`visual_index` would use a :class:`ReducedIndex`, so the first
    image detail need not build it. Returns whether it was built."""
    from core.vector_index import EXACT_MAX

    if len(features) <= EXACT_MAX:
        return False
    (workspace / FOLDER).mkdir(exist_ok=True)
    save_file(ReducedIndex.build(features, progress=progress).arrays(fingerprint(features)), str(workspace / FOLDER / FILE))
    return True


def _cached(path: Path, features: np.ndarray, key: str) -> ReducedIndex | None:
    """The cached index at ``path`` if it belongs to ``features`` (its ``key``); ``None`` when missing,
    stale or damaged."""
    from core.safetensors_mmap import SafetensorsError, load_mmap

    try:
        cached = load_mmap(path)
        if bytes(cached["key"]).decode() == key:
            return ReducedIndex(features, cached["mean"], cached["components"], cached["projected"])
    except (FileNotFoundError, KeyError, SafetensorsError, UnicodeDecodeError):
        pass
    return None
