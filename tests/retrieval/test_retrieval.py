"""Semantic retrieval: tf-idf ground truth, ranking metrics, the trained embeddings, search and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main as cli
from core.retrieval.evaluate import auc, ranking_curves
from core.retrieval.semantic import METHODS, open_retrieval
from core.retrieval.tfidf import TfIdf, tokens
from core.workspace import open_workspace


def test_tokens_are_stemmed_and_stop_words_dropped():
    assert tokens("The Flowers of the garden, flowering!") == ["flower", "garden", "flower"]


def test_tfidf_similarity_is_a_cosine_of_shared_words():
    tf = TfIdf.fit(["red apple", "green apple", "red car", "blue car", "apple pie"], min_df=1, max_df=1.0)
    m = tf.transform(["red apple", "green apple", "blue car", "nothing known"])
    sim = (m @ m.T).toarray()
    assert sim[0, 0] == pytest.approx(1.0) and sim[0, 1] > 0 and sim[0, 2] == 0
    assert m[3].nnz == 0


def test_ranking_curves_perfect_random_and_reversed():
    rng = np.random.default_rng(0)
    truth = rng.random((20, 30))
    perfect_ndcg, perfect_pcc = ranking_curves(truth.copy(), truth, r_max=10)
    np.testing.assert_allclose(perfect_ndcg, 1.0)
    np.testing.assert_allclose(perfect_pcc[1:], 1.0)
    rand_ndcg, _ = ranking_curves(rng.random((20, 30)), truth, r_max=10)
    rev_ndcg, rev_pcc = ranking_curves(-truth, truth, r_max=10)
    assert auc(rev_ndcg) < auc(rand_ndcg) < auc(perfect_ndcg) == pytest.approx(100.0)
    assert auc(rev_pcc) < 0
    # NaN entries (the query itself) are never retrieved
    t = truth.copy()
    t[:, 0] = np.nan
    s = truth.copy()
    s[:, 0] = 10.0
    ndcg, _ = ranking_curves(s, t, r_max=5)
    np.testing.assert_allclose(ndcg, 1.0)


def test_learned_embedding_beats_raw_features(extended_workspace):
    ws = open_workspace(extended_workspace)
    ev = open_retrieval(ws).evaluation
    assert set(METHODS) <= set(ev)
    for m in METHODS:
        assert 0 <= ev[m]["ndcg_auc"] <= 100
    assert ev["random"]["ndcg_auc"] < ev["visual_baseline"]["ndcg_auc"]
    # the jointly trained embedding queried with image + text knows what the texts say
    assert ev["semantic_vt_query_vt"]["ndcg_auc"] > ev["visual_baseline"]["ndcg_auc"]
    assert ev["semantic_vt_query_vt"]["pcc_auc"] > ev["visual_baseline"]["pcc_auc"]


def test_text_moves_an_image_query(extended_workspace):
    ws = open_workspace(extended_workspace)
    search = open_retrieval(ws)
    bird = int(np.flatnonzero(ws.items["labels"].map(lambda ls: ls == ["animals/birds"]).to_numpy())[0])
    plain = search.search(features=ws.visual[bird], k=10, exclude=bird)
    assert bird not in [r for r, _ in plain]
    word = "music"
    music = ws.items["labels"].map(lambda ls: ls == ["recreation/music"]).to_numpy()
    counts = [
        sum(music[r] for r, _ in search.search(features=ws.visual[bird], text=word, text_weight=w, k=10, exclude=bird))
        for w in (0.0, 1.0, 2.0, 3.0)
    ]
    assert counts == sorted(counts) and counts[-1] > counts[0]  # the stronger the text, the more music
    text_only = search.search(text=word, k=5)
    assert sum(music[r] for r, _ in text_only) >= 3
    with pytest.raises(ValueError, match="vocabulary"):
        search.search(text="qqqzzz")
    with pytest.raises(ValueError, match="image, a text"):
        search.search()


def test_retrieval_cli(extended_workspace, capsys):
    ws = open_workspace(extended_workspace)
    item = str(ws.items.at[0, "item"])
    assert cli(["retrieval", "search", "--workspace", str(extended_workspace), "--image", item, "--k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and set(hits[0]) == {"image", "score"} and item not in [h["image"] for h in hits]
    path = ws.items.at[0, "path"]  # an image file found through the backbone
    assert cli(["retrieval", "search", "--workspace", str(extended_workspace), "--image", path, "--text", "music", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 10
    assert cli(["retrieval", "evaluate", "--workspace", str(extended_workspace), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert set(ev) == set(METHODS) and all(set(v) == {"ndcg_auc", "pcc_auc"} for v in ev.values())


def test_search_without_a_fit_says_how(fitted_workspace):
    with pytest.raises(FileNotFoundError, match="retrieval fit"):
        open_retrieval(open_workspace(fitted_workspace))
