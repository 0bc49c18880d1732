"""A phrase vocabulary on disk, read where it is indexed (the paper's phrase space has > 40M phrases).

A vocabulary is saved as one uncompressed Arrow IPC file (``vocab.arrow``) of one record batch with
columns ``phrase`` (``large_string``), ``count`` (``int64``), ``softmax`` (``bool``) and ``order``
(``int64``: the phrase ids sorted by phrase, UTF-8 byte order). :func:`read_vocab_file`
memory-maps it: a phrase is read from the map when it is indexed (:class:`PhraseColumn`), the counts
are a view into the map, and a phrase's id is found by binary search over ``order``
(:class:`PhraseLookup`, about 26 phrases read per look-up at 40M) or, for many phrases at once, by
Arrow's hash join in C++ (:meth:`PhraseColumn.ids_of`). Nothing is unpickled. The file holds about
25 bytes per phrase besides its text; the JSON list it replaces was read whole into Python objects
(about 7 GiB at 40M phrases).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

#: An Arrow IPC file starts with these bytes (a legacy ``vocab.json`` does not).
MAGIC = b"ARROW1"
_CHUNK = 65_536  # phrases turned into Python strings at a time when iterating


def _pyarrow():
    try:
        import pyarrow as pa
    except ImportError as exc:  # pragma: no cover - in requirements.txt
        raise ImportError("the phrase vocabulary file needs pyarrow: `pip install pyarrow`") from exc
    return pa


class PhraseColumn(Sequence[str]):
    """The phrases of a saved vocabulary: a read-only sequence over an Arrow string column.

    ``column[j]`` reads one phrase, ``column[a:b]`` and :meth:`take` a few; iterating reads them
    all (only what needs every phrase should: phrase search, embedding every phrase).
    """

    def __init__(self, array, order: np.ndarray) -> None:
        self.array = array  # pyarrow LargeStringArray, a view into the file's map
        self.order = order  # (n,) int64, ids sorted by phrase

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, key: int | slice) -> str | list[str]:
        if isinstance(key, slice):
            return self.array[key].to_pylist()
        j = int(key)
        if j < 0:
            j += len(self)
        if not 0 <= j < len(self):
            raise IndexError(f"phrase id {key} out of range for {len(self)} phrases")
        return self.array[j].as_py()

    def __iter__(self) -> Iterator[str]:
        for s in range(0, len(self), _CHUNK):
            yield from self.array[s : s + _CHUNK].to_pylist()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # mutable-sequence semantics: compared by content

    def take(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The phrases of ``ids``, in that order."""
        return self.array.take(np.asarray(ids, dtype=np.int64)).to_pylist()

    @classmethod
    def of(cls, phrases: Sequence[str]) -> PhraseColumn:
        """A column of phrases held in memory (what :func:`write_vocab_file` would write)."""
        pa = _pyarrow()
        import pyarrow.compute as pc

        array = pa.array(list(phrases), type=pa.large_string())
        return cls(array, pc.sort_indices(array).to_numpy())

    def ids_of(self, phrases, dtype: type = np.int64) -> np.ndarray:
        """Each phrase's id, -1 where it is not in the vocabulary (one hash join in Arrow).

        Args:
            phrases: a list of strings, or an Arrow string (chunked) array (never made Python strings).
            dtype: the ids' integer type (``np.int32`` holds any vocabulary of fewer than 2**31 phrases).
        """
        pa = _pyarrow()
        import pyarrow.compute as pc

        if isinstance(phrases, list):
            phrases = pa.array(phrases, type=pa.large_string())
        found = pc.index_in(phrases, value_set=self.array)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(dtype, copy=False)


class PhraseLookup(Mapping[str, int]):
    """``phrase -> id`` for a :class:`PhraseColumn`, by binary search over its sorted order."""

    def __init__(self, column: PhraseColumn) -> None:
        self.column = column
        self._sorted = _SortedView(column)

    def __getitem__(self, phrase: str) -> int:
        if not isinstance(phrase, str):
            raise KeyError(phrase)
        i = bisect.bisect_left(self._sorted, phrase)
        if i < len(self._sorted) and self._sorted[i] == phrase:
            return int(self.column.order[i])
        raise KeyError(phrase)

    def __len__(self) -> int:
        return len(self.column)

    def __iter__(self) -> Iterator[str]:
        return iter(self.column)


class _SortedView(Sequence[str]):
    """The phrases in sorted order (what :func:`bisect.bisect_left` reads)."""

    def __init__(self, column: PhraseColumn) -> None:
        self.column = column

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, i: int) -> str:
        return self.column[self.column.order[i]]


def write_vocab_file(path: Path, phrases: Sequence[str], counts: np.ndarray, softmax: np.ndarray) -> None:
    """Write a vocabulary as the Arrow file described in the module docstring (``path`` replaced
    by renaming a finished ``.partial`` file: a loaded vocabulary may be mapping the old one)."""
    pa = _pyarrow()

    column = phrases if isinstance(phrases, PhraseColumn) else PhraseColumn.of(phrases)
    array, order = column.array, column.order
    table = pa.table(
        {
            "phrase": array,
            "count": pa.array(np.asarray(counts, dtype=np.int64)),
            "softmax": pa.array(np.asarray(softmax, dtype=bool)),
            "order": pa.array(np.asarray(order, dtype=np.int64)),
        }
    )
    staged = path.with_name(path.name + ".partial")
    with pa.OSFile(str(staged), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(len(table), 1))  # one batch: every column one mapped buffer
    staged.replace(path)


def read_vocab_file(path: Path) -> tuple[PhraseColumn, np.ndarray, np.ndarray]:
    """``(phrases, counts, softmax)`` of a file :func:`write_vocab_file` wrote, memory-mapped.

    Raises:
        ValueError: not such a file (damaged, or columns missing).
    """
    pa = _pyarrow()
    try:
        table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        chunked = {name: table.column(name) for name in ("phrase", "count", "softmax", "order")}
    except (pa.ArrowInvalid, KeyError) as exc:
        raise ValueError(f"{path} is not a phrase vocabulary file ({exc}); fit the phrase generator again") from None
    # one batch written: its chunk is a view into the map (combining chunks would copy them)
    columns = {name: c.chunk(0) if c.num_chunks == 1 else c.combine_chunks() for name, c in chunked.items()}
    as_numpy = {name: columns[name].to_numpy(zero_copy_only=name != "softmax") for name in ("count", "softmax", "order")}
    return PhraseColumn(columns["phrase"], as_numpy["order"]), as_numpy["count"], as_numpy["softmax"]
