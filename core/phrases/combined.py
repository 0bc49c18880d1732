"""Combined phrase sources: the corpus generator's phrases and the ImageNet head's, side by side.

With ``phrase_source="corpus+imagenet"`` every image keeps ``k`` phrases from each source (ids of
the ImageNet phrases are offset by the corpus vocabulary size) and its text vector is the
concatenation of the two sources' top-k means, so the classifier can weigh them separately.
"""

from __future__ import annotations

import numpy as np

from core.text import phrase_text_vectors

COMBINED = "corpus+imagenet"


def combine_outputs(
    corpus: tuple[np.ndarray, np.ndarray], imagenet: tuple[np.ndarray, np.ndarray], n_corpus: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, scores)`` with the first ``k`` columns from the corpus, the next ``k`` from ImageNet."""
    ids = np.concatenate([corpus[0][:, :k], imagenet[0][:, :k] + n_corpus], axis=1)
    scores = np.concatenate([corpus[1][:, :k], imagenet[1][:, :k]], axis=1).astype(np.float32)
    return ids, scores


def used_phrase_ids(ids: np.ndarray, *, top_k: int, combined: bool) -> np.ndarray:
    """Sorted ids of the phrases that :func:`image_text_vectors` reads for these ``ids`` (each
    source's top ``top_k``; a missing phrase, -1, reads row 0)."""
    blocks = [ids[:, : ids.shape[1] // 2], ids[:, ids.shape[1] // 2 :]] if combined else [ids]
    return np.unique(np.concatenate([np.maximum(b[:, :top_k], 0).ravel() for b in blocks]))


def image_text_vectors(
    phrase_embeddings: np.ndarray, ids: np.ndarray, scores: np.ndarray, *, top_k: int, weighting: str, combined: bool
) -> np.ndarray:
    """Text vector per image: one top-k mean, or one per source, concatenated, for combined sources."""
    if not combined:
        return phrase_text_vectors(phrase_embeddings, ids, scores, k=top_k, weighting=weighting)
    half = ids.shape[1] // 2
    return np.concatenate(
        [
            phrase_text_vectors(phrase_embeddings, ids[:, :half], scores[:, :half], k=top_k, weighting=weighting),
            phrase_text_vectors(phrase_embeddings, ids[:, half:], scores[:, half:], k=top_k, weighting=weighting),
        ],
        axis=1,
    )
