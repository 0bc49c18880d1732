from __future__ import annotations

import faiss
import numpy as np
import pytest

from core.config import GeneratorConfig
from core.phrases.index import (
    EXACT_MAX,
    INDEX_FILE,
    LISTS_FILE,
    NPROBE,
    PhraseIndex,
    auto_factory,
    build_on_disk,
    ivf_train_size,
    on_disk,
    read_on_disk,
)
from core.vectors import l2n


def test_auto_factory_thresholds():
    assert auto_factory(1000) == "Flat"
    assert auto_factory(EXACT_MAX) == "Flat"
    assert auto_factory(EXACT_MAX + 1) == "IVF1024,SQfp16"
    assert auto_factory(1_000_000) == "IVF4096,SQfp16"
    assert auto_factory(10_000_000) == "IVF16384,SQfp16"


def test_ivf_train_size_follows_faiss_minimum():
    assert ivf_train_size(10_000_000, 16384) == 39 * 16384
    assert ivf_train_size(1_000_000, 4096) == 256 * 1024
    assert ivf_train_size(200_000, 1024) == 200_000


def test_exact_and_quantised_search_agree_on_clustered_data(tmp_path):
    rng = np.random.default_rng(0)
    centers = l2n(rng.normal(size=(200, 64)))
    x = l2n(centers[rng.integers(0, 200, 20_000)] + 0.1 * rng.normal(size=(20_000, 64)))
    q = l2n(centers[rng.integers(0, 200, 100)] + 0.1 * rng.normal(size=(100, 64)))
    exact = PhraseIndex.build(x)
    s, i = exact.search(q, 3)
    assert np.allclose(s[:, 0], (q @ x.T).max(1), atol=1e-5)
    for factory in ("IVF256,SQfp16", "IVF256,PQ64x4fs,Refine(SQfp16)"):  # the default above 100k, and a user's
        approx = PhraseIndex.build(x, factory)
        _, j = approx.search(q, 3)
        recall = np.mean([len(set(a) & set(b)) / 3 for a, b in zip(i, j)])
        assert recall >= 0.9, factory
        approx.save(tmp_path / "ix.faiss")
        again = PhraseIndex.load(tmp_path / "ix.faiss", approx.factory)
        assert faiss.extract_index_ivf(again.index).nprobe == NPROBE
        assert (again.search(q, 3)[1] == j).all()


def test_k_larger_than_index():
    idx = PhraseIndex.build(l2n(np.eye(4, dtype=np.float32)))
    _s, i = idx.search(np.eye(4, dtype=np.float32)[:1], 10)
    assert i.shape == (1, 4) and i[0, 0] == 0


def test_which_indexes_keep_their_lists_on_disk():
    default = GeneratorConfig().on_disk_above
    assert default == EXACT_MAX and on_disk(EXACT_MAX + 1, None, default)  # every automatic IVF index
    assert not on_disk(EXACT_MAX, None, default)
    assert not on_disk(10_000_000, "Flat", default) and not on_disk(10_000_000, "HNSW32", default)  # no inverted lists
    assert not on_disk(10_000_000, None, None) and on_disk(500, "IVF16,SQfp16", 100)


def test_an_index_built_shard_by_shard_on_disk_answers_as_in_memory_and_keeps_stdout_clean(tmp_path, capfd):
    rng = np.random.default_rng(1)
    x = l2n(rng.normal(size=(3000, 32)).astype(np.float32))
    memory = PhraseIndex.build(x, "IVF16,SQfp16", seed=3)
    taken = []

    def take(rows):
        taken.append(len(rows))
        return x[rows]

    capfd.readouterr()
    disk = build_on_disk(take, len(x), "IVF16,SQfp16", tmp_path, seed=3, shard=700)  # 5 shards
    out, err = capfd.readouterr()
    assert out == "" and err  # faiss's notes go to stderr: a command's stdout may be JSON
    assert max(taken[2:]) <= 700 and sum(taken[2:]) == len(x)  # after the probe row and the training sample
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX_FILE, LISTS_FILE]  # the shard files removed
    s1, i1 = memory.search(x[:50], 3)
    s2, i2 = disk.search(x[:50], 3)
    assert (i1 == i2).all() and np.allclose(s1, s2)  # same training sample, same quantiser, same codes
    assert isinstance(faiss.downcast_InvertedLists(faiss.extract_index_ivf(disk.index).invlists), faiss.OnDiskInvertedLists)
    assert (read_on_disk(tmp_path, disk.factory).search(x[:50], 3)[1] == i1).all()
    with pytest.raises(ValueError, match="inverted-file"):
        build_on_disk(lambda rows: x[rows], len(x), "Flat", tmp_path / "flat")
