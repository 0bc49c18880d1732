"""Captions as supervision on real demo images: caption labels, the two caption models, overrides."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from core.captions import (
    CaptionLabelConfig,
    _feature_blocks,
    _fit_predict,
    _keep,
    _model,
    _row_space,
    _teacher_features,
    caption_labels,
    caption_targets,
    caption_texts,
    label_name_rows,
    label_name_texts,
    wants_caption_labels,
)
from core.classifiers import Classifier, ClassifierConfig
from core.compare import best_model
from core.config import CAPTION_MODELS, CAPTION_TWINS
from core.forward import input_blocks, model_inputs
from core.labels.retrain import retrain
from core.labels.session import open_label_store
from core.progress import silent
from core.training import label_targets, scarce_labels, train_classifiers
from core.workspace import open_workspace
from tests.conftest import DEMO, demo_rows, quick_fit
from tests.test_cli import run_here


@pytest.fixture(scope="module")
def caption_ws(small_dataset, cache_dir, tmp_path_factory):
    """Labels kept for 30% of each label's training images: ``auto`` turns caption labels on."""
    return quick_fit(small_dataset, tmp_path_factory.mktemp("cap") / "ws", cache_dir, label_fraction=0.3)


def test_caption_labels_only_on_unlabelled_training_rows(caption_ws):
    ws = caption_ws
    items = ws.items
    assert set(CAPTION_MODELS) <= set(ws.models) and set(CAPTION_MODELS) <= set(ws.metrics)
    has_caption = items["caption_label"].notna().to_numpy()
    assert has_caption.sum() == ws.manifest["captions"]["n_caption_labels"] > 0
    assert not (has_caption & (items["split"] == "test").to_numpy()).any()  # never a test row
    assert not (has_caption & items["labelled"].to_numpy()).any()  # never over a human label
    # the captions of the demo name their subject: caption labels are mostly right
    right = [list(c) == list(t) for c, t in zip(items["caption_label"][has_caption], items["labels"][has_caption])]
    assert np.mean(right) > 0.6
    # caption models trained on more rows than the human-labelled ones
    assert ws.classifiers["baseline_captions"].predict_proba(ws.visual[:2]).shape == (2, len(ws.labels))


def test_caption_labels_auto_follows_the_unlabelled_share(fitted_workspace):
    train = np.ones(10, bool)
    text = np.ones(10, bool)
    assert wants_caption_labels("auto", train, np.arange(10) < 8, text, 0.2)  # 20% unlabelled
    assert not wants_caption_labels("auto", train, np.arange(10) < 9, text, 0.2)
    assert not wants_caption_labels("off", train, np.zeros(10, bool), text, 0.2)
    assert wants_caption_labels("on", train, np.ones(10, bool), text, 0.2)
    with pytest.raises(ValueError, match="caption_labels"):
        wants_caption_labels("maybe", train, train, text, 0.2)
    ws = open_workspace(fitted_workspace)  # all labels kept: auto leaves the caption models out
    assert ws.manifest["captions"] is None and not set(CAPTION_MODELS) & set(ws.models)


def test_human_label_overrides_caption_label_on_retrain(caption_ws, tmp_path):
    dest = tmp_path / "ws"
    shutil.copytree(caption_ws.path, dest)
    ws = open_workspace(dest)
    rows = np.flatnonzero(ws.items["caption_label"].notna().to_numpy())
    r = int(rows[0])
    caption = list(ws.items.at[r, "caption_label"])
    other = next(lab for lab in ws.labels if lab not in caption)
    store = open_label_store(ws)
    store.set_labels(str(ws.items.at[r, "item"]), other, user="ann")
    report = retrain(ws, store)
    assert set(CAPTION_MODELS) <= set(report.after)
    fresh = open_workspace(dest)
    assert list(fresh.items.at[r, "labels"]) == [other] and bool(fresh.items.at[r, "labelled"])
    assert fresh.items.at[r, "caption_label"] is None  # the labeler's label, not the caption's, is trained on
    assert not (fresh.items["caption_label"].notna() & fresh.items["labelled"]).any()


