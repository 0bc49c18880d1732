"""Every image's phrases as two Arrow columns: the fit's input past memory (the paper's > 40M phrases).

A fit's phrases are one row per (image, phrase) occurrence: ``row`` (``int64``, the image's
position) and ``phrase`` (``large_string``), in image order and, within an image, in the order
:func:`core.phrases.vocab.extract_phrases` gave them. Past ``GeneratorConfig.on_disk_above``
occurrences the fit reads them from here instead of a list of Python lists: the vocabulary is
counted by Arrow's hash aggregation and sorted by Arrow (:func:`count_vocabulary`), and the
image x phrase incidence maps phrases to ids with one Arrow hash join
(:meth:`core.phrases.vocab_file.PhraseColumn.ids_of`), so no Python object is made per phrase or
per occurrence (a list of lists, a ``Counter`` and a ``dict`` index took about 7 GiB of Python
objects at 40M phrases). Both give the vocabulary and the incidence of the lists exactly (same ids,
order, counts and ties: a test checks it). The phrases are extracted and converted ``batch``
images at a time (:func:`extract_occurrences`), so only one batch's strings are ever Python objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from core.phrases.vocab_file import PhraseColumn, _pyarrow

_BATCH = 50_000  # images whose phrases are Python strings at a time


@dataclass(frozen=True)
class PhraseOccurrences:
    """The phrases of ``n_images`` images: an Arrow table of ``row`` and ``phrase`` (module docstring)."""

    table: object  # pyarrow.Table
    n_images: int

    def __len__(self) -> int:
        return self.n_images

    @property
    def n_occurrences(self) -> int:
        return self.table.num_rows

    def rows(self) -> np.ndarray:
        """(occurrences,) int64: each occurrence's image."""
        return self.table.column("row").to_numpy()

    def has_phrases(self) -> np.ndarray:
        """(n_images,) bool: images with at least one phrase."""
        return np.bincount(self.rows(), minlength=self.n_images) > 0

    def take(self, images: np.ndarray) -> PhraseOccurrences:
        """The occurrences of ``images`` (increasing positions), renumbered ``0..len(images)-1``."""
        pa = _pyarrow()
        images = np.asarray(images, dtype=np.int64)
        if np.any(np.diff(images) <= 0):
            raise ValueError("images must be increasing positions")
        new = np.full(self.n_images, -1, dtype=np.int64)
        new[images] = np.arange(len(images))
        renumbered = new[self.rows()]
        keep = renumbered >= 0
        table = self.table.filter(pa.array(keep)).set_column(0, "row", pa.array(renumbered[keep]))
        return PhraseOccurrences(table, len(images))

    def digest(self) -> bytes:
        """SHA-1 of the rows and phrases (the fit's stage cache key), a chunk at a time; the same
        for the same occurrences however the table is chunked."""
        rows, lengths, text = hashlib.sha1(str(self.n_images).encode()), hashlib.sha1(), hashlib.sha1()
        for chunk in self.table.column("row").chunks:
            rows.update(chunk.to_numpy().tobytes())
        for chunk in self.table.column("phrase").chunks:  # large_string: int64 offsets, then UTF-8 bytes
            if len(chunk):
                _, offsets, data = chunk.buffers()
                ends = np.frombuffer(offsets, dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
                lengths.update(np.diff(ends).tobytes())
                text.update(memoryview(data)[int(ends[0]) : int(ends[-1])])
        return rows.digest() + lengths.digest() + text.digest()


def occurrences_from_lists(phrase_lists: Sequence[Sequence[str]], batch: int = _BATCH) -> PhraseOccurrences:
    """The occurrences of lists of phrases (one per image), converted ``batch`` images at a time."""
    return _collect((list(p) for p in phrase_lists[s : s + batch]) for s in range(0, len(phrase_lists), batch))


def extract_occurrences(
    texts: Sequence[str], tags: Sequence[Sequence[str]], extract: Callable[..., list[str]], batch: int = _BATCH
) -> PhraseOccurrences:
    """Extract every image's phrases into Arrow, ``batch`` images at a time (``extract``: by default
    :func:`core.phrases.vocab.extract_phrases`)."""
    return _collect(
        (extract(tx, tg) for tx, tg in zip(texts[s : s + batch], tags[s : s + batch])) for s in range(0, len(texts), batch)
    )


def _collect(batches: Iterable[Iterable[list[str]]]) -> PhraseOccurrences:
    pa = _pyarrow()
    tables, n = [], 0
    for lists in batches:
        lists = list(lists)
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        rows = np.repeat(np.arange(n, n + len(lists), dtype=np.int64), lengths)
        phrases = pa.array([p for lst in lists for p in lst], type=pa.large_string())
        tables.append(pa.table({"row": pa.array(rows), "phrase": phrases}))
        n += len(lists)
    schema = pa.schema([("row", pa.int64()), ("phrase", pa.large_string())])
    return PhraseOccurrences(pa.concat_tables(tables) if tables else schema.empty_table(), n)


def count_vocabulary(occ: PhraseOccurrences, *, max_df: float) -> tuple[PhraseColumn, np.ndarray]:
    """``(phrases, counts)`` of :meth:`core.phrases.vocab.PhraseVocabulary.build`, counted without
    a Python object per phrase: each occurrence gets the code of its phrase among the distinct
    phrases (two hash passes in Arrow), each image's codes are made distinct (one sort of integers),
    the distinct images per code counted; phrases on more than ``max(max_df * n_images, 3)`` are
    dropped, the others sorted by count (descending), then phrase (ascending: UTF-8 byte order is
    code-point order, as Python's)."""
    pa = _pyarrow()
    import pyarrow.compute as pc

    column = occ.table.column("phrase")
    distinct = pc.unique(column) if occ.n_occurrences else pa.array([], type=pa.large_string())
    if isinstance(distinct, pa.ChunkedArray):
        distinct = distinct.combine_chunks()
    n = max(len(distinct), 1)
    pairs = occ.rows()  # image * n + code: one int64 array per occurrence, sorted in place
    pairs = pairs if pairs.flags.writeable else pairs.copy()
    pairs *= n
    pairs += pc.index_in(column, value_set=distinct).to_numpy()
    pairs.sort()
    first = np.ones(len(pairs), dtype=bool)  # the first of each (image, phrase)
    np.not_equal(pairs[1:], pairs[:-1], out=first[1:])
    pairs = pairs[first]
    del first
    pairs %= n  # the code of each (image, phrase)
    df = np.bincount(pairs, minlength=len(distinct))
    del pairs
    n = len(distinct)
    rank = np.empty(n, dtype=np.int64)
    rank[pc.sort_indices(distinct).to_numpy()] = np.arange(n)  # each phrase's place in string order
    kept = np.flatnonzero(df <= max(max_df * max(occ.n_images, 1), 3))
    ids = kept[np.lexsort((rank[kept], -df[kept]))]
    phrases = distinct.take(pa.array(ids))
    return PhraseColumn(phrases, np.argsort(rank[ids], kind="stable")), df[ids].astype(np.int64)


def incidence_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
    """The (images x phrases) CSR matrix of occurrences ``(rows, cols)`` (``rows`` nondecreasing;
    ``cols`` -1 for phrases outside the vocabulary, ignored), duplicates summed: the matrix that
    ``csr_matrix((ones, (rows, cols)))`` gives, without its intermediate COO copies."""
    from scipy import sparse

    known = cols >= 0
    per_row = np.bincount(rows, minlength=shape[0]) - np.bincount(rows[~known], minlength=shape[0])
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    indices = cols[known] if not known.all() else cols if cols.flags.writeable else cols.copy()  # sorted in place
    matrix = sparse.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=shape)
    matrix.sum_duplicates()  # sorted indices, duplicates summed: the canonical form COO conversion gives
    return matrix


