from __future__ import annotations

import numpy as np

from core.phrases.crossfit import crossfit_phrases
from core.phrases.generator import GeneratorConfig, PhraseGenerator, compute_prototypes, fit_phrase_generator, l2n
from core.phrases.vocab import PhraseVocabulary


def _corpus(n=240, d=32, seed=0):
    """Images from 6 visual clusters; each cluster has its own phrases, plus singleton phrases."""
    r = np.random.default_rng(seed)
    centers = r.normal(size=(6, d)) * 2
    c = r.integers(0, 6, n)
    x = (centers[c] + r.normal(size=(n, d))).astype(np.float32)
    words = ["apple", "boat", "cat", "drum", "eagle", "flower"]
    lists = [[words[k], f"{words[k]} picture", f"unique {i}"] for i, k in enumerate(c)]
    return x, lists, c, words


def test_generator_learns_phrases_and_large_output_space(tmp_path):
    x, lists, c, words = _corpus()
    cfg = GeneratorConfig(epochs=30, bottleneck_dim=16, hidden_dim=64, min_images_softmax=2)
    gen = fit_phrase_generator(x[:200], lists[:200], cfg)
    # singletons are not softmax classes but have prototypes (the large output space)
    assert not gen.vocab.softmax[gen.vocab.index["unique 0"]]
    assert len(gen.output_ids) > len(gen.class_ids)
    top = gen.top_phrases(x[200:], k=10)
    hits = np.mean([any(words[k] in p for p, _ in t) for t, k in zip(top, c[200:])])
    assert hits > 0.9
    singles = np.mean([any(p.startswith("unique") for p, _ in t) for t in top])
    assert singles > 0.5  # rare phrases are reachable through their prototypes
    gen.save(tmp_path / "g")
    again = PhraseGenerator.load(tmp_path / "g")
    assert again.top_phrases(x[200:], k=10) == top
    small = PhraseGenerator.load(tmp_path / "g")
    small.config.output_space = "small"
    small_top = small.top_phrases(x[200:], k=3)
    assert all(not p.startswith("unique") for t in small_top for p, _ in t)
    assert np.mean([any(words[k] in p for p, _ in t) for t, k in zip(small_top, c[200:])]) > 0.9


def test_sampled_softmax_path_trains():
    x, lists, c, words = _corpus()
    cfg = GeneratorConfig(epochs=20, bottleneck_dim=16, hidden_dim=64, sampled_threshold=3, n_negatives=4, output_space="small")
    gen = fit_phrase_generator(x, lists, cfg)
    top = gen.top_phrases(x[:50], k=3)
    assert np.mean([any(words[k] in p for p, _ in t) for t, k in zip(top, c[:50])]) > 0.8


def test_prototypes_are_mean_embeddings():
    emb = l2n(np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32))
    v = PhraseVocabulary.build([["a"], ["a", "b"], ["b"]], max_df=1.0)
    p = compute_prototypes(emb, v.incidence([["a"], ["a", "b"], ["b"]]))
    assert np.allclose(p[v.index["a"]], l2n(emb[:2].mean(0, keepdims=True))[0])


def test_crossfit_never_uses_a_rows_own_text():
    x, lists, _c, _ = _corpus(n=120)
    corpus = np.ones(120, dtype=bool)
    corpus[100:] = False  # "test" rows
    cfg = GeneratorConfig(epochs=10, bottleneck_dim=16, hidden_dim=64)
    full, out = crossfit_phrases(x, lists, corpus, cfg, n_folds=3, k=5)
    assert set(out.fold[:100]) == {0, 1, 2} and (out.fold[100:] == -1).all()
    vocab = full.vocab.phrases
    for i in range(100):  # a training row's own singleton phrase comes only from itself: never predicted
        own = f"unique {i}"
        assert own not in {vocab[j] for j in out.ids[i] if j >= 0}


