"""Combined phrase sources: the corpus generator's phrases and the ImageNet head's, side by side.

With ``phrase_source="corpus+imagenet"`` every image keeps ``k`` phrases from each source (ids of
the ImageNet phrases are offset by the corpus vocabulary size) and its text vector is the
concatenation of the two sources' top-k means, so the classifier can weigh them separately.
Their phrase texts are :class:`ChainedPhrases`: the vocabulary's (read from its file where
indexed), then the ImageNet phrases; the workspace's manifest lists only the latter
(``extra_phrases``; workspaces fitted before list every phrase in ``phrases``, and still open).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from core.text import phrase_text_vectors, phrase_texts

COMBINED = "corpus+imagenet"


class ChainedPhrases(Sequence[str]):
    """The phrases of ``first`` then those of ``extra``, without copying ``first`` (a vocabulary's
    column stays where it is mapped): what ``corpus+imagenet`` phrase ids index."""

    def __init__(self, first: Sequence[str], extra: Sequence[str]) -> None:
        self.first, self.extra = first, list(extra)
        self._array = None

    def __len__(self) -> int:
        return len(self.first) + len(self.extra)

    def __getitem__(self, key: int | slice) -> str | list[str]:
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        j = int(key)
        if j < 0:
            j += len(self)
        if not 0 <= j < len(self):
            raise IndexError(f"phrase id {key} out of range for {len(self)} phrases")
        n = len(self.first)
        return self.first[j] if j < n else self.extra[j - n]

    def __iter__(self) -> Iterator[str]:
        yield from self.first
        yield from self.extra

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # compared by content

    def take(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The phrases of ``ids``, in that order (only those of ``first`` are read from it)."""
        ids = np.asarray(ids, dtype=np.int64)
        n, out = len(self.first), np.empty(len(ids), dtype=object)
        low = ids < n
        out[low] = phrase_texts(self.first, ids[low])
        out[~low] = [self.extra[j - n] for j in ids[~low].tolist()]
        return out.tolist()

    @property
    def array(self):
        """Every phrase as one Arrow ``large_string`` array (for the phrase filter; built once)."""
        if self._array is None:
            import pyarrow as pa

            first = getattr(self.first, "array", None)
            first = first if first is not None else pa.array(list(self.first), type=pa.large_string())
            self._array = pa.concat_arrays([first, pa.array(self.extra, type=pa.large_string())])
        return self._array


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
