"""What counts as a phrase, and the phrase vocabulary.

A phrase is a short, lower-cased, query-like string taken from an image's text and tags:

1. the whole text, when it has at most ``max_words`` words (a title or a web query);
2. its comma/semicolon/parenthesis-delimited segments ("Apple, big (Malus domestica)" gives
   "apple", "big", "malus domestica");
3. its word unigrams and bigrams that are not stop words and contain a letter;
4. every tag, as written (normalised the same way).

Phrases shared by more than ``max_df`` of the images say nothing about any one image and
are dropped. Every remaining phrase gets a prototype; those seen on at least
``min_images_softmax`` images are also softmax classes of the generator (the paper's "small
output space").
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "with",
        "by",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "into",
        "over",
        "under",
        "up",
        "down",
        "out",
        "off",
        "about",
        "near",
        "than",
        "then",
        "there",
        "here",
        "very",
        "so",
        "not",
        "no",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "he",
        "she",
        "they",
        "we",
        "you",
        "i",
        "me",
        "him",
        "them",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "how",
        "when",
        "where",
        "why",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "only",
        "own",
        "same",
        "too",
        "can",
        "will",
        "just",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "having",
        "part",
        "picture",
        "image",
        "photo",
        "drawing",
        "clipart",
        "clip",
        "art",
        "png",
        "svg",
    ]
)
_TOKEN = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)
_SEGMENTS = re.compile(r"[,;:()\[\]/|]+")


def normalize(text: str) -> str:
    """Lower-case, keep word characters, collapse whitespace."""
    return " ".join(_TOKEN.findall(text.lower()))


def _trim(phrase: str) -> str:
    """Drop leading and trailing stop words ("an albino peahen" -> "albino peahen")."""
    words = phrase.split()
    while words and words[0] in STOP_WORDS:
        words.pop(0)
    while words and words[-1] in STOP_WORDS:
        words.pop()
    return " ".join(words)


def extract_phrases(text: str, tags: list[str] | tuple[str, ...] = (), *, max_words: int = 8) -> list[str]:
    """All phrases of one image (deduplicated, in first-seen order). See the module docstring."""
    out: dict[str, None] = {}

    def add(p: str) -> None:
        if p and any(ch.isalpha() for ch in p) and p not in STOP_WORDS and len(p) > 1:
            out.setdefault(p, None)

    whole = normalize(text)
    if whole and len(whole.split()) <= max_words:
        add(_trim(whole))
    for seg in _SEGMENTS.split(text):
        s = _trim(normalize(seg))
        if s and len(s.split()) <= max_words:
            add(s)
    words = whole.split()
    for i, w in enumerate(words):
        if w not in STOP_WORDS:
            add(w)
        if i + 1 < len(words) and w not in STOP_WORDS and words[i + 1] not in STOP_WORDS:
            add(f"{w} {words[i + 1]}")
    for tag in tags:
        t = _trim(normalize(tag))
        if t and len(t.split()) <= max_words:
            add(t)
    return list(out)


@dataclass
class PhraseVocabulary:
    """Phrases with their image counts; ``softmax`` marks the generator's softmax classes."""

    phrases: list[str]
    counts: np.ndarray
    softmax: np.ndarray
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {p: i for i, p in enumerate(self.phrases)}

    def __len__(self) -> int:
        return len(self.phrases)

    @property
    def softmax_ids(self) -> np.ndarray:
        return np.flatnonzero(self.softmax)

    @classmethod
    def build(
        cls,
        phrase_lists: list[list[str]],
        *,
        min_images_softmax: int = 3,
        max_softmax: int = 1_000_000,
        max_df: float = 0.2,
    ) -> PhraseVocabulary:
        """Vocabulary of every phrase of ``phrase_lists`` (one list per image)."""
        df = Counter(p for lst in phrase_lists for p in set(lst))
        n = max(len(phrase_lists), 1)
        limit = max(max_df * n, 3)
        kept = sorted((p for p, c in df.items() if c <= limit), key=lambda p: (-df[p], p))
        counts = np.array([df[p] for p in kept], dtype=np.int64)
        softmax = counts >= min_images_softmax
        if softmax.sum() > max_softmax:
            softmax[np.flatnonzero(softmax)[max_softmax:]] = False
        return cls(kept, counts, softmax)

    def incidence(self, phrase_lists: list[list[str]]) -> sparse.csr_matrix:
        """(images x phrases) 0/1 matrix of the phrases each image carries (unknown ones ignored)."""
        rows, cols = [], []
        for i, lst in enumerate(phrase_lists):
            for p in lst:
                j = self.index.get(p)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
        data = np.ones(len(rows), dtype=np.float32)
        return sparse.csr_matrix((data, (rows, cols)), shape=(len(phrase_lists), len(self)))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"phrases": self.phrases, "counts": self.counts.tolist(), "softmax": self.softmax.tolist()})
        )

    @classmethod
    def load(cls, path: str | Path) -> PhraseVocabulary:
        d = json.loads(Path(path).read_text())
        return cls(d["phrases"], np.asarray(d["counts"], dtype=np.int64), np.asarray(d["softmax"], dtype=bool))