def test_a_large_output_space_is_fitted_shard_by_shard_saved_with_its_lists_on_disk_and_mapped_on_load(tmp_path):
    import gc
    import shutil
    from dataclasses import replace
    from pathlib import Path

    import faiss
    import pytest

    from core.phrases.index import INDEX_FILE, LISTS_FILE

    x, lists, _, _ = _corpus(n=1500)
    # the threshold lowered: 1,500 prototypes count as a space past memory; an IVF index is asked for
    cfg = GeneratorConfig(epochs=5, bottleneck_dim=16, hidden_dim=64, index_factory="IVF16,SQfp16", on_disk_above=100)
    gen = fit_phrase_generator(x, lists, cfg)
    reference = fit_phrase_generator(x, lists, replace(cfg, on_disk_above=None))  # everything in memory, as before
    assert reference.prototypes.flags.writeable and not gen.prototypes.flags.writeable  # mapped from the scratch file
    assert np.array_equal(gen.prototypes, reference.prototypes) and np.array_equal(gen.output_ids, reference.output_ids)
    in_memory = reference.top_phrases(x[:300], k=3)
    assert gen.top_phrases(x[:300], k=3) == in_memory  # the fit's own index, built shard by shard on disk
    assert gen.index_on_disk and len(gen.output_ids) > 100
    lists_of = lambda g: type(faiss.downcast_InvertedLists(faiss.extract_index_ivf(g.index.index).invlists))  # noqa: E731
    assert lists_of(gen) is faiss.OnDiskInvertedLists and lists_of(reference) is faiss.ArrayInvertedLists
    scratch = Path(gen._scratch.name)
    assert {p.name for p in scratch.rglob("*")} == {"prototypes.safetensors", "index", INDEX_FILE, LISTS_FILE}
    gen.save(tmp_path / "g")
    assert (tmp_path / "g" / INDEX_FILE).is_file() and (tmp_path / "g" / LISTS_FILE).stat().st_size > 0

    moved = shutil.move(tmp_path / "g", tmp_path / "moved")  # the files find each other where they are
    again = PhraseGenerator.load(moved)
    assert lists_of(again) is faiss.OnDiskInvertedLists  # mapped from the file, not read into memory
    assert again.top_phrases(x[:300], k=3) == in_memory
    assert not again.prototypes.flags.writeable and np.array_equal(again.output_ids, gen.output_ids)  # mapped, stored

    again.save(moved)  # over the files it maps: replaced by renaming, its index files left as they are
    assert again.top_phrases(x[:300], k=3) == in_memory == PhraseGenerator.load(moved).top_phrases(x[:300], k=3)
    again.save(tmp_path / "copy")  # a loaded generator saved elsewhere: its files copied
    assert PhraseGenerator.load(tmp_path / "copy").top_phrases(x[:300], k=3) == in_memory
    (tmp_path / "copy" / INDEX_FILE).write_bytes(b"not an index")
    with pytest.raises(ValueError, match=INDEX_FILE):
        PhraseGenerator.load(tmp_path / "copy")

    below = fit_phrase_generator(x[:200], lists[:200], GeneratorConfig(epochs=2, bottleneck_dim=16, hidden_dim=64))
    below.save(tmp_path / "small")  # the default threshold (every automatic IVF index): an exact index is built on load
    assert not (tmp_path / "small" / INDEX_FILE).exists() and not below.index_on_disk and below._scratch is None
    del gen, again
    gc.collect()
    assert not scratch.exists()  # the fit's scratch files go with the generator


def _unique_rows_reference(prototypes: np.ndarray) -> np.ndarray:
    """What distinct_prototype_ids computed before it hashed rows: a sort of every rounded row."""
    nonzero = np.flatnonzero(np.abs(prototypes).sum(1) > 0)
    _, first = np.unique(np.round(prototypes[nonzero], 5), axis=0, return_index=True)
    return nonzero[np.sort(first)]


def test_hashed_distinct_prototypes_equal_the_sorted_rows_even_when_hashes_collide(monkeypatch):
    import core.phrases.generator as generator

    x, lists, _, _ = _corpus(n=600)
    gen = fit_phrase_generator(x, lists, GeneratorConfig(epochs=2, bottleneck_dim=16, hidden_dim=64))
    rng = np.random.default_rng(0)
    base = gen.prototypes
    # duplicates (exact, and within the rounding), -0.0 against 0.0, zero rows, spread over shards
    dup = np.concatenate([base, base[rng.integers(0, len(base), 300)], np.zeros((20, 16), np.float32)])
    dup[len(base) : len(base) + 100] += np.float32(1e-7)
    dup[-5:, 0] = -0.0
    dup[-3:, 1:] = base[:3, 1:]
    dup[-3:, 0] = np.where(base[:3, 0] == 0, np.float32(-0.0), base[:3, 0])
    dup = dup[rng.permutation(len(dup))]
    expected = _unique_rows_reference(dup)
    assert len(expected) < len(dup) - 300
    assert np.array_equal(generator.distinct_prototype_ids(dup, shard=97), expected)
    assert np.array_equal(gen.output_ids, _unique_rows_reference(gen.prototypes))
    # a 64-bit collision is rare: force every row into a few hashes, the rows are then compared
    monkeypatch.setattr(generator, "_row_hashes", lambda rows: (np.abs(rows[:, 0]) > 0.1).astype(np.uint64))
    assert np.array_equal(generator.distinct_prototype_ids(dup, shard=97), expected)


def test_hashed_distinct_prototypes_equal_the_sorted_rows_on_the_demo(fitted_workspace):
    from core.workspace import open_workspace

    prototypes = open_workspace(fitted_workspace).generator.prototypes
    from core.phrases.generator import distinct_prototype_ids

    assert np.array_equal(distinct_prototype_ids(prototypes, shard=500), _unique_rows_reference(prototypes))


def test_prototypes_written_shard_by_shard_equal_those_in_memory(tmp_path):
    from safetensors.numpy import load_file

    _x, lists, _, _ = _corpus(n=300)
    emb = l2n(np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32))
    v = PhraseVocabulary.build(lists, max_df=1.0)
    inc = v.incidence(lists)
    memory = compute_prototypes(emb, inc)
    sharded = compute_prototypes(emb, inc, tmp_path / "p.safetensors", shard=64)  # several shards
    assert not sharded.flags.writeable and np.array_equal(sharded, memory)
    assert np.array_equal(load_file(str(tmp_path / "p.safetensors"))["prototypes"], memory)  # the reference reader agrees
