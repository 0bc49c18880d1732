"""Gallery filters, phrase search, neighbours and per-image views on a real fitted workspace."""

from __future__ import annotations

import numpy as np
import pytest

from core.explore import Explorer, GalleryFilter, probability_table
from core.workspace import open_workspace


@pytest.fixture(scope="module")
def ex(fitted_workspace) -> Explorer:
    return Explorer(open_workspace(fitted_workspace))


def test_filters_agree_with_a_direct_computation(ex):
    items = ex.ws.items
    labels = np.array(ex.labels)
    truth = items["labels"].map(lambda ls: ls[0]).to_numpy()
    base = labels[ex.ws.predictions["baseline"].argmax(1)] == truth
    multi = labels[ex.ws.predictions["multimodal"].argmax(1)] == truth
    test = items["split"].to_numpy() == "test"

    assert len(ex.filter(GalleryFilter())) == len(items)
    assert set(ex.filter(GalleryFilter(split="test"))) == set(np.flatnonzero(test))
    assert set(ex.filter(GalleryFilter(change="fixed"))) == set(np.flatnonzero(~base & multi))
    assert set(ex.filter(GalleryFilter(change="broke", split="test"))) == set(np.flatnonzero(base & ~multi & test))
    wrong = ex.filter(GalleryFilter(model="baseline", correct=False))
    assert set(wrong) == set(np.flatnonzero(~base))
    bird = ex.filter(GalleryFilter(true_labels=["animals/birds"]))
    assert len(bird) > 0 and all(truth[r] == "animals/birds" for r in bird)
    pred_fruit = ex.filter(GalleryFilter(model="baseline", predicted=["food/fruit"]))
    assert all(labels[ex.ws.predictions["baseline"][r].argmax()] == "food/fruit" for r in pred_fruit)
    confident = ex.filter(GalleryFilter(confidence=(0.9, 1.0)))
    assert (ex.ws.predictions["multimodal"][confident].max(1) >= 0.9).all()
    assert len(confident) < len(items)


def test_filters_reject_unknown_names(ex):
    with pytest.raises(ValueError, match="unknown label"):
        ex.filter(GalleryFilter(true_labels=["no such label"]))
    with pytest.raises(ValueError, match="unknown model"):
        ex.filter(GalleryFilter(model="gpt"))


def test_phrase_search_finds_images_whose_generated_phrases_match(ex):
    row = 0
    phrase = ex.ws.item_phrases(row, 10)[0][0]
    hits = ex.filter(GalleryFilter(phrase=phrase.upper()))  # case-insensitive
    assert row in hits
    for r in hits:
        assert any(phrase in p for p, _ in ex.ws.item_phrases(int(r), 10))
    assert len(ex.filter(GalleryFilter(phrase="zzzz no such phrase"))) == 0


def test_neighbours_are_visual_cosine_nearest(ex):
    nb = ex.neighbours(3, k=5)
    assert len(nb) == 5 and 3 not in [r for r, _ in nb]
    sims = [s for _, s in nb]
    assert sims == sorted(sims, reverse=True)
    # a raw feature vector finds its own image first
    own = ex.neighbours(ex.ws.visual[3], k=1)
    assert own[0][0] == 3 and own[0][1] == pytest.approx(1.0, abs=1e-5)


def test_prediction_and_probability_table(ex):
    row = int(ex.filter(GalleryFilter(split="test"))[0])
    pred = ex.prediction(row)
    assert len(pred.multimodal) == len(ex.labels)
    assert pred.multimodal[0][0] == ex.labels[ex.top["multimodal"][row]]
    table = probability_table(pred, top=2)
    assert set(table["model"]) == {"baseline", "multimodal"}
    assert pred.multimodal[0][0] in set(table["label"]) and pred.baseline[0][0] in set(table["label"])
    assert ex.row_of(str(ex.ws.items.at[row, "item"])) == row and ex.row_of("nope.png") is None


def test_a_caption_of_invisible_characters_is_no_caption(fitted_workspace, tmp_path):
    """What Compare's note counts as a captioned training image is what a fit reads a caption label
    from: a caption of zero-width spaces and a byte-order mark, with no tag, is none (before: it
    counted, as in a workspace written before datasets were read that way)."""
    import pandas as pd

    from tests.conftest import copy_with_labels_aside

    aside = copy_with_labels_aside(fitted_workspace, tmp_path / "ws", 3)
    items = pd.read_parquet(tmp_path / "ws" / "items.parquet")
    items.loc[aside[0], "text"] = "\u200b \ufeff\u200b"
    items.at[aside[0], "tags"] = []
    items.to_parquet(tmp_path / "ws" / "items.parquet")
    unlabelled, captioned = Explorer(open_workspace(tmp_path / "ws")).captioned_training_rows
    assert (unlabelled, captioned) == (2, Explorer(open_workspace(fitted_workspace)).captioned_training_rows[1] - 1)
