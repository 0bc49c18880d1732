"""The label-error queue (issue #17): right after label changes and retrains, whatever the cache holds."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from core.forward import model_inputs
from core.labels.issues import datalab_issues, rank_label_issues
from core.labels.oof import OOF_DIR, out_of_fold
from core.labels.queue import confirmed_by_both_models, review_queue
from core.labels.retrain import retrain
from core.labels.session import current_labels, open_label_store
from core.training import label_targets
from core.workspace import open_workspace


@pytest.fixture
def ws_copy(fitted_workspace, tmp_path):
    dest = tmp_path / "ws"
    shutil.copytree(fitted_workspace, dest)
    return open_workspace(dest)


def _plant(ws, store, n: int, seed: int) -> np.ndarray:
    """Flip ``n`` labelled training rows to a label of another family."""
    items = ws.items
    rows = np.random.default_rng(seed).choice(np.flatnonzero(items["labelled"].to_numpy()), n, replace=False)
    for r in rows:
        true = items.at[r, "labels"][0]
        wrong = next(lab for lab in ws.labels if lab.split("/")[0] != true.split("/")[0])
        store.set_labels(str(items.at[r, "item"]), wrong, user="saboteur")
    return rows


def _fresh_oof(path, source: str, current: list[list[str]], n_folds: int = 5) -> np.ndarray:
    """Out-of-fold probabilities computed from scratch: no cache, a new Workspace object."""
    shutil.rmtree(path / OOF_DIR, ignore_errors=True)
    return out_of_fold(open_workspace(path), source, current=current, n_folds=n_folds)


@pytest.mark.parametrize("source", ["linear", pytest.param("product", marks=pytest.mark.slow)])  # a retrain each: ~20 s
def test_queue_matches_fresh_out_of_fold_after_label_changes_and_retrain(ws_copy, source):
    ws = ws_copy
    store = open_label_store(ws)
    review_queue(ws, "label_errors", current=current_labels(ws, store), source=source)  # fills the cache
    _plant(ws, store, 4, seed=1)
    retrain(ws, store)
    ws = open_workspace(ws.path)
    store = open_label_store(ws)
    planted = _plant(ws, store, 4, seed=2)  # more changes after the retrain: the cache must not be reused
    current = current_labels(ws, store)
    queue = review_queue(ws, "label_errors", current=current, source=source)
    fresh = _fresh_oof(ws.path, source, current)
    y = label_targets(current, ws.labels, ws.multilabel)
    expected = rank_label_issues(y, fresh, ws.multilabel)
    confirmed = confirmed_by_both_models(ws, y)
    assert [q.row for q in queue] == [r for r in expected.order if not confirmed[r]]
    assert len(queue) > 0
    shown = {m: ws.predictions[m].argmax(1) for m in ("baseline", "multimodal")}  # what Annotate shows
    other = _fresh_oof(ws.path, "product" if source == "linear" else "linear", current)
    for q in queue:
        r = q.row
        assert q.score == pytest.approx(fresh[r, y[r]], abs=1e-5)  # self-confidence of the current label
        assert q.suggestion == [ws.labels[int(fresh[r].argmax())]]
        assert q.suggestion != current[r]
        # issue #17: no queued item has its given label as both models' (out-of-fold) top prediction
        assert not (fresh[r].argmax() == y[r] and other[r].argmax() == y[r]), (q, current[r])
        assert not (shown["baseline"][r] == y[r] == shown["multimodal"][r]), (q, current[r])
    assert len({q.row for q in queue} & set(planted)) >= 2


def test_retrained_models_show_cross_fitted_predictions_on_their_training_rows(ws_copy):
    """After label changes and a retrain, the baseline and multimodal probabilities stored for the
    rows they trained on come from models that never saw those rows: a flipped label is not
    repeated back, although the stored (in-sample) classifier does repeat it."""
    ws = ws_copy
    store = open_label_store(ws)
    planted = _plant(ws, store, 6, seed=4)
    retrain(ws, store)
    ws = open_workspace(ws.path)
    assert {"baseline", "multimodal"} <= set(ws.crossfit_models)
    current = current_labels(ws, store)
    y = label_targets(current, ws.labels, ws.multilabel)
    test = ws.items["is_test"].to_numpy()
    for m in ("baseline", "multimodal"):
        x = model_inputs(ws.image_arrays, [m])[m]
        in_sample = ws.classifiers[m].predict_proba(x)
        np.testing.assert_allclose(ws.predictions[m][test], in_sample[test], atol=1e-5)  # test rows: the model itself
        fitted_flips = (in_sample[planted].argmax(1) == y[planted]).mean()
        shown_flips = (ws.predictions[m][planted].argmax(1) == y[planted]).mean()
        assert shown_flips < fitted_flips, (m, shown_flips, fitted_flips)
        assert shown_flips <= 0.5, m


def test_cache_is_keyed_by_current_labels(ws_copy):
    ws = ws_copy
    store = open_label_store(ws)
    first = out_of_fold(ws, "linear", current=current_labels(ws, store))
    assert len(list((ws.path / OOF_DIR).glob("*.safetensors"))) == 1
    np.testing.assert_array_equal(first, out_of_fold(ws, "linear", current=current_labels(ws, store)))  # reused
    _plant(ws, store, 3, seed=3)
    changed = out_of_fold(ws, "linear", current=current_labels(ws, store))
    assert not np.array_equal(first, changed)  # recomputed for the new labels
    np.testing.assert_allclose(changed, _fresh_oof(ws.path, "linear", current_labels(ws, store)), atol=1e-6)
    three = out_of_fold(ws, "linear", current=current_labels(ws, store), n_folds=3)  # other folds: not the 5-fold cache
    np.testing.assert_allclose(three, _fresh_oof(ws.path, "linear", current_labels(ws, store), n_folds=3), atol=1e-6)
    assert not np.allclose(three, changed)


def test_rank_label_issues_finds_obvious_flips():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    proba = np.full((200, 4), 0.02)
    proba[np.arange(200), y] = 0.94
    flipped = rng.choice(200, 10, replace=False)
    y_noisy = y.copy()
    y_noisy[flipped] = (y[flipped] + 1) % 4
    y_noisy[0] = -1  # no label: never queued
    found = rank_label_issues(y_noisy, proba, multilabel=False)
    assert set(found.order) == set(flipped) - {0}
    assert np.isnan(found.quality[0]) and found.quality[flipped[flipped != 0]].max() < 0.05
    assert list(found.ranking[: len(found.order)]) == list(found.order) and 0 not in found.ranking


def test_datalab_queues(ws_copy):
    ws = ws_copy
    feats = ws.visual.copy()
    feats[1] = feats[0] * 1.0001  # a planted near-duplicate
    order, _, sets = datalab_issues(feats, "near_duplicate")
    assert {0, 1} <= set(order) and 1 in sets[0]
    queue = review_queue(ws, "outliers", limit=5)
    assert all("outlier score" in q.reason for q in queue)
    with pytest.raises(ValueError, match="unknown Datalab check"):
        datalab_issues(feats, "blur")


def test_linear_source_reads_the_captions(fitted_workspace):
    """The fit stores every row's caption embedding (zeros where a row has no caption), and the
    linear source's features hold it beside the visual features: a caption that contradicts its
    label is the evidence the pixels lack."""
    from core.captions import caption_texts
    from core.labels.oof import linear_features

    ws = open_workspace(fitted_workspace)
    captions = ws.caption_vectors
    assert captions is not None and len(captions) == len(ws.items)
    has_text = np.array([bool(t) for t in caption_texts(list(ws.items["text"]), list(ws.items["tags"]))])
    norms = np.linalg.norm(captions, axis=1)
    assert has_text.any() and np.allclose(norms[has_text], 1.0, atol=1e-3)
    assert np.all(norms[~has_text] == 0)
    x = linear_features(ws.visual, captions)
    assert x.shape == (len(ws.items), ws.visual.shape[1] + captions.shape[1])
    assert linear_features(ws.visual, None).shape == ws.visual.shape


def test_product_source_reuses_the_fits_cross_fitted_predictions_until_labels_change(ws_copy):
    """With the fit's own labels, the product source is what the fit stored (no retraining);
    after a label change it is cross-validated again, on the new labels."""
    ws = ws_copy
    store = open_label_store(ws)
    stored = ws.predictions["multimodal"]
    np.testing.assert_array_equal(out_of_fold(ws, "product", current=current_labels(ws, store)), stored)
    planted = _plant(ws, store, 3, seed=5)
    changed = out_of_fold(ws, "product", current=current_labels(ws, store))
    assert not np.allclose(changed[planted], stored[planted])
