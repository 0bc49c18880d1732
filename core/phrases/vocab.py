"""What counts as a phrase, and the phrase vocabulary.

A phrase is a short, lower-cased, query-like string taken from an image's text and tags:

1. the whole text, when it has at most ``max_words`` words (a title or a web query);
2. its comma/semicolon/parenthesis-delimited segments ("Apple, big (Malus domestica)" gives
   "apple", "big", "malus domestica");
3. its word unigrams and bigrams that are not stop words and contain a letter;
4. every tag, as written (normalised the same way).

Phrases must read like web queries, so text and tags are cleaned first (:func:`query_tokens`);
what is not a word a person would type is dropped:

* **identifiers**: URLs, e-mail addresses, ``@handles``, Perl-style ``HASH(0x861c9f4)``
  stringified references and hex strings (``0x861c9f4``, or 6+ hex digits mixing digits and
  letters: ``8a3ecd4``);
* **file-name fragments**: file extensions (``books.svg`` gives "books"), underscores
  (``glace_01_bw`` gives "glace bw"), camel-case ids split where both parts have 3+ letters
  (``AfricanDrum1`` gives "african drum"; ``eMule`` and ``McDonald`` stay whole);
* **counters and author handles**: a word of 3+ letters followed by digits keeps the word
  (``Rana01`` gives "rana", ``smiley111`` "smiley", ``head1`` "head"); zero-padded numbers
  (``01``, ``007``) and numbers of 5+ digits are dropped; any other token mixing letters and
  digits is dropped (``r16``, ``t615c``, ``8ball``, ``p2p``; model codes such as ``ak47`` go
  with them: the rule cannot tell them from ids);
* **numbers** are kept only inside a phrase and before a word, where they are quantities
  ("45 rpm record", "8 ball", "2 dead frogs"); a phrase never ends on a number (``mailbox 2``
  gives "mailbox", ``gps geko 101`` "gps geko"), so no phrase is a number alone.

Letter-digit tokens that are words in their own right stay: ordinals (``5th``, ``1st``),
decades (``1950s``, ``80s``), ``2d``/``3d`` and small grids (``4x4``).

Phrases shared by more than ``max_df`` of the images say nothing about any one image and
are dropped. Every remaining phrase gets a prototype; those seen on at least
``min_images_softmax`` images are also softmax classes of the generator (the paper's "small
output space").
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from core.phrases.occurrences import PhraseOccurrences, count_vocabulary, incidence_matrix
from core.phrases.vocab_file import MAGIC, PhraseColumn, PhraseLookup, read_vocab_file, write_vocab_file

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
_PIECES = re.compile(r"[,;:()\[\]/|]+|[.!?]+(?=\s|$)")  # segments and sentences
# Identifiers removed from the raw text before tokenising (see the module docstring).
_RAW_NOISE = re.compile(
    r"https?://\S+|www\.\S+"  # URLs
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|(?<![\w@])@\w+"  # @handles
    r"|<[^<>]*>"  # HTML/XML tags
    r"|\b\d+(?:[.,]\d+)+\b"  # decimals and versions: 2.5, 1,000, 0.18.2
    r"|\bhash\(\s*0x[0-9a-f]+\s*\)",  # Perl's stringified references: HASH(0x868a30c)
    re.IGNORECASE,
)
_EXTENSION = re.compile(r"\.(?:svgz?|png|jpe?g|gif|bmp|webp|tiff?|xpm|ico|eps|pdf|ai|xcf|psd|odg|txt|html?)\b", re.IGNORECASE)
_CAMEL = re.compile(r"(?<=[a-z]{2})(?=[A-Z][a-z]{2})")
_HEX = re.compile(r"0x[0-9a-f]+|(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}")
_WORD_COUNTER = re.compile(r"([^\W\d_]{3,})\d+")
_NUMERIC_WORD = re.compile(r"\d+(?:st|nd|rd|th|['’]?s)|[23]d|\d{1,2}x\d{1,2}")
_NUMBER = re.compile(r"\d{1,4}")


def normalize(text: str) -> str:
    """Lower-case, keep word characters, collapse whitespace."""
    return " ".join(_TOKEN.findall(text.lower()))


def _strip_noise(text: str) -> str:
    """``text`` without HTML entities and tags, URLs, e-mail addresses, handles, hash ids and file extensions."""
    return _EXTENSION.sub(" ", _RAW_NOISE.sub(" ", html.unescape(text)))


def _plain_words(text: str) -> list[str]:
    return normalize(text).split()


def _clean_token(token: str) -> str:
    """A token as a query word, or "" for an identifier (rules in the module docstring)."""
    if not any(ch.isdigit() for ch in token):
        return token
    if _HEX.fullmatch(token):
        return ""
    m = _WORD_COUNTER.fullmatch(token)
    if m:
        return m.group(1)
    if _NUMERIC_WORD.fullmatch(token) or (_NUMBER.fullmatch(token) and token[0] != "0"):
        return token
    return ""


def query_tokens(text: str) -> list[str]:
    """The lower-cased query words of ``text``: identifiers and file-name fragments removed.

    Args:
        text: a caption, title or tag, as written.

    Returns:
        Its words in order. A number stays only when the next word of its sentence or segment
        is a word ("45 rpm record"); counters ("mailbox 2. Mailbox symbol") are dropped.
    """
    words: list[str] = []
    for piece in _PIECES.split(_strip_noise(text)):
        kept = []
        for token in _TOKEN.findall(_CAMEL.sub(" ", piece).lower()):
            parts = token.split("-") if any(ch.isdigit() for ch in token) else [token]
            kept += [w for w in map(_clean_token, parts) if w]
        words += [w for i, w in enumerate(kept) if not w.isdigit() or (i + 1 < len(kept) and not kept[i + 1].isdigit())]
    return words


def _trim(phrase: str, *, numbers: bool = True) -> str:
    """Drop leading and trailing stop words ("an albino peahen" -> "albino peahen") and, with
    ``numbers``, trailing numbers ("mailbox 2" -> "mailbox")."""
    words = phrase.split()
    while words and words[0] in STOP_WORDS:
        words.pop(0)
    while words and (words[-1] in STOP_WORDS or (numbers and words[-1].isdigit())):
        words.pop()
    return " ".join(words)


def extract_phrases(text: str, tags: list[str] | tuple[str, ...] = (), *, max_words: int = 8, clean: bool = True) -> list[str]:
    """All phrases of one image (deduplicated, in first-seen order). See the module docstring.

    Args:
        text: the image's caption, title or query.
        tags: its keywords.
        max_words: longer texts, segments and tags give only their unigrams and bigrams.
        clean: drop identifiers, hex strings, file-name fragments and counters (the default);
            ``False`` keeps every token as written (``bench/phrase_quality.py`` measures the
            difference).
    """
    out: dict[str, None] = {}
    words_of = query_tokens if clean else _plain_words
    if clean:
        text = _strip_noise(text)  # before cutting segments at ":", "/" and "("

    def trim(p: str) -> str:
        return _trim(p, numbers=clean)

    def add(p: str) -> None:
        if p and any(ch.isalpha() for ch in p) and p not in STOP_WORDS and len(p) > 1:
            out.setdefault(p, None)

    words = words_of(text)
    if words and len(words) <= max_words:
        add(trim(" ".join(words)))
    for seg in _SEGMENTS.split(text):
        s = trim(" ".join(words_of(seg)))
        if s and len(s.split()) <= max_words:
            add(s)
    for i, w in enumerate(words):
        if w not in STOP_WORDS:
            add(w)
        if i + 1 < len(words) and w not in STOP_WORDS and words[i + 1] not in STOP_WORDS:
            add(trim(f"{w} {words[i + 1]}"))
    for tag in tags:
        t = trim(" ".join(words_of(tag)))
        if t and len(t.split()) <= max_words:
            add(t)
    return list(out)


def noise_kind(phrase: str) -> str | None:
    """Why a (lower-cased) phrase does not read like a web query, or None when it does.

    Judges finished phrases, independently of how they were extracted: ``"hex"`` (a hex string),
    ``"number"`` (a phrase ending on a number: a counter or a number alone), ``"identifier"``
    (a token mixing letters and digits other than ordinals, decades, 2d/3d and 4x4: ids,
    file-name counters, author handles such as "rana01") or ``"file name"`` (an extension or
    "hash" fragment).
    """
    words = phrase.split()
    for w in words:
        if _HEX.fullmatch(w):
            return "hex"
    if words and words[-1].isdigit():
        return "number"
    for w in words:
        if any(ch.isdigit() for ch in w) and not w.isdigit() and not _NUMERIC_WORD.fullmatch(w):
            return "identifier"
    return None


@dataclass
class PhraseVocabulary:
    """Phrases with their image counts; ``softmax`` marks the generator's softmax classes.

    ``phrases`` is a list for a vocabulary built from lists, a :class:`~core.phrases.vocab_file.PhraseColumn`
    for a loaded one (read from its memory-mapped file where indexed) or one counted from
    :class:`~core.phrases.occurrences.PhraseOccurrences` (an Arrow column in memory). ``index``
    (phrase -> id) is built on first use: a dict for a list, else a binary search over the sorted order.
    """

    phrases: Sequence[str]
    counts: np.ndarray
    softmax: np.ndarray
    _index: Mapping[str, int] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.phrases)

    @property
    def index(self) -> Mapping[str, int]:
        """``phrase -> id`` (built on first use)."""
        if self._index is None:
            column = self.phrases
            self._index = PhraseLookup(column) if isinstance(column, PhraseColumn) else {p: i for i, p in enumerate(column)}
        return self._index

    @property
    def softmax_ids(self) -> np.ndarray:
        return np.flatnonzero(self.softmax)

    def texts(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The phrases of vocabulary ``ids``, in that order (without reading the others)."""
        if isinstance(self.phrases, PhraseColumn):
            return self.phrases.take(ids)
        return [self.phrases[j] for j in ids]

    def ids_of(self, phrases: list[str]) -> np.ndarray:
        """Each phrase's id, -1 where it is not in the vocabulary."""
        if isinstance(self.phrases, PhraseColumn) and self._index is None:
            return self.phrases.ids_of(phrases)  # one hash join, no per-phrase search
        index = self.index
        return np.array([index.get(p, -1) for p in phrases], dtype=np.int64)

    @classmethod
    def build(
        cls,
        phrase_lists: list[list[str]] | PhraseOccurrences,
        *,
        min_images_softmax: int = 3,
        max_softmax: int = 1_000_000,
        max_df: float = 0.2,
    ) -> PhraseVocabulary:
        """Vocabulary of every phrase of ``phrase_lists`` (one list per image), or of
        :class:`~core.phrases.occurrences.PhraseOccurrences` (counted in Arrow: the same vocabulary,
        its phrases an Arrow column)."""
        if isinstance(phrase_lists, PhraseOccurrences):
            kept, counts = count_vocabulary(phrase_lists, max_df=max_df)
        else:
            df = Counter(p for lst in phrase_lists for p in set(lst))
            n = max(len(phrase_lists), 1)
            limit = max(max_df * n, 3)
            kept = sorted((p for p, c in df.items() if c <= limit), key=lambda p: (-df[p], p))
            counts = np.array([df[p] for p in kept], dtype=np.int64)
        softmax = counts >= min_images_softmax
        if softmax.sum() > max_softmax:
            softmax[np.flatnonzero(softmax)[max_softmax:]] = False
        return cls(kept, counts, softmax)

    def incidence(self, phrase_lists: list[list[str]] | PhraseOccurrences) -> sparse.csr_matrix:
        """(images x phrases) 0/1 matrix of the phrases each image carries (unknown ones ignored)."""
        if isinstance(phrase_lists, PhraseOccurrences):  # one Arrow hash join: no Python string per occurrence
            column = self.phrases if isinstance(self.phrases, PhraseColumn) else PhraseColumn.of(self.phrases)
            cols = column.ids_of(phrase_lists.table.column("phrase"), dtype=np.int32)
            return incidence_matrix(phrase_lists.rows(), cols, (len(phrase_lists), len(self)))
        lengths = np.array([len(lst) for lst in phrase_lists], dtype=np.int64)
        cols = self.ids_of([p for lst in phrase_lists for p in lst])
        rows = np.repeat(np.arange(len(phrase_lists)), lengths)
        known = cols >= 0
        data = np.ones(int(known.sum()), dtype=np.float32)
        return sparse.csr_matrix((data, (rows[known], cols[known])), shape=(len(phrase_lists), len(self)))

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as a memory-mappable Arrow file (:mod:`core.phrases.vocab_file`)."""
        write_vocab_file(Path(path), self.phrases, self.counts, self.softmax)

    @classmethod
    def load(cls, path: str | Path) -> PhraseVocabulary:
        """A vocabulary :meth:`save` wrote (memory-mapped), or a ``vocab.json`` of earlier versions (read whole).

        Raises:
            ValueError: the file is neither.
        """
        path = Path(path)
        with path.open("rb") as fh:
            head = fh.read(len(MAGIC))
        if head == MAGIC:
            return cls(*read_vocab_file(path))
        try:
            d = json.loads(path.read_text())
            return cls(d["phrases"], np.asarray(d["counts"], dtype=np.int64), np.asarray(d["softmax"], dtype=bool))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a phrase vocabulary ({exc}); fit the phrase generator again") from None