def n_occurrences(phrases: Sequence[Sequence[str]] | PhraseOccurrences) -> int:
    """How many (image, phrase) occurrences ``phrases`` holds."""
    return phrases.n_occurrences if isinstance(phrases, PhraseOccurrences) else sum(map(len, phrases))


def has_phrases(phrases: Sequence[Sequence[str]] | PhraseOccurrences) -> np.ndarray:
    """(images,) bool: the images with at least one phrase."""
    if isinstance(phrases, PhraseOccurrences):
        return phrases.has_phrases()
    return np.array([bool(p) for p in phrases], dtype=bool)


def fit_input(phrases: list[list[str]] | PhraseOccurrences, above: int | None) -> list[list[str]] | PhraseOccurrences:
    """``phrases`` as a fit reads them: lists up to ``above`` occurrences (or with ``None``), else
    :class:`PhraseOccurrences` (the vocabulary and incidence then made in Arrow)."""
    if isinstance(phrases, PhraseOccurrences) or above is None or n_occurrences(phrases) <= above:
        return phrases
    return occurrences_from_lists(phrases)


def extract_fit_phrases(
    texts: Sequence[str],
    tags: Sequence[Sequence[str]],
    above: int | None,
    extract: Callable[..., list[str]],
    batch: int = _BATCH,
) -> list[list[str]] | PhraseOccurrences:
    """Every image's phrases for a fit: lists of strings, as always, up to ``above`` occurrences
    (``GeneratorConfig.on_disk_above``; ``None``: no limit); past it, :class:`PhraseOccurrences`,
    extracted ``batch`` images at a time (the lists made so far are converted once).

    Args:
        texts: each image's text.
        tags: each image's tags.
        above: see above.
        extract: ``(text, tags) -> phrases`` (:func:`core.phrases.vocab.extract_phrases`; passed in,
            as :mod:`core.phrases.vocab` imports this module).
        batch: images extracted at a time.
    """
    lists: list[list[str]] = []
    total = 0
    for s in range(0, len(texts), batch):
        new = [extract(tx, tg) for tx, tg in zip(texts[s : s + batch], tags[s : s + batch])]
        lists += new
        total += sum(map(len, new))
        if above is not None and total > above:
            head = occurrences_from_lists(lists, batch)
            del lists, new
            return concat_occurrences(head, extract_occurrences(texts[s + batch :], tags[s + batch :], extract, batch))
    return lists


def concat_occurrences(first: PhraseOccurrences, second: PhraseOccurrences) -> PhraseOccurrences:
    """``second``'s images after ``first``'s."""
    pa = _pyarrow()
    import pyarrow.compute as pc

    shifted = second.table.set_column(0, "row", pc.add(second.table.column("row"), pa.scalar(first.n_images, pa.int64())))
    return PhraseOccurrences(pa.concat_tables([first.table, shifted]), first.n_images + second.n_images)
