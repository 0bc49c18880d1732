"""Explore's phrase filter over an Arrow column: the same matches as normalising every phrase in Python."""

from __future__ import annotations

import numpy as np
import pytest

from core.explore import Explorer
from core.phrases.substring import PhraseFilter
from core.phrases.vocab import normalize
from core.phrases.vocab_file import read_vocab_file, write_vocab_file
from core.workspace import open_workspace

ODD = [
    "red apple",
    "rock-n-roll band",
    "o'neil's bar",
    "Café Crème",
    "O’Neil",
    "under_score",
    "  spaced   out ",
    "ÉCOLE",
    "tiger shark, Galeocerdo cuvieri",
    "",
    "apple pie",
    "naïve apple",
    "x2",
]
QUERIES = ["apple", "APPLE", "café", "cafe", "neil", "o’neil", "score", "spaced out", "ecole", "école", "rock n", "-", "x"]
QUERIES += ["shark galeo", "e"]


def reference(phrases: list[str], query: str) -> list[int]:
    """What the filter did before: every phrase normalised in Python."""
    q = normalize(query)
    return [j for j, p in enumerate(phrases) if q and q in normalize(p)] if q else []


def test_matches_equal_normalising_every_phrase_in_python():
    f = PhraseFilter(ODD)
    assert set(ODD[j] for j in f.other_ids) == set(ODD) - {"red apple", "rock-n-roll band", "o'neil's bar", "apple pie", "x2"}
    for q in QUERIES:
        assert f.containing(q).tolist() == reference(ODD, q), q
    assert f.containing("   ").tolist() == [] and f.containing("zzz").tolist() == []


def test_a_vocabulary_file_is_searched_where_it_is_mapped(tmp_path):
    rng = np.random.default_rng(0)
    words = ["sun", "set", "beach", "red", "dog", "café", "x-ray", "night"]
    phrases = list(dict.fromkeys(" ".join(rng.choice(words, size=rng.integers(1, 4))) for _ in range(400)))
    write_vocab_file(tmp_path / "vocab.arrow", phrases, np.ones(len(phrases)), np.zeros(len(phrases), bool))
    column, _, _ = read_vocab_file(tmp_path / "vocab.arrow")
    f = PhraseFilter(column)
    assert f.array is column.array  # the mapped column itself: no list of every phrase
    assert sorted(f.other_ids.tolist()) == [j for j, p in enumerate(phrases) if "café" in p]  # only those normalised
    for q in ["sun", "SUNSET", "set b", "café", "x-ray", "ray", "dog night", "beach."]:
        assert f.containing(q).tolist() == reference(phrases, q), q


@pytest.fixture(scope="module")
def ex(fitted_workspace) -> Explorer:
    return Explorer(open_workspace(fitted_workspace))


def test_explorer_phrase_ids_on_a_fitted_workspace(ex):
    phrases = list(ex.ws.phrases)
    for q in ["bird", "Flower", "red", phrases[0], phrases[-1].upper(), "", "zzz no such"]:
        assert ex.matching_phrase_ids(q).tolist() == reference(phrases, q), q
    assert len(ex.matching_phrase_ids("bird")) > 0
