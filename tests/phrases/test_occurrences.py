"""Past ``on_disk_above`` phrases the fit's vocabulary and incidence are made in Arrow: exactly those of the lists."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.phrases.crossfit import crossfit_phrases
from core.phrases.generator import GeneratorConfig, fit_phrase_generator
from core.phrases.occurrences import (
    PhraseOccurrences,
    extract_fit_phrases,
    extract_occurrences,
    fit_input,
    has_phrases,
    occurrences_from_lists,
)
from core.phrases.stage_cache import stage_key
from core.phrases.vocab import PhraseVocabulary, extract_phrases
from core.phrases.vocab_file import PhraseColumn
from tests.conftest import demo_rows
from tests.phrases.test_generator import _corpus


@pytest.fixture(scope="module")
def demo_text() -> tuple[list[str], list[list[str]], list[list[str]]]:
    rows = demo_rows()
    texts, tags = [r["text"] for r in rows], [r["tags"].split(";") for r in rows]
    return texts, tags, [extract_phrases(t, g) for t, g in zip(texts, tags)]


def _assert_same_vocabulary(arrow: PhraseVocabulary, python: PhraseVocabulary) -> None:
    assert isinstance(arrow.phrases, PhraseColumn) and isinstance(python.phrases, list)
    assert list(arrow.phrases) == python.phrases  # same ids, same order (ties broken by phrase)
    assert arrow.counts.dtype == python.counts.dtype and np.array_equal(arrow.counts, python.counts)
    assert np.array_equal(arrow.softmax, python.softmax)


def _assert_same_incidence(a, b) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype and a.has_canonical_format and b.has_canonical_format
    for name in ("indptr", "indices", "data"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name


@pytest.mark.parametrize(
    "settings",
    [
        {"min_images_softmax": 2, "max_df": 0.2},
        {"min_images_softmax": 3, "max_df": 0.01},  # many phrases over the max_df limit
        {"min_images_softmax": 1, "max_df": 1.0, "max_softmax": 300},  # softmax cut by max_softmax
    ],
)
def test_the_demo_vocabulary_and_incidence_counted_in_arrow_equal_the_python_ones(demo_text, settings):
    texts, tags, lists = demo_text
    occ = extract_occurrences(texts, tags, extract_phrases, batch=97)  # batches that do not divide the images
    assert len(occ) == len(lists) and occ.n_occurrences == sum(map(len, lists)) > 15_000
    assert occ.table.column("phrase").to_pylist() == [p for lst in lists for p in lst]
    python, arrow = PhraseVocabulary.build(lists, **settings), PhraseVocabulary.build(occ, **settings)
    assert len(python) > 1000 and (np.diff(python.counts) == 0).sum() > 500  # ties in counts, broken by phrase
    _assert_same_vocabulary(arrow, python)
    _assert_same_incidence(arrow.incidence(occ), python.incidence(lists))
    _assert_same_incidence(python.incidence(occ), python.incidence(lists))  # a vocabulary held as a list
    assert np.array_equal(has_phrases(occ), has_phrases(lists))


def test_ties_unicode_duplicates_and_empty_images_match():
    lists = [
        ["b", "a", "é", "ж", "a", "Z"],  # a phrase twice on one image counts once (its incidence entry is 2, as before)
        [],
        ["a", "z", "Z", "😀", "é"],
        ["😀", "b", "ж", "e\u0301"],
        ["zz", "a"],
        [],
    ]
    occ = occurrences_from_lists(lists, batch=2)
    for max_df in (1.0, 0.1):  # 0.1: the limit is max(0.6, 3), so "a" (on 3 images) stays
        python = PhraseVocabulary.build(lists, min_images_softmax=2, max_df=max_df)
        arrow = PhraseVocabulary.build(occ, min_images_softmax=2, max_df=max_df)
        _assert_same_vocabulary(arrow, python)
        _assert_same_incidence(arrow.incidence(occ), python.incidence(lists))
    assert python.phrases[:6] == ["a", "Z", "b", "é", "ж", "😀"] and python.incidence(lists)[0, 0] == 2
    empty = PhraseVocabulary.build(occurrences_from_lists([]), max_df=0.2)
    assert len(empty) == 0 and empty.counts.dtype == np.int64


def test_fit_phrases_are_lists_up_to_the_threshold_and_arrow_past_it(demo_text):
    texts, tags, lists = demo_text
    n = sum(map(len, lists))
    below = extract_fit_phrases(texts, tags, n, extract_phrases, batch=500)
    assert below == lists and fit_input(lists, n) is lists and fit_input(lists, None) is lists
    above = extract_fit_phrases(texts, tags, 5_000, extract_phrases, batch=500)  # past 5,000 early: the rest streamed
    assert isinstance(above, PhraseOccurrences) and len(above) == len(lists)
    assert np.array_equal(above.rows(), np.repeat(np.arange(len(lists)), [len(lst) for lst in lists]))
    assert above.table.column("phrase").to_pylist() == [p for lst in lists for p in lst]
    rows = np.flatnonzero(np.arange(len(lists)) % 3 != 1)
    taken = above.take(rows)
    expected = occurrences_from_lists([lists[i] for i in rows])
    assert len(taken) == len(rows) and taken.table.equals(expected.table)
    with pytest.raises(ValueError, match="increasing"):
        above.take(rows[::-1])
    # the stage cache's key: the same phrases, the same key; other phrases, another
    x, corpus, cfg = np.zeros((len(lists), 2), np.float32), np.ones(len(lists), bool), GeneratorConfig()
    assert stage_key(x, above, corpus, cfg) == stage_key(x, occurrences_from_lists(lists), corpus, cfg)
    reversed_phrases = extract_occurrences(texts[::-1], tags[::-1], extract_phrases)
    assert stage_key(x, above, corpus, cfg) != stage_key(x, reversed_phrases, corpus, cfg)


def test_a_fit_past_the_threshold_is_the_fit_of_the_lists():
    x, lists, _, _ = _corpus(n=150)
    corpus = np.ones(150, dtype=bool)
    corpus[130:] = False
    cfg = GeneratorConfig(epochs=3, bottleneck_dim=16, hidden_dim=64, on_disk_above=100)  # 450 phrases: Arrow
    reference = replace(cfg, on_disk_above=None)  # lists, everything in memory, as before
    gen, ref = fit_phrase_generator(x, lists, cfg), fit_phrase_generator(x, lists, reference)
    assert isinstance(gen.vocab.phrases, PhraseColumn) and isinstance(ref.vocab.phrases, list)
    assert np.array_equal(gen.prototypes, ref.prototypes) and np.array_equal(gen.class_ids, ref.class_ids)
    full, out = crossfit_phrases(x, occurrences_from_lists(lists), corpus, cfg, n_folds=3, k=5)
    full_ref, out_ref = crossfit_phrases(x, lists, corpus, reference, n_folds=3, k=5)
    assert list(full.vocab.phrases) == full_ref.vocab.phrases
    for name in ("coembedding_crossfit", "coembedding", "ids", "scores", "fold"):
        assert np.array_equal(getattr(out, name), getattr(out_ref, name)), name
