"""``corpus+imagenet`` phrase texts: the vocabulary's, then ImageNet's, without copying the vocabulary."""

from __future__ import annotations

import numpy as np
import pytest

from core.phrases.combined import ChainedPhrases
from core.phrases.imagenet import imagenet_phrases
from core.phrases.substring import PhraseFilter
from core.phrases.vocab import PhraseVocabulary, extract_phrases
from tests.conftest import demo_rows


def test_chained_phrases_read_like_the_list_of_both(tmp_path):
    lists = [extract_phrases(r["text"], r["tags"].split(";")) for r in demo_rows()[:400]]
    PhraseVocabulary.build(lists, max_df=0.2).save(tmp_path / "vocab.arrow")
    vocab = PhraseVocabulary.load(tmp_path / "vocab.arrow")  # a mapped column, as a workspace reads it
    extra = imagenet_phrases()
    chained, every = ChainedPhrases(vocab.phrases, extra), [*vocab.phrases, *extra]
    n = len(vocab)
    assert len(chained) == len(every) and chained == every and list(chained) == every
    ids = np.array([0, n - 1, n, len(every) - 1, 5, n + 7])
    assert chained.take(ids) == [every[j] for j in ids] and chained.take([]) == []
    assert chained[n] == every[n] and chained[-1] == every[-1] and chained[n - 2 : n + 2] == every[n - 2 : n + 2]
    with pytest.raises(IndexError):
        chained[len(every)]
    assert chained.array.to_pylist() == every  # what the phrase filter scans
    for query in ["dog", "Tux", "penguin", "é", "fruit"]:
        assert np.array_equal(PhraseFilter(chained).containing(query), PhraseFilter(every).containing(query))
