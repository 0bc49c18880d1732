"""Every neighbour look-up goes through the faiss index and returns what brute force returns."""

from __future__ import annotations

import numpy as np
import pytest

from core.explore import Explorer
from core.phrases.index import PhraseIndex
from core.tags.neighbours import nearest
from core.vector_index import VectorIndex, auto_factory
from core.vectors import l2n
from core.workspace import open_workspace

DEMO_ROWS, DIM = 2536, 1280  # the demo's size and EfficientNet-Lite0's feature width


def _brute(x: np.ndarray, q: np.ndarray, k: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    s = x @ q
    if exclude is not None:
        s[exclude] = -np.inf
    top = np.argsort(-s, kind="stable")[:k]
    return top, s[top]


def test_same_rule_and_class_as_the_phrase_index():
    assert PhraseIndex is VectorIndex and auto_factory(DEMO_ROWS) == "Flat"


def test_top_matches_brute_force_at_demo_size():
    rng = np.random.default_rng(0)
    x = l2n(rng.normal(size=(DEMO_ROWS, DIM)).astype(np.float32))
    index = VectorIndex.build(x)
    for row in rng.choice(DEMO_ROWS, 25, replace=False):
        got = index.top(x[row], 10, exclude=int(row))
        ids, scores = _brute(x, x[row], 10, exclude=int(row))
        assert [i for i, _ in got] == list(ids)
        np.testing.assert_allclose([s for _, s in got], scores, atol=1e-5)
    assert len(index.top(x[0], 10)) == 10 and index.top(x[0], 10)[0][0] == 0


def test_explorer_neighbours_match_brute_force(fitted_workspace):
    ws = open_workspace(fitted_workspace)
    ex = Explorer(ws)
    x = l2n(ws.visual)
    for row in range(0, len(x), 7):
        ids, scores = _brute(x, x[row], 8, exclude=row)
        got = ex.neighbours(row, k=8)
        np.testing.assert_allclose([s for _, s in got], scores, atol=1e-5)
        assert {i for i, _ in got} == set(ids) or np.unique(np.round(scores, 5)).size < len(scores)  # ties may swap
    new = ex.neighbours(ws.visual[3] * 2.0, k=3)  # a new image's features: itself comes first
    assert new[0][0] == 3 and new[0][1] == pytest.approx(1.0, abs=1e-5)


def test_tag_neighbours_match_brute_force():
    rng = np.random.default_rng(1)
    pool = l2n(rng.normal(size=(500, 64)).astype(np.float32))
    own = np.arange(0, 500, 5)
    ids, dist = nearest(pool[own], pool, 6, metric="embedding", self_index=own)
    d = 1.0 - pool[own] @ pool.T
    d[np.arange(len(own)), own] = np.inf
    expect = np.argsort(d, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(ids, expect)
    np.testing.assert_allclose(dist, np.take_along_axis(d, expect, axis=1), atol=1e-5)
    ids2, _ = nearest(pool[:3], pool, 4, metric="embedding", self_index=np.array([-1, -1, -1]))
    assert list(ids2[:, 0]) == [0, 1, 2]  # no own row to leave out: each finds itself first
