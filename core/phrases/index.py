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
disk: :func:`build_on_disk` trains the quantiser on a sample, adds the vectors shard by shard and
merges the shards' lists with faiss's ``OnDiskInvertedLists`` into one ``.ivfdata`` file beside the
index file, and :func:`read_on_disk` maps them read-only, so neither the build nor a process that
searches holds every vector's codes: a search holds the coarse quantiser (nlist x d floats) and the
page cache what searches touch (same results as the lists in memory, about 30-45% slower per
search: ``docs/results.md`` B8). A generator does this above :attr:`GeneratorConfig.on_disk_above`
prototypes (by default every automatic IVF index, above :data:`EXACT_MAX`), from its fit on: a save
copies the files and a load maps them. Only faiss's own format is read: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from core.vector_index import EXACT_MAX, K_FACTOR, NPROBE, VectorIndex, auto_factory, faiss_module, ivf_nlist, ivf_train_size

#: the phrase index is the product's vector index over prototypes
PhraseIndex = VectorIndex

#: The files of an index with its lists on disk, side by side in one folder.
INDEX_FILE, LISTS_FILE = "phrase_index.faiss", "phrase_lists.ivfdata"
#: Vectors handled at a time by what is built shard by shard (prototypes, the index's lists).
SHARD = 262_144

__all__ = [
    "EXACT_MAX",
    "INDEX_FILE",
    "K_FACTOR",
    "LISTS_FILE",
    "NPROBE",
    "SHARD",
    "PhraseIndex",
    "auto_factory",
    "build_on_disk",
    "ivf_nlist",
    "ivf_train_size",
    "on_disk",
    "read_on_disk",
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


def build_on_disk(
    take: Callable[[np.ndarray], np.ndarray], n: int, factory: str | None, folder: Path, *, seed: int = 0, shard: int = SHARD
) -> PhraseIndex:
    """Build an IVF index over ``n`` vectors straight into ``folder`` with its lists on disk, one
    shard at a time, and return it mapped (:func:`read_on_disk`). No step holds more than one
    shard's vectors and codes (and the training sample): the vectors may be past memory.

    The quantiser is trained on the sample :meth:`PhraseIndex.build` draws (same seed, same rows),
    so the index answers exactly as the one built in memory. Each shard is added to a copy of the
    trained empty index and written; then the shards' lists are merged into :data:`LISTS_FILE`
    (``OnDiskInvertedLists``) and the shard files removed.

    Args:
        take: the vectors at given positions (sorted int64 positions in ``[0, n)``), float32 rows.
        n: how many vectors.
        factory: a faiss factory string with an inverted file (``None``: :func:`auto_factory`).
        folder: where :data:`INDEX_FILE` and :data:`LISTS_FILE` are written.
        seed: the training sample's seed.
        shard: vectors added per shard.

    Raises:
        ValueError: ``factory`` is not an inverted-file index.
    """
    faiss = faiss_module()
    fac = factory or auto_factory(n)
    first = np.ascontiguousarray(take(np.zeros(1, dtype=np.int64)), dtype=np.float32)
    index = faiss.index_factory(first.shape[1], fac, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        raise ValueError(f"only an inverted-file index keeps its lists on disk, not {fac!r}")
    n_train = ivf_train_size(n, ivf.nlist)
    rows = np.random.default_rng(seed).choice(n, n_train, replace=False) if n_train < n else np.arange(n)
    index.train(np.ascontiguousarray(take(np.sort(rows))[np.argsort(np.argsort(rows))], dtype=np.float32))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(0, n, shard):
        part = faiss.clone_index(index)
        part.add_with_ids(np.ascontiguousarray(take(np.arange(s, min(s + shard, n))), dtype=np.float32),
                          np.arange(s, min(s + shard, n), dtype=np.int64))  # fmt: skip
        paths.append(folder / f"shard{len(paths)}.faiss")
        faiss.write_index(part, str(paths[-1]))
        del part
    shards = [faiss.read_index(str(p), faiss.IO_FLAG_MMAP) for p in paths]  # kept alive until merged
    source = faiss.InvertedListsPtrVector()
    for part in shards:
        source.push_back(faiss.extract_index_ivf(part).invlists)
    lists = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(folder / LISTS_FILE))
    with _notes_to_stderr():
        index.ntotal = ivf.ntotal = lists.merge_from_multiple(source.data(), source.size(), False)
    ivf.replace_invlists(lists, True)
    lists.this.disown()  # the index owns and closes it
    faiss.write_index(index, str(folder / INDEX_FILE))
    del shards, source, index
    for p in paths:
        p.unlink()
    return read_on_disk(folder, fac)


def read_on_disk(folder: Path, factory: str) -> PhraseIndex:
    """The index :func:`build_on_disk` wrote into ``folder`` (which may have moved since), its lists
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
