"""A saved vocabulary is an Arrow file read where it is indexed; earlier ``vocab.json`` files still load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.phrases.vocab import PhraseVocabulary, extract_phrases
from core.phrases.vocab_file import PhraseColumn, PhraseLookup
from tests.conftest import demo_rows


@pytest.fixture(scope="module")
def demo_vocab() -> tuple[PhraseVocabulary, list[list[str]]]:
    lists = [extract_phrases(r["text"], r["tags"].split(";")) for r in demo_rows()]
    return PhraseVocabulary.build(lists, min_images_softmax=2, max_df=0.2), lists


def test_a_saved_vocabulary_round_trips_and_loads_lazily(tmp_path, demo_vocab):
    v, lists = demo_vocab
    v.save(tmp_path / "vocab.arrow")
    w = PhraseVocabulary.load(tmp_path / "vocab.arrow")
    assert isinstance(w.phrases, PhraseColumn) and w._index is None  # nothing looked up yet
    assert len(w) == len(v) > 1000 and w.phrases == v.phrases and list(w.phrases) == v.phrases
    assert np.array_equal(w.counts, v.counts) and np.array_equal(w.softmax, v.softmax)
    assert not w.counts.flags.writeable  # a view into the file's memory map
    ids = np.array([len(v) - 1, 0, 17, 17])
    assert w.texts(ids) == v.texts(ids) == [v.phrases[j] for j in ids]
    assert w.phrases[5:9] == v.phrases[5:9] and w.phrases[-1] == v.phrases[-1] and w.phrases[np.int64(3)] == v.phrases[3]
    with pytest.raises(IndexError):
        w.phrases[len(v)]
    # phrase -> id: one Arrow hash join for many phrases (the incidence), binary search for a few
    assert (w.incidence(lists) != v.incidence(lists)).nnz == 0 and w._index is None
    assert isinstance(w.index, PhraseLookup)
    for p in [v.phrases[0], v.phrases[-1], "no such phrase", "", "zzzz"]:
        assert w.index.get(p) == v.index.get(p) and (p in w.index) == (p in v.index)
    assert all(w.index[p] == j for j, p in enumerate(v.phrases[:200]))
    w.save(tmp_path / "again.arrow")  # a loaded vocabulary saved again: its column written as it is
    assert PhraseVocabulary.load(tmp_path / "again.arrow").phrases == v.phrases


def test_a_vocab_json_of_earlier_versions_still_loads_and_a_damaged_file_is_an_error(tmp_path):
    v = PhraseVocabulary.build([["cat", "pet"], ["cat"], ["dög", "pet"], ["rare"]], min_images_softmax=2, max_df=1.0)
    legacy = {"phrases": v.phrases, "counts": v.counts.tolist(), "softmax": v.softmax.tolist()}  # what save wrote before
    (tmp_path / "vocab.json").write_text(json.dumps(legacy))
    old = PhraseVocabulary.load(tmp_path / "vocab.json")
    assert old.phrases == v.phrases and old.index["dög"] == v.index["dög"] and np.array_equal(old.counts, v.counts)
    (tmp_path / "bad.arrow").write_bytes(b"ARROW1 but cut short")
    with pytest.raises(ValueError, match=r"bad\.arrow"):
        PhraseVocabulary.load(tmp_path / "bad.arrow")
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(ValueError, match=r"bad\.json"):
        PhraseVocabulary.load(tmp_path / "bad.json")
