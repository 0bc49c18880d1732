from __future__ import annotations

import numpy as np

from core.phrases.generator import l2n
from core.phrases.index import EXACT_MAX, PhraseIndex, auto_factory


def test_auto_factory_thresholds():
    assert auto_factory(1000) == "Flat"
    assert auto_factory(EXACT_MAX) == "Flat"
    big = auto_factory(10_000_000)
    assert big == "IVF16384,PQ64x4fs,Refine(SQfp16)"
    assert auto_factory(1_000_000, dim=48) == "IVF4096,PQ16x4fs,Refine(SQfp16)"  # codes must divide the dimension
    assert auto_factory(1_000_000, dim=7) == "Flat"


def test_exact_and_quantised_search_agree_on_clustered_data(tmp_path):
    rng = np.random.default_rng(0)
    centers = l2n(rng.normal(size=(200, 64)))
    x = l2n(centers[rng.integers(0, 200, 20_000)] + 0.1 * rng.normal(size=(20_000, 64)))
    q = l2n(centers[rng.integers(0, 200, 100)] + 0.1 * rng.normal(size=(100, 64)))
    exact = PhraseIndex.build(x)
    s, i = exact.search(q, 3)
    assert np.allclose(s[:, 0], (q @ x.T).max(1), atol=1e-5)
    approx = PhraseIndex.build(x, "IVF256,PQ64x4fs,Refine(SQfp16)")  # the default family above 100k, small
    _, j = approx.search(q, 3)
    recall = np.mean([len(set(a) & set(b)) / 3 for a, b in zip(i, j)])
    assert recall >= 0.9
    approx.save(tmp_path / "ix.faiss")
    again = PhraseIndex.load(tmp_path / "ix.faiss", approx.factory)
    assert (again.search(q, 3)[1] == j).all()


def test_k_larger_than_index():
    idx = PhraseIndex.build(l2n(np.eye(4, dtype=np.float32)))
    _s, i = idx.search(np.eye(4, dtype=np.float32)[:1], 10)
    assert i.shape == (1, 4) and i[0, 0] == 0
