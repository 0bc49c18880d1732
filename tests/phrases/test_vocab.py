from __future__ import annotations

from core.phrases.vocab import PhraseVocabulary, extract_phrases


def test_extract_phrases_from_title_and_tags():
    p = extract_phrases("An albino peahen (a female peafowl, or peacock).", ["Albino", "peahen"])
    assert "albino peahen" in p and "female peafowl" in p and "peacock" in p and "albino" in p
    assert "an" not in p and "a" not in p and "or peacock" not in p
    assert len(p) == len(set(p))


def test_long_text_only_gives_ngrams():
    text = "this is a very long description of a drawing that goes on and on about a red apple"
    p = extract_phrases(text)
    assert "red apple" in p and "apple" in p and not any(len(x.split()) > 8 for x in p)


def test_vocabulary_counts_softmax_and_max_df(tmp_path):
    lists = [["cat", "pet"], ["cat"], ["dog", "pet"], ["pet", "rare"], *[["pet"]] * 13]
    v = PhraseVocabulary.build(lists, min_images_softmax=2, max_df=0.5)
    assert "pet" not in v.index  # on 16/17 images: says nothing about any one image
    assert v.phrases[0] == "cat" and v.counts[0] == 2 and v.softmax[0]
    assert not v.softmax[v.index["rare"]]
    inc = v.incidence([["cat", "unknown"], ["rare"]])
    assert inc.shape == (2, len(v)) and inc[0, v.index["cat"]] == 1 and inc.sum() == 2
    v.save(tmp_path / "v.json")
    w = PhraseVocabulary.load(tmp_path / "v.json")
    assert w.phrases == v.phrases and (w.softmax == v.softmax).all()