def test_refit_trains_on_the_label_stores_labels_not_stale_caption_labels(caption_ws, small_dataset, cache_dir, tmp_path):
    """A refit keeps the label history: the labeler's labels must win there too, as on a retrain
    (before, the refit trained on the dataset's labels and reused the caption labels cached
    before the edit, which overwrote the labeler's label)."""
    dest = tmp_path / "ws"
    shutil.copytree(caption_ws.path, dest)
    ws = open_workspace(dest)
    items = ws.items
    r = int(np.flatnonzero(items["caption_label"].notna().to_numpy())[0])
    other = next(lab for lab in ws.labels if lab not in list(items.at[r, "caption_label"]))
    t = int(np.flatnonzero(items["is_test"].to_numpy())[0])
    moved = next(lab for lab in ws.labels if lab not in list(items.at[t, "labels"]))
    store = open_label_store(ws)
    store.set_labels(str(items.at[r, "item"]), other, user="ann")
    store.set_labels(str(items.at[t, "item"]), moved, user="ann")
    store.close()
    refit = quick_fit(small_dataset, dest, cache_dir, label_fraction=0.3)
    fresh = refit.items
    assert list(fresh.at[r, "labels"]) == [other] and bool(fresh.at[r, "labelled"])
    assert fresh.at[r, "caption_label"] is None  # the labeler's label is trained on, not a cached caption label
    assert not (fresh["caption_label"].notna() & fresh["labelled"]).any()
    assert list(fresh.at[t, "labels"]) == [moved] and bool(fresh.at[t, "is_test"])  # the corrected test truth
    assert fresh.at[t, "caption_label"] is None
    assert list(fresh.at[r, "labels_dataset"]) == list(items.at[r, "labels"])  # the dataset's labels are kept beside
    assert refit.manifest["n_labelled"] == ws.manifest["n_labelled"] + 1
    assert len(open_label_store(refit).history()) == 2  # the history survives the refit


