from __future__ import annotations

import numpy as np

from core.vectors import l2n
from core.zeroshot import TextToCoEmbedding, label_embeddings, label_terms, match_labels, parse_label_spec, zero_shot_scores


def test_label_spec_and_terms():
    assert parse_label_spec("cat|kitty, dog ;car") == [("cat", ["kitty"]), ("dog", []), ("car", [])]
    assert label_terms("animals/big_cats", ["lion"]) == ["animals big cats", "big cats", "lion"]
    assert match_labels(["birds", "fish"], ["animals/birds", "animals/fish", "plants"]).matched == {
        "animals/birds": 0,
        "animals/fish": 1,
    }


def test_typed_names_match_labels_in_any_case_and_number():
    """Typed "bird" names "animals/birds" as "birds" does (before: it named nothing), in any case, on the
    whole label or its last segment, and the simple plurals (s, es, ies) both ways."""
    labels = ["animals/birds", "food/berry", "tools/box", "Recreation/Music"]
    match = match_labels(["Bird", "berries", "BOXES", "music", "Animals/Bird", "cars"], labels)
    assert match.matched == {"animals/birds": 0, "food/berry": 1, "tools/box": 2, "Recreation/Music": 3}
    assert match.ambiguous == {}


def test_a_typed_name_never_makes_two_labels_collide():
    """An exact name wins over a plural ("glass" and "glasses" stay two labels); a name two labels
    share equally is ambiguous, matched to neither, and said so."""
    match = match_labels(["glasses", "glass"], ["home/glass", "clothing/glasses"])
    assert match.matched == {"clothing/glasses": 0, "home/glass": 1} and match.ambiguous == {}
    match = match_labels(["bird", "animals/birds", "fruit"], ["animals/birds", "toys/birds", "food/fruit"])
    assert match.ambiguous == {"bird": ["animals/birds", "toys/birds"]}
    assert match.matched == {"animals/birds": 1, "food/fruit": 2}


def test_prototype_used_when_in_vocabulary_else_mapping():
    rng = np.random.default_rng(0)
    text = l2n(rng.normal(size=(50, 8)))
    proj = rng.normal(size=(8, 4))
    protos = l2n(text @ proj)
    mapper = TextToCoEmbedding.fit(text, protos, alpha=1e-3)
    assert np.mean(np.sum(mapper(text) * protos, 1)) > 0.95  # a linear map is learned
    vocab = {"apple": 0}
    calls = []

    def embed(terms):
        calls.append(terms)
        return text[1 : 1 + len(terms)]

    emb = label_embeddings([("apple", []), ("pear", [])], vocab_index=vocab, prototypes=protos, embed_text=embed, mapper=mapper)
    assert np.allclose(emb[0][0], protos[0]) and calls == [["pear"]]
    scores = zero_shot_scores(protos[:2], emb)
    assert scores.shape == (2, 2) and scores[0].argmax() == 0
