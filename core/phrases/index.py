"""Nearest-prototype search with faiss (paper Eq. 3: top-k phrases = top-k prototypes).

Prototypes are L2-normalised, so inner product = cosine similarity. Up to 100k prototypes exact
search takes about 1 ms per image on 2 CPU cores. Above, an inverted-file index over about
4 * sqrt(n) lists that stores each prototype's residual from its list centre in half precision
(``IVF{nlist},SQfp16``): recall@3 0.978 at 10M prototypes in 0.3 ms per image and 1.3 GiB
(``bench/phrase_index.py``, ``docs/results.md``). Product-quantised codes re-ranked with fp16
vectors were tried and stop near 0.94 at 10M: neighbours that dense differ by about the error fp16
rounding of a whole vector adds to a score, while a residual's rounding error is a fraction of it.
:func:`auto_factory` picks one; any faiss factory string overrides it.

Past memory (the paper searches more than 40M phrases), an IVF index keeps its inverted lists on
disk: :func:`write_on_disk` writes them with faiss's ``OnDiskInvertedLists`` into one
``.ivfdata`` file beside the index file, and :func:`read_on_disk` maps them read-only, so a process
that searches holds only the coarse quantiser (nlist x d floats) and the page cache holds what
searches touch (same results as the lists in memory, about 30-45% slower per search:
``docs/results.md`` B8). A generator does this above :attr:`GeneratorConfig.on_disk_above`
prototypes (by default every automatic IVF index, above :data:`EXACT_MAX`: a load then maps it
instead of rebuilding it). Only faiss's own format is read: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from core.vector_index import EXACT_MAX, K_FACTOR, NPROBE, VectorIndex, auto_factory, faiss_module, ivf_nlist, ivf_train_size

#: the phrase index is the product's vector index over prototypes
PhraseIndex = VectorIndex

#: The files of an index with its lists on disk, side by side in one folder.
INDEX_FILE, LISTS_FILE = "phrase_index.faiss", "phrase_lists.ivfdata"

__all__ = [
    "EXACT_MAX",
    "INDEX_FILE",
    "K_FACTOR",
    "LISTS_FILE",
    "NPROBE",
    "PhraseIndex",
    "auto_factory",
    "ivf_nlist",
    "ivf_train_size",
    "on_disk",
    "read_on_disk",
    "write_on_disk",
]


def on_disk(n: int, factory: str | None, above: int | None) -> bool:
    """Whether an index of ``n`` prototypes built with ``factory`` (``None``: :func:`auto_factory`)
    keeps its lists on disk: above ``above`` prototypes (``None``: never), inverted-file indexes only."""
    return above is not None and n > above and "IVF" in (factory or auto_factory(n))


@contextlib.contextmanager
def _notes_to_stderr() -> Iterator[None]:
    """faiss's on-disk lists print notes ("resizing ...", "updating ondisk filename ...") on the C
    stdout, where a command may be writing JSON (``predict --json``): send them to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        if os.name == "posix":
            ctypes.CDLL(None).fflush(None)  # what C buffered goes to stderr, before stdout is put back
        os.dup2(saved, 1)
        os.close(saved)


def write_on_disk(index: PhraseIndex, folder: Path) -> None:
    """Write an IVF ``index`` (lists in memory) into ``folder`` as :data:`INDEX_FILE` (the
    quantiser and the lists' directory) and :data:`LISTS_FILE` (the lists, ``OnDiskInvertedLists``).

    Raises:
        ValueError: ``index`` is not an inverted-file index.
    """
    faiss = faiss_module()
    ivf_in = faiss.try_extract_index_ivf(index.index)
    if ivf_in is None:
        raise ValueError(f"only an inverted-file index keeps its lists on disk, not {index.factory!r}")
    empty = faiss.clone_index(index.index)  # the trained quantiser and encoder, without the lists
    empty.reset()
    ivf = faiss.extract_index_ivf(empty)
    lists = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(folder / LISTS_FILE))
    source = faiss.InvertedListsPtrVector()
    source.push_back(ivf_in.invlists)
    with _notes_to_stderr():
        empty.ntotal = ivf.ntotal = lists.merge_from_multiple(source.data(), source.size(), False)
    ivf.replace_invlists(lists, True)
    lists.this.disown()  # the index owns and closes it
    faiss.write_index(empty, str(folder / INDEX_FILE))


def read_on_disk(folder: Path, factory: str) -> PhraseIndex:
    """The index :func:`write_on_disk` wrote into ``folder`` (which may have moved since), its lists
    memory-mapped read-only.

    Raises:
        ValueError: the files are missing or damaged.
    """
    faiss = faiss_module()
    path = Path(folder) / INDEX_FILE
    try:
        with _notes_to_stderr():
            index = faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)
    except RuntimeError as exc:
        raise ValueError(f"{path} or its {LISTS_FILE} cannot be read ({exc}); fit the phrase generator again") from None
    return PhraseIndex(index, factory)
