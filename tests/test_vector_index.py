"""Every neighbour look-up goes through one index factory and returns what brute force returns;
above the exact index's size the PCA-reduced index finds what exact search finds, its projection is
saved by the fit, kept by a retrain, and rebuilt (with progress) when missing or stale."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import core.vector_index
from core.classifiers import ClassifierConfig
from core.explore import Explorer
from core.phrases.generator import GeneratorConfig
from core.phrases.index import PhraseIndex
from core.pipeline import FitConfig, fit
from core.progress import silent
from core.tags.neighbours import nearest
from core.vector_index import (
    FILE,
    FOLDER,
    STAGE,
    FlatScan,
    Projection,
    ReducedIndex,
    VectorIndex,
    auto_factory,
    neighbour_index,
    visual_index,
)
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


def _clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Rows around 40 centres in a 24-dimensional subspace of ``d`` dimensions, plus small noise
    everywhere (visual features are clustered and far from isotropic)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((24, d))
    centres = rng.standard_normal((40, 24)) * 3
    x = centres[rng.integers(0, 40, n)] + rng.standard_normal((n, 24))
    return (x @ basis + 0.3 * rng.standard_normal((n, d))).astype(np.float32)


def _same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    """The same rows in the same order, with the same cosines (to float32 rounding)."""
    return [r for r, _ in a] == [r for r, _ in b] and np.allclose([s for _, s in a], [s for _, s in b], atol=1e-5)


def test_reduced_index_finds_the_exact_neighbours():
    x = _clustered(6000, 300)
    exact, reduced = VectorIndex.build(l2n(x)), ReducedIndex(x, Projection.fit(x))
    hits = 0
    for row in range(0, 6000, 200):
        q = l2n(x[row : row + 1])[0]
        want, got = exact.top(q, 8, exclude=row), reduced.top(q, 8, exclude=row)
        assert row not in [r for r, _ in got] and len(got) == 8
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        np.testing.assert_allclose([s for _, s in got], l2n(x[[r for r, _ in got]]) @ q, rtol=1e-5)  # exact cosines
        hits += len({r for r, _ in want} & {r for r, _ in got})
    assert hits / (8 * 30) >= 0.95


def test_the_projection_is_cached_in_the_workspace_and_rebuilt_when_stale(fitted_workspace, tmp_path, monkeypatch):
    ws_dir = shutil.copytree(fitted_workspace, tmp_path / "ws")
    ws = open_workspace(ws_dir)
    small = visual_index(ws.visual, ws.path)  # the exact index below the threshold: nothing cached
    assert isinstance(small, VectorIndex) and not (ws_dir / FOLDER).exists()

    monkeypatch.setattr(core.vector_index, "EXACT_MAX", 10)
    built = visual_index(ws.visual, ws.path)
    assert isinstance(built, ReducedIndex) and (ws_dir / FOLDER / FILE).is_file()
    loaded = visual_index(ws.visual, ws.path)
    assert not loaded.projection.projected.flags.writeable  # read from the cache (memory-mapped), not rebuilt
    q = l2n(ws.visual[3:4])[0]
    assert _same(loaded.top(q, 5, exclude=3), built.top(q, 5, exclude=3))
    assert _same(built.top(q, 5, exclude=3), small.top(q, 5, exclude=3))

    other = open_workspace(ws_dir)
    flipped = ws.visual[::-1].copy()
    other.__dict__["_arrays"] = {**ws.arrays, "visual": flipped}  # other features than the cache's: stale
    rebuilt = visual_index(other.visual, other.path)
    assert rebuilt.projection.projected.flags.writeable  # built again, not read from the cache
    n = len(flipped)
    assert _same([(n - 1 - r, s) for r, s in rebuilt.top(q, 5, exclude=n - 1 - 3)], built.top(q, 5, exclude=3))
    assert visual_index(other.visual, other.path).projection.projected.flags.writeable is False  # and cached in its place


def test_a_damaged_cache_is_rebuilt(fitted_workspace, tmp_path, monkeypatch):
    ws_dir = shutil.copytree(fitted_workspace, tmp_path / "ws")
    monkeypatch.setattr(core.vector_index, "EXACT_MAX", 10)
    (ws_dir / FOLDER).mkdir()
    (ws_dir / FOLDER / FILE).write_bytes(b"\x10\0\0\0\0\0\0\0{not json}")
    ws = open_workspace(ws_dir)
    index = visual_index(ws.visual, ws.path)
    assert isinstance(index, ReducedIndex) and len(index.projection.projected) == len(ws.visual)


@pytest.mark.parametrize("k", [0, 3])
def test_explorer_neighbours_through_the_reduced_index(fitted_workspace, tmp_path, monkeypatch, k):
    from core.explore import Explorer

    ex = Explorer(open_workspace(shutil.copytree(fitted_workspace, tmp_path / "ws")))
    exact = VectorIndex.build(l2n(ex.ws.visual)).top(l2n(ex.ws.visual[4:5])[0], k, exclude=4) if k else []
    monkeypatch.setattr(core.vector_index, "EXACT_MAX", 10)
    assert _same(ex.neighbours(4, k=k), exact)


def _quick_config(cache_dir) -> FitConfig:
    """A fast fit whose phrase index counts as large too: an IVF index saved with its lists on disk."""
    generator = GeneratorConfig(epochs=5, index_factory="IVF16,SQfp16", on_disk_above=10)
    classifier = ClassifierConfig(max_epochs=20)
    return FitConfig(n_folds=2, projections=False, cache_dir=str(cache_dir), generator=generator, classifier=classifier)


def test_the_fit_saves_its_indexes_and_a_retrain_keeps_them(small_dataset, cache_dir, tmp_path, monkeypatch):
    import faiss

    from core.explore import Explorer
    from core.labels.retrain import retrain
    from core.labels.session import open_label_store
    from core.phrases.index import LISTS_FILE

    monkeypatch.setattr(core.vector_index, "EXACT_MAX", 10)  # the demo subset counts as a large workspace
    ws = fit(small_dataset, tmp_path / "ws", _quick_config(cache_dir), progress=silent)
    path, n = ws.path / FOLDER / FILE, len(ws.items)
    assert path.is_file() and ws.manifest["timings_s"]["neighbour_index"] >= 0
    # the phrase index: its lists on disk in the workspace's generator, mapped by a reader, and the
    # phrases it finds for the test images are those the fit stored (searched with the lists in memory)
    gen, test = ws.generator, np.flatnonzero(ws.items["is_test"].to_numpy())
    assert (ws.path / "generator" / LISTS_FILE).is_file()
    assert isinstance(faiss.downcast_InvertedLists(faiss.extract_index_ivf(gen.index.index).invlists), faiss.OnDiskInvertedLists)
    np.testing.assert_array_equal(gen.search(ws.coembedding[test], 3)[1], ws.phrase_ids[test, :3])
    calls: list[tuple[str, int, int]] = []
    fitted = Explorer(open_workspace(ws.path)).neighbours(4, progress=lambda *a: calls.append(a))
    assert len(fitted) == 8 and not calls  # read from the fit's file: nothing built

    store = open_label_store(ws)
    item = str(ws.items.at[0, "item"])
    store.set_labels(item, next(label for label in ws.labels if label not in ws.items.at[0, "labels"]), user="ann")
    retrain(ws, store)  # changes no visual feature: the index stays
    again = Explorer(open_workspace(ws.path))
    assert path.is_file() and _same(again.neighbours(4, progress=lambda *a: calls.append(a)), fitted) and not calls

    path.unlink()  # a workspace fitted before fits saved the index: built on first use, with progress
    lazy = Explorer(open_workspace(ws.path)).neighbours(4, progress=lambda *a: calls.append(a))
    assert calls[0] == (STAGE, 0, n) and calls[-1] == (STAGE, n, n)
    assert _same(lazy, fitted) and path.is_file()  # the same neighbours, and cached for the next detail


def test_the_factory_picks_by_size_and_every_choice_agrees(monkeypatch):
    x = _clustered(600, 64)
    exact = neighbour_index(x)
    assert isinstance(exact, VectorIndex)
    monkeypatch.setattr(core.vector_index, "EXACT_MAX", 100)
    scan, reduced = neighbour_index(l2n(x), reduce=False), neighbour_index(x)
    assert isinstance(scan, FlatScan) and isinstance(reduced, ReducedIndex)
    for row in (0, 123, 599):
        q = l2n(x[row : row + 1])[0]
        assert _same(scan.top(q, 5, exclude=row), exact.top(q, 5, exclude=row))
        assert _same(reduced.top(q, 5, exclude=row), exact.top(q, 5, exclude=row))  # 64-d: the projection keeps every direction
