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


def test_a_large_output_space_is_saved_with_its_lists_on_disk_and_mapped_on_load(tmp_path):
    import shutil

    import faiss
    import pytest

    from core.phrases.index import INDEX_FILE, LISTS_FILE

    x, lists, _, _ = _corpus(n=1500)
    # the threshold lowered: 1,500 prototypes count as a space past memory; an IVF index is asked for
    cfg = GeneratorConfig(epochs=5, bottleneck_dim=16, hidden_dim=64, index_factory="IVF16,SQfp16", on_disk_above=100)
    gen = fit_phrase_generator(x, lists, cfg)
    in_memory = gen.top_phrases(x[:300], k=3)  # the index the fit built, lists in memory
    assert gen.index_on_disk and len(gen.output_ids) > 100
    gen.save(tmp_path / "g")
    assert (tmp_path / "g" / INDEX_FILE).is_file() and (tmp_path / "g" / LISTS_FILE).stat().st_size > 0

    moved = shutil.move(tmp_path / "g", tmp_path / "moved")  # the files find each other where they are
    again = PhraseGenerator.load(moved)
    lists_type = type(faiss.downcast_InvertedLists(faiss.extract_index_ivf(again.index.index).invlists))
    assert lists_type is faiss.OnDiskInvertedLists  # mapped from the file, not read into memory
    assert type(faiss.downcast_InvertedLists(faiss.extract_index_ivf(gen.index.index).invlists)) is faiss.ArrayInvertedLists
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
    assert not (tmp_path / "small" / INDEX_FILE).exists() and not below.index_on_disk
