"""Tag neighbourhoods (Johnson et al., ICCV 2015; Tesan, Coscia & Ballan): the images whose user
tags are closest to an image's, by Jaccard distance of the tag sets (``jaccard``, the paper's
"id" encoding) or by cosine distance of the mean tag embedding (``embedding``, the word2vec role
played here by sentence-transformers). Embedded tags keep working when test tags use words the
training tags never did."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from core.vector_index import VectorIndex
from core.vectors import l2n

METRICS = ("embedding", "jaccard")


def normalize_tags(tags: list[str]) -> list[str]:
    """Lower-cased, stripped, de-duplicated tags."""
    return list(dict.fromkeys(t.strip().lower() for t in tags if t and t.strip()))


def tag_vocabulary(tag_lists: list[list[str]], size: int = 5000) -> list[str]:
    """The ``size`` most frequent tags (ties by name)."""
    counts: dict[str, int] = {}
    for tags in tag_lists:
        for t in tags:
            counts[t] = counts.get(t, 0) + 1
    return sorted(counts, key=lambda t: (-counts[t], t))[:size]


def binary_tags(tag_lists: list[list[str]], vocab: list[str]) -> sparse.csr_matrix:
    """(N, len(vocab)) 0/1 tag matrix; tags outside ``vocab`` are ignored."""
    index = {t: j for j, t in enumerate(vocab)}
    rows, cols = [], []
    for i, tags in enumerate(tag_lists):
        for t in tags:
            j = index.get(t)
            if j is not None:
                rows.append(i)
                cols.append(j)
    return sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(tag_lists), len(vocab)))


def embedded_tags(tag_lists: list[list[str]], embed) -> np.ndarray:
    """(N, d) mean embedding of each image's tags, L2-normalised (zeros without tags).

    Args:
        embed: ``list[str] -> (n, d)`` text embedding (each distinct tag is embedded once).
    """
    distinct = sorted({t for tags in tag_lists for t in tags})
    vecs = embed(distinct) if distinct else np.zeros((0, 1), np.float32)
    index = {t: j for j, t in enumerate(distinct)}
    d = vecs.shape[1] if len(distinct) else 1
    out = np.zeros((len(tag_lists), d), dtype=np.float32)
    for i, tags in enumerate(tag_lists):
        if tags:
            out[i] = vecs[[index[t] for t in tags]].mean(0)
    return l2n(out)


def nearest(
    query: np.ndarray | sparse.csr_matrix,
    pool: np.ndarray | sparse.csr_matrix,
    m_max: int,
    *,
    metric: str,
    self_index: np.ndarray | None = None,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``m_max`` pool rows nearest each query row: ``(ids (Q, M), distances (Q, M))``, nearest first.

    Args:
        query, pool: embedded tags (``embedding``) or binary tag matrices (``jaccard``).
        metric: ``embedding`` (cosine distance) or ``jaccard``.
        self_index: for each query, its own pool row (left out), or -1.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of {METRICS}")
    n_q, n_p = query.shape[0], pool.shape[0]
    m_max = min(m_max, n_p - 1 if self_index is not None else n_p)
    if metric == "embedding":
        return _nearest_embedding(np.asarray(query), np.asarray(pool), m_max, self_index)
    ids = np.zeros((n_q, m_max), dtype=np.int64)
    dist = np.zeros((n_q, m_max), dtype=np.float32)
    pool_sizes = np.asarray(pool.sum(1)).ravel()
    for s in range(0, n_q, chunk):
        q = query[s : s + chunk]
        inter = (q @ pool.T).toarray()
        union = np.asarray(q.sum(1)) + pool_sizes[None, :] - inter
        d = 1.0 - np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        if self_index is not None:
            own = self_index[s : s + chunk]
            has = own >= 0
            d[np.flatnonzero(has), own[has]] = np.inf
        top = np.argpartition(d, m_max - 1, axis=1)[:, :m_max]
        order = np.argsort(np.take_along_axis(d, top, axis=1), axis=1, kind="stable")
        ids[s : s + chunk] = np.take_along_axis(top, order, axis=1)
        dist[s : s + chunk] = np.take_along_axis(d, ids[s : s + chunk], axis=1)
    return ids, dist


def _nearest_embedding(
    query: np.ndarray, pool: np.ndarray, m_max: int, self_index: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine neighbours through the product's faiss index (:class:`core.vector_index.VectorIndex`)."""
    extra = int(self_index is not None)
    scores, ids = VectorIndex.build(pool).search(query, m_max + extra)
    if extra:
        keep = ids != np.asarray(self_index)[:, None]
        keep[keep.all(1), -1] = False  # own row not among the nearest: drop the farthest instead
        ids, scores = ids[keep].reshape(len(ids), m_max), scores[keep].reshape(len(ids), m_max)
    return ids.astype(np.int64), (1.0 - scores).astype(np.float32)