def test_retrain_of_a_workspace_whose_fit_cache_is_unusable_here(caption_ws, tmp_path, monkeypatch):
    """A workspace fitted elsewhere with ``--cache-dir`` names a folder this machine cannot write:
    the retrain caches its caption labels in the default cache instead (before: a traceback)."""
    dest = tmp_path / "ws"
    shutil.copytree(caption_ws.path, dest)
    (tmp_path / "a-file").write_text("not a folder")
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["config"]["cache_dir"] = str(tmp_path / "a-file" / "cache")
    (dest / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("PIXCTX_CACHE_DIR", str(tmp_path / "here"))
    ws = open_workspace(dest)
    r = int(np.flatnonzero(ws.items["caption_label"].notna().to_numpy())[0])
    other = next(lab for lab in ws.labels if lab not in list(ws.items.at[r, "caption_label"]))
    run_here("labels", "set", "--workspace", str(dest), str(ws.items.at[r, "item"]), other, "--user", "ann")
    out = run_here("labels", "retrain", "--workspace", str(dest), "--json")
    assert out.returncode == 0, out.stderr
    assert set(CAPTION_MODELS) <= set(json.loads(out.stdout)["after"])
    assert list((tmp_path / "here" / "caption_labels").glob("*.safetensors"))


def test_caption_models_in_evaluate_and_predict_json(caption_ws):
    r = run_here("evaluate", "--workspace", str(caption_ws.path), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert set(d) == {"baseline", "multimodal", "text_only", "zeroshot", *CAPTION_MODELS, "n_test"}
    assert set(d["multimodal_captions"]) == {"top1", "top5", "macro_f1"}
    img = next(row["image"] for row in demo_rows() if row["label"] == "animals/birds")
    r = run_here("predict", "--workspace", str(caption_ws.path), str(DEMO / img), "--json")
    assert r.returncode == 0, r.stderr
    (p,) = json.loads(r.stdout)
    assert set(CAPTION_MODELS) <= set(p) and {"label", "prob"} == set(p["multimodal_captions"][0])


def test_best_model_is_chosen_on_validation_rows(caption_ws):
    best = best_model(caption_ws)
    scores = caption_ws.manifest["validation"]["scores"]
    assert best.name in caption_ws.models and best.score == max(v for v in scores.values() if v is not None)
    assert "not the test split" in best.sentence and best.n_rows == caption_ws.manifest["validation"]["n_rows"] > 0


def test_explore_gallery_shows_and_filters_the_caption_models(caption_ws):
    """Issue #12: Explore's model choice holds the caption models, so its gallery can open on the
    suggested (best) one."""
    from core.explore import Explorer, GalleryFilter

    ex = Explorer(caption_ws)
    assert set(CAPTION_MODELS) <= set(ex.models) and best_model(caption_ws).name in ex.models
    model = "multimodal_captions"
    top = caption_ws.predictions[model].argmax(1)
    wrong = ex.filter(GalleryFilter(model=model, correct=False))
    assert set(wrong) == {r for r in range(ex.n) if ex.has_truth[r] and not ex.truth[r, top[r]]}


def test_explore_detail_shows_the_caption_label_a_training_image_got(caption_ws):
    from streamlit.testing.v1 import AppTest

    from core.explore import Explorer
    from tests.conftest import ROOT
    from ui.safe_text import md

    ex, items = Explorer(caption_ws), caption_ws.items
    got = [r for r in range(ex.n) if ex.caption_label(r) is not None]
    assert got and all(not items.at[r, "labelled"] and not items.at[r, "is_test"] for r in got)
    assert all(ex.caption_label(r) is None for r in np.flatnonzero(items["labelled"] | items["is_test"]))
    for r in got:
        names, confidence = ex.caption_label(r)
        assert names and 0 < confidence <= 1
    row = got[0]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["workspace_path"] = str(caption_ws.path)
    at.query_params["item"] = str(items.at[row, "item"])
    at.switch_page("views/explore.py").run()
    assert not at.exception, [e.message for e in at.exception]
    shown = [m.value for m in at.markdown if m.value.startswith("Caption label: ")]
    names, confidence = ex.caption_label(row)
    assert shown == ["Caption label: " + md(names[0]) + f" ({confidence:.2f})"]
    at.selectbox(key="ex_model").set_value("multimodal_captions").run()  # the gallery says what it trained on
    assert any("on an unlabelled image the caption label" in c.value for c in at.caption)


def test_fusion_weight_is_chosen_and_survives_save(caption_ws, tmp_path):
    ws = caption_ws
    x = np.concatenate([ws.visual, ws.text_vectors], 1)
    y = np.array([ws.labels.index(labs[0]) for labs in ws.items["labels"]])
    cfg = ClassifierConfig(max_epochs=20, visual_shares=(0.5, 0.9))
    clf = Classifier(len(ws.labels), False, cfg).fit(x, y, blocks=(ws.visual.shape[1], ws.text_vectors.shape[1]))
    assert clf.visual_share in (0.5, 0.9) and 0 <= clf.val_score <= 1
    clf.save(tmp_path, "m")
    again = Classifier.load(tmp_path, "m")
    assert again.visual_share == clf.visual_share
    np.testing.assert_allclose(again.predict_proba(x[:5]), clf.predict_proba(x[:5]), atol=1e-6)


def test_tfidf_keeps_terms_shared_by_min_df_captions():
    texts = ["red apple pie", "red apple tart", "blue whale", "a lonely zebra"]
    emb = np.ones((4, 3), dtype=np.float32)
    rows = np.arange(4)
    assert _feature_blocks(texts, emb, rows, "tfidf", min_df=2).shape[1] == 3  # red, apple, "red apple"
    assert _feature_blocks(texts, emb, rows, "tfidf", min_df=1).shape[1] > 10
    assert _feature_blocks(texts[2:], emb[2:], rows[:2], "tfidf", min_df=2).shape[1] > 0  # none shared: keep all


def _teacher_inputs(ws, fraction: float = 0.2, seed: int = 0):
    """A fitted demo subset's captions, caption embeddings, visual features, targets, and a label draw."""
    texts = caption_texts(list(ws.items["text"]), [list(g) for g in ws.items["tags"]])
    labels = [list(v) for v in ws.items["labels"]]
    y = label_targets(labels, ws.labels, False)
    train = (ws.items["split"] != "test").to_numpy() & (y >= 0)
    labelled = scarce_labels(labels, train, fraction, seed)
    names = label_name_rows(ws.labels, ws.text_encoder.encode)
    return texts, ws.caption_vectors.copy(), ws.visual.copy(), y, labelled, train, names


def test_label_names_read_as_captions():
    assert label_name_texts(["animals/mammals", "food/breads_and_carbs", "av-symbol"]) == [
        "animals mammals",
        "food breads and carbs",
        "av symbol",
    ]


def test_teacher_never_reads_test_rows(caption_ws):
    texts, emb, visual, y, labelled, train, names = _teacher_inputs(caption_ws)
    test = ~train
    assert test.any()
    before = caption_labels(texts, emb, y, labelled, train, False, visual=visual, label_names=names)
    # replace every test row's caption, caption embedding, visual features and label
    rng = np.random.default_rng(1)
    texts2 = [("zebra quartz " * 3 + str(i)) if test[i] else t for i, t in enumerate(texts)]
    emb[test] = rng.normal(size=(test.sum(), emb.shape[1]))
    visual[test] = rng.normal(size=(test.sum(), visual.shape[1]))
    y2 = y.copy()
    y2[test] = (y[test] + 1) % len(caption_ws.labels)
    after = caption_labels(texts2, emb, y2, labelled, train, False, visual=visual, label_names=names)
    assert before.caption.sum() > 0 and not before.caption[test].any()
    np.testing.assert_array_equal(before.caption, after.caption)
    np.testing.assert_array_equal(before.targets[train], after.targets[train])
    np.testing.assert_allclose(before.predicted, after.predicted, atol=1e-6)
    assert before.threshold == after.threshold


def test_no_caption_no_caption_label_and_human_labels_win(caption_ws):
    texts, emb, visual, y, labelled, train, names = _teacher_inputs(caption_ws)
    silent_rows = np.flatnonzero(train & ~labelled)[::3]
    texts = ["" if i in set(silent_rows) else t for i, t in enumerate(texts)]
    emb[silent_rows] = 0
    caps = caption_labels(texts, emb, y, labelled, train, False, visual=visual, label_names=names)
    assert caps.caption.sum() > 0
    assert not caps.caption[silent_rows].any() and (caps.targets[silent_rows] == -1).all()  # the image alone says nothing here
    assert not (caps.caption & labelled).any()
    np.testing.assert_array_equal(caps.targets[labelled], y[labelled])  # human labels are kept as they are
    assert (caps.targets[~train] == y[~train]).all() and not caps.caption[~train].any()


def test_every_unlabelled_training_caption_is_labelled_by_default(caption_ws):
    """``keep="all"`` (the default): every unlabelled training row with a caption gets the teacher's
    top label; ``keep="cv"`` keeps those above the cross-validated confidence threshold only."""
    texts, emb, visual, y, labelled, train, names = _teacher_inputs(caption_ws, fraction=0.1)
    todo = train & ~labelled & np.array([bool(t) for t in texts])
    every = caption_labels(texts, emb, y, labelled, train, False, visual=visual, label_names=names)
    np.testing.assert_array_equal(every.caption, todo)
    np.testing.assert_array_equal(every.targets[todo], every.predicted[todo].argmax(1))
    assert every.threshold == 0.0 and not every.caption[labelled].any()
    cv = caption_labels(texts, emb, y, labelled, train, False, CaptionLabelConfig(keep="cv"), visual=visual, label_names=names)
    assert 0 < cv.caption.sum() < every.caption.sum() and not (cv.caption & ~every.caption).any()
    np.testing.assert_array_equal(cv.targets[cv.caption], every.targets[cv.caption])  # the same labels, fewer of them
    assert (cv.confidence[cv.caption] >= cv.threshold).all() and (cv.confidence[todo & ~cv.caption] < cv.threshold).all()


@pytest.mark.parametrize("multilabel", [False, True])
def test_cv_threshold_keeps_no_caption_label_when_none_earns_its_place(multilabel):
    """``keep="cv"``: the most confident out-of-fold caption label is wrong and the next is right,
    so at no confidence are they more often right than wrong, and no caption label is kept, not
    even one more confident than every out-of-fold label (before: the threshold sat just above the
    most confident out-of-fold label, and that one was kept)."""
    oof = np.array([[0.9, 0.1], [0.3, 0.7]])  # row 0 wrong at 0.9, row 1 right at 0.7
    y = np.array([[0.0, 1.0], [0.0, 1.0]]) if multilabel else np.array([1, 1])
    proba = np.array([[0.97, 0.03], [0.6, 0.4]])  # row 0 more confident than every out-of-fold label
    thr, keep, chosen = _keep(oof, y, proba, multilabel, "cv")
    assert not keep.any() and len(chosen) == 0 and thr == np.inf
    assert _keep(oof, y, proba, multilabel, "all")[1][0]  # every caption label kept: row 0's too


def test_teacher_with_both_views_and_label_names_beats_captions_alone(caption_ws):
    """On the demo subset with 10% of the labels, the caption labels of a teacher that sees the
    image and reads the label names are right more often than a caption-only teacher's."""
    texts, emb, visual, y, labelled, train, names = _teacher_inputs(caption_ws, fraction=0.1)
    todo = train & ~labelled

    def accuracy(caps) -> float:
        return float((caps.predicted[todo].argmax(1) == y[todo]).mean())

    alone = caption_labels(texts, emb, y, labelled, train, False, CaptionLabelConfig(visual=False, label_names=False))
    both = caption_labels(texts, emb, y, labelled, train, False, visual=visual, label_names=names)
    assert accuracy(both) > accuracy(alone)
    with pytest.raises(ValueError, match="names for"):
        caption_labels(texts, emb, y, labelled, train, False, label_names=(names[0][:2], names[1][:2]))


def test_caption_model_reuses_its_twins_fusion_weight(caption_ws, tmp_path):
    ws = caption_ws
    x = model_inputs(ws.image_arrays, ("multimodal",))["multimodal"]
    blocks = input_blocks("multimodal", ws.image_arrays)
    y = label_targets([list(v) for v in ws.items["labels"]], ws.labels, False)
    fit_idx = np.flatnonzero(ws.items["labelled"].to_numpy() & (y >= 0))
    cfg = ClassifierConfig(max_epochs=15, visual_shares=(0.5, 0.7), reuse_fusion=True, warm_start=False)
    # a share given from outside is used as it is, without a search among visual_shares
    assert Classifier(len(ws.labels), False, cfg).fit(x[fit_idx], y[fit_idx], blocks=blocks, visual_share=0.9).visual_share == 0.9
    inputs = {"multimodal": x, "multimodal_captions": x}
    train_classifiers(
        inputs,
        y,
        fit_idx,
        len(ws.labels),
        False,
        cfg,
        tmp_path,
        silent,
        blocks=dict.fromkeys(inputs, blocks),
        twins=CAPTION_TWINS,
    )
    twin, product = Classifier.load(tmp_path, "multimodal"), Classifier.load(tmp_path, "multimodal_captions")
    assert twin.visual_share in (0.5, 0.7) and product.visual_share == twin.visual_share


def test_caption_models_fine_tune_their_paper_twins(caption_ws, tmp_path):
    """With ``warm_start`` each caption model starts from its paper twin: same fusion
    weight and standardisation, a short fine-tune that learns the caption labels; off, its own search."""
    ws = caption_ws
    texts, emb, visual, y, labelled, train, names = _teacher_inputs(ws, fraction=0.4)
    caps = caption_labels(texts, emb, y, labelled, train, False, visual=visual, label_names=names)
    fit_idx = np.flatnonzero(labelled)
    models = ("baseline", "multimodal", *CAPTION_MODELS)
    inputs = model_inputs(ws.image_arrays, models)
    blocks = {m: input_blocks(m, ws.image_arrays) for m in models}
    targets = caption_targets(caps, fit_idx, CAPTION_MODELS)
    rows = targets["baseline_captions"][1]
    cap_rows = np.flatnonzero(caps.caption)

    def trained(cfg: ClassifierConfig, folder):
        out = train_classifiers(
            inputs, y, fit_idx, len(ws.labels), False, cfg, folder, silent, targets=targets, blocks=blocks, twins=CAPTION_TWINS
        )
        return out, {m: Classifier.load(folder, m) for m in models}

    cfg = ClassifierConfig(max_epochs=15, visual_shares=(0.5, 0.9), warm_start=True)
    out, clf = trained(cfg, tmp_path / "warm")
    for cap, twin in CAPTION_TWINS.items():
        assert clf[cap].visual_share == clf[twin].visual_share
        np.testing.assert_array_equal(clf[cap].mean, clf[twin].mean)
        assert clf[cap].best_epochs <= cfg.warm_max_epochs * cfg.check_rows / len(rows) + 1e-9  # a short fine-tune
        assert 0 <= out.validation[cap] <= 1 and out.n_validation >= 2  # scored on the same held-out human rows
        # it learnt the caption labels its twin never saw
        agree = lambda m: (out.probs[m][cap_rows].argmax(1) == caps.targets[cap_rows]).mean()  # noqa: E731
        assert agree(cap) > agree(twin) + 0.05
    # the switch: off, the caption models search their own fusion weight and epochs from scratch
    _, off = trained(replace(cfg, warm_start=False), tmp_path / "cold")
    # with their own patience and optimiser (ClassifierConfig.for_captions), the paper's models keep theirs
    assert off["baseline_captions"].config.patience == cfg.caption_patience != off["baseline"].config.patience == cfg.patience
    assert off["multimodal_captions"].config.fused and not off["multimodal"].config.fused
    assert off["baseline_captions"].best_epochs >= 5 and not np.array_equal(off["baseline_captions"].mean, clf["baseline"].mean)
    for m in ("baseline", "multimodal"):  # the paper's models do not change
        np.testing.assert_array_equal(off[m].predict_proba(inputs[m][:5]), clf[m].predict_proba(inputs[m][:5]))


def test_caption_labels_are_reused_only_for_the_same_inputs(caption_ws, tmp_path, monkeypatch):
    """A refit with the same teacher inputs reads the caption labels back; a label edit makes new ones."""
    import core.caption_cache as cc

    texts, emb, visual, y, labelled, train, names = _teacher_inputs(caption_ws)
    calls = []
    teacher = cc.caption_labels
    monkeypatch.setattr(cc, "caption_labels", lambda *a, **k: calls.append(1) or teacher(*a, **k))

    def labels(lab, cache=tmp_path):
        return cc.cached_caption_labels(cache, texts, emb, y, lab, train, False, visual=visual, label_names=names)

    first, again = labels(labelled), labels(labelled)
    assert len(calls) == 1 and len(list((tmp_path / "caption_labels").glob("*.safetensors"))) == 1
    for field in ("targets", "caption", "confidence", "predicted"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert (again.threshold, again.features, again.cv_accuracy) == (first.threshold, first.features, first.cv_accuracy)
    assert first.caption.sum() > 0 and again.caption.dtype == bool
    edited = labelled.copy()
    edited[np.flatnonzero(train & ~labelled)[0]] = True  # a labeler labels one more image
    labels(edited)
    assert len(calls) == 2 and len(list((tmp_path / "caption_labels").glob("*.safetensors"))) == 2
    for entry in (tmp_path / "caption_labels").glob("*.safetensors"):
        entry.write_bytes(b"damaged")
    np.testing.assert_array_equal(labels(labelled).targets, first.targets)  # recomputed, not read
    assert len(calls) == 3
    labels(labelled, cache=None)  # no cache folder: always the teacher
    assert len(calls) == 4
    monkeypatch.setattr(cc, "KEEP", 1)  # only the most recently used entry stays
    labels(edited)
    assert [e.name for e in (tmp_path / "caption_labels").glob("*.safetensors")] == [
        f"{cc.teacher_digest(texts, emb, y, edited, train, False, CaptionLabelConfig(), 0, visual, names)}.safetensors"
    ]


def test_teacher_fitted_in_its_rows_space_is_the_regression_on_its_columns(caption_ws, monkeypatch):
    """The teacher's logistic regression on its training rows' row-space coordinates (one weight per
    row, not per column) predicts what the one on the columns does, on the demo's teacher features."""
    from sklearn.linear_model import LogisticRegression

    texts, emb, visual, y, labelled, train, _ = _teacher_inputs(caption_ws, fraction=0.3)
    x = _teacher_features(texts, emb, visual, np.flatnonzero(train), "both", 1)  # visual + MiniLM + tf-idf, sparse
    rows, todo = np.flatnonzero(labelled), np.flatnonzero(train & ~labelled)
    z_fit, z_pred = _row_space(x, rows, todo)
    assert z_fit.shape[1] <= len(rows) < x.shape[1] and z_pred.shape == (len(todo), z_fit.shape[1])
    fast = _fit_predict(x, y, rows, todo, len(caption_ws.labels), False, 100.0, 0)
    slow = LogisticRegression(C=100.0, max_iter=3000, random_state=0).fit(x[rows], y[rows]).predict_proba(x[todo])
    classes = np.unique(y[rows])
    np.testing.assert_allclose(fast[:, classes], slow, atol=2e-3)
    assert (fast.argmax(1) == classes[slow.argmax(1)]).all()
    multi = np.eye(len(caption_ws.labels), dtype=np.float32)[y]  # multi-label: per-label sigmoids on the columns, as before
    multi[::4, 0] = 1.0
    cols = np.flatnonzero((multi[rows].sum(0) > 0) & (multi[rows].sum(0) < len(rows)))
    slow = _model(True, 100.0, 0).fit(x[rows], multi[rows][:, cols]).predict_proba(x[todo])
    np.testing.assert_array_equal(_fit_predict(x, multi, rows, todo, multi.shape[1], True, 100.0, 0)[:, cols], slow)
    few_columns = x[:, :5]  # more rows than columns: the rows as they are
    np.testing.assert_array_equal(_row_space(few_columns, rows, todo)[0].toarray(), few_columns[rows].toarray())
    monkeypatch.setattr("core.captions.ROW_SPACE_MAX", len(rows) * x.shape[1] - 1)  # too large to densify: the columns
    assert _row_space(x, rows, todo)[0].shape == (len(rows), x.shape[1])


@pytest.mark.parametrize("keep", ["all", "cv"])
def test_multilabel_caption_label_names_at_least_one_label(caption_ws, keep):
    """Every labelled row of a multi-label dataset has a label (a row with none is unlabelled), so a
    caption label of no label at all would teach the caption models "none of these" from a teacher
    that was merely unsure: such a row gets no caption label (before, it got an empty one)."""
    texts, emb, visual, y, labelled, train, names = _teacher_inputs(caption_ws, fraction=0.1)
    y_multi = np.zeros((len(y), len(caption_ws.labels)), dtype=np.float32)
    y_multi[np.flatnonzero(y >= 0), y[y >= 0]] = 1.0  # the same labels as a multi-label dataset
    out = caption_labels(
        texts, emb, y_multi, labelled, train, True, CaptionLabelConfig(keep=keep), visual=visual, label_names=names
    )
    unsure = train & ~labelled & (out.predicted < 0.5).all(1) & (out.predicted.sum(1) > 0)
    assert unsure.any()  # the teacher is unsure of every label on some captioned rows
    assert not out.caption[unsure].any()
    # with keep="cv" here no out-of-fold caption label is right (cv_accuracy 0), so none is kept: the
    # rows it kept before were only more confident than every wrong out-of-fold label
    assert out.caption.any() if keep == "all" else (out.cv_accuracy == 0 and not out.caption.any())
    assert (out.targets[out.caption].sum(1) >= 1).all()
    assert not (out.targets[train & ~labelled & ~out.caption] > 0).any()


def test_caption_cache_survives_an_entry_pruned_by_another_fit(caption_ws, tmp_path):
    """Two fits share the cache: an entry listed by one and removed by the other before it looks at
    its age (here: a link to nothing, which the listing finds and ``stat`` cannot read) must not
    crash the fit at its end (before: FileNotFoundError)."""
    import core.caption_cache as cc

    texts, emb, visual, y, labelled, train, names = _teacher_inputs(caption_ws)
    folder = tmp_path / "caption_labels"
    folder.mkdir()
    (folder / "gone.safetensors").symlink_to(tmp_path / "nothing")
    out = cc.cached_caption_labels(tmp_path, texts, emb, y, labelled, train, False, visual=visual, label_names=names)
    assert out.caption.any() and len(list(folder.glob("*.safetensors"))) == 2
