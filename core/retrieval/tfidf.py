"""Stemmed tf-idf of image texts: the ground-truth semantic similarity of Gordo & Larlus (2017).

Two images are as similar as the dot product of the L2-normalised tf-idf vectors of their
texts (caption, title and tags), after lower-casing and Snowball stemming. The vocabulary and
idf weights are fitted on the training texts and stored as JSON.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from scipy import sparse

_TOKEN = re.compile(r"[^\W\d_]{2,}", re.UNICODE)
_STOP = frozenset("a an and are as at be by for from has in is it its of on or that the this to was were will with".split())  # noqa: SIM905


def _stemmer():
    try:
        import snowballstemmer
    except ImportError as exc:  # pragma: no cover - it is in requirements.txt
        raise ImportError("semantic retrieval needs snowballstemmer: pip install snowballstemmer") from exc
    return snowballstemmer.stemmer("english")


def tokens(text: str) -> list[str]:
    """Lower-cased, stop-word-free, Snowball-stemmed word tokens."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOP]
    return _stemmer().stemWords(words)


class TfIdf:
    """A fitted tf-idf vocabulary: ``transform`` texts to L2-normalised sparse rows."""

    def __init__(self, vocab: list[str], idf: np.ndarray) -> None:
        self.vocab = vocab
        self.idf = idf.astype(np.float32)
        self.index = {t: i for i, t in enumerate(vocab)}

    @classmethod
    def fit(cls, texts: list[str], *, min_df: int = 2, max_df: float = 0.5) -> TfIdf:
        """Vocabulary of stems on at least ``min_df`` texts and at most ``max_df`` of them."""
        df: dict[str, int] = {}
        for text in texts:
            for t in set(tokens(text)):
                df[t] = df.get(t, 0) + 1
        n = max(len(texts), 1)
        vocab = sorted(t for t, c in df.items() if c >= min_df and c <= max_df * n)
        idf = np.array([np.log((1 + n) / (1 + df[t])) + 1.0 for t in vocab])
        return cls(vocab, idf)

    def transform(self, texts: list[str]) -> sparse.csr_matrix:
        rows, cols, vals = [], [], []
        for i, text in enumerate(texts):
            counts: dict[int, int] = {}
            for t in tokens(text):
                j = self.index.get(t)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            for j, c in counts.items():
                rows.append(i)
                cols.append(j)
                vals.append(c * self.idf[j])
        m = sparse.csr_matrix((vals, (rows, cols)), shape=(len(texts), len(self.vocab)), dtype=np.float32)
        norms = np.sqrt(m.multiply(m).sum(1)).A.ravel()
        return sparse.diags(1.0 / np.maximum(norms, 1e-12)).dot(m).tocsr()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"vocab": self.vocab, "idf": self.idf.tolist()}))

    @classmethod
    def load(cls, path: str | Path) -> TfIdf:
        d = json.loads(Path(path).read_text())
        return cls(d["vocab"], np.asarray(d["idf"], dtype=np.float32))


def image_texts(text: list[str], tags: list[list[str]]) -> list[str]:
    """Caption and tags of each image, as one text."""
    return [f"{t} {' '.join(g)}".strip() for t, g in zip(text, tags, strict=True)]
