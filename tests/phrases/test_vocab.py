from __future__ import annotations

import pytest

from core.phrases.vocab import PhraseVocabulary, extract_phrases, noise_kind, query_tokens
from tests.conftest import demo_rows


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
    v.save(tmp_path / "vocab.arrow")
    w = PhraseVocabulary.load(tmp_path / "vocab.arrow")
    assert w.phrases == v.phrases and (w.softmax == v.softmax).all()


# Real captions and tags from assets/demo/manifest.csv (Open Clip Art) and the shared sets.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tigre01", ["tigre"]),  # author's file counter on a word: the word stays
        ("Rana01", ["rana"]),
        ("smiley111", ["smiley"]),
        ("0x861c9f4", []),  # hex id given as a tag
        ("computer keyboard. HASH(0x868a30c)", ["computer", "keyboard"]),
        ("R16 sibmission", ["sibmission"]),  # id mixing a letter and digits
        ("Sony Clie. Sony Clie T615C", ["sony", "clie", "sony", "clie"]),
        ("glace_01_bw", ["glace", "bw"]),  # underscores and zero-padded counters
        ("Switch_Cisco_3750_1", ["switch", "cisco"]),
        ("books-aj.svg", ["books-aj"]),  # file extension
        ("AfricanDrum1", ["african", "drum"]),  # camel-case id
        ("eMule Icon", ["emule", "icon"]),  # too short to be camel case: stays whole
        ("BlueMan#101", ["blue", "man"]),
        ("mailbox 2. mailbox symbol", ["mailbox", "mailbox", "symbol"]),  # counter before a sentence end
        ("GPS Geko 101. GPS Geko 101", ["gps", "geko", "gps", "geko"]),
        ("45 rpm record", ["45", "rpm", "record"]),  # a quantity before a word stays
        ("Ice Cream Cone (2 scoop)", ["ice", "cream", "cone", "2", "scoop"]),
        ("Chillies, green-1 (Capsicum annum)", ["chillies", "green", "capsicum", "annum"]),  # ifct-food
        (
            "Pluto—until recently, it was considered the 9th planet",
            ["pluto", "until", "recently", "it", "was", "considered", "the", "9th", "planet"],
        ),  # tuxpaint
        ("1st place medal", ["1st", "place", "medal"]),  # emoji
        ("g2g", []),  # emoji tag
        ("Gelato all&#39;italiana", ["gelato", "all'italiana"]),  # HTML entity
        ("recycling_box_3d", ["recycling", "box", "3d"]),
        ("4x4 truck from the 1950s", ["4x4", "truck", "from", "the", "1950s"]),
        ("see http://openclipart.org/a.svg or write to me@example.org @rana01", ["see", "or", "write", "to"]),
        ("microchip v.2", ["microchip", "v"]),
        ("Version 2.5 release", ["version", "release"]),
    ],
)
def test_query_tokens_drop_identifiers_and_keep_words(text, expected):
    assert query_tokens(text) == expected


def test_phrases_from_noisy_titles_and_tags_read_like_queries():
    p = extract_phrases("Dog 01 Drawn With Straight Lines", ["mammal", "11", "0x8863bcc", "hash(0x8a3ecd4)", "dog"])
    assert p[0] == "dog drawn with straight lines"
    assert {"dog", "dog drawn", "mammal"} <= set(p)
    assert not any(ch.isdigit() for x in p for ch in x) and not any("hash" in x for x in p)
    q = extract_phrases("8 ball form. Billiard 8 ball formation", ["sports", "billiard"])
    assert "8 ball" in q and "billiard" in q and not any(x.endswith("8") for x in q)
    r = extract_phrases("Creation Day 5 Number", [])
    assert "creation day 5 number" in r and "day" in r and "day 5" not in r
    # clean=False is the raw extraction the cleaning is measured against
    raw = extract_phrases("Tigre01", ["0x861c9f4"], clean=False)
    assert raw == ["tigre01", "0x861c9f4"]


def test_noise_kind_judges_finished_phrases():
    assert noise_kind("0x861c9f4") == "hex" and noise_kind("hash 8a3ecd4") == "hex"
    assert noise_kind("rana01") == "identifier" and noise_kind("brinjal-12") == "identifier"
    assert noise_kind("mailbox 2") == "number" and noise_kind("glace 01") == "number"
    for ok in [
        "hash browns",
        "lemon svg theme",
        "45 rpm record",
        "1st place medal",
        "4x4 truck",
        "1950s",
        "3d glasses",
        "tigre",
        "ice cream cone 2 scoop",
    ]:
        assert noise_kind(ok) is None, ok


def test_demo_vocabulary_has_no_noise():
    """Every phrase of the demo's text and tags, cleaned, reads like a query; raw, many do not."""
    rows = demo_rows()
    clean = {p for r in rows for p in extract_phrases(r["text"], r["tags"].split(";"))}
    raw = {p for r in rows for p in extract_phrases(r["text"], r["tags"].split(";"), clean=False)}
    assert [p for p in clean if noise_kind(p)] == []
    noisy = {p for p in raw if noise_kind(p)}
    assert {"tigre01", "rana01", "smiley111", "0x868a30c"} <= noisy and len(noisy) > 100  # "HASH(0x868a30c)" in a title
    assert {"tigre", "rana", "smiley", "45 rpm record", "ice cream cone"} <= clean
