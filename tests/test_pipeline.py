"""End to end on a small real subset of the demo: fit -> reopen -> predict -> evaluate."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.phrases.imagenet import imagenet_phrases
from core.workspace import open_workspace
from tests.conftest import DEMO, demo_rows, quick_fit


def test_workspace_contents(fitted_workspace):
    ws = open_workspace(fitted_workspace)
    files = {p.name for p in fitted_workspace.iterdir()}
    assert {
        "manifest.json",
        "items.parquet",
        "arrays.safetensors",
        "predictions.safetensors",
        "generator",
        "classifiers",
    } <= files
    assert not list(fitted_workspace.rglob("*.pkl")) and not list(fitted_workspace.rglob("*.pickle"))
    m = ws.manifest
    assert m["dataset"]["fingerprint"] and m["versions"]["torch"] and m["config"]["backbone"] == "efficientnet-lite0"
    assert set(m["metrics"]) == {"baseline", "multimodal", "text_only", "zeroshot"}
    for _model, metrics in m["metrics"].items():
        assert set(metrics) == {"top1", "top5", "macro_f1"}
    # six separable demo labels: the visual baseline must be far above chance (1/6)
    assert m["metrics"]["baseline"]["top1"] > 0.6
    assert m["metrics"]["multimodal"]["top1"] > 0.5
    n = len(ws.items)
    assert ws.maps.images.shape == (n, 2) and len(ws.maps.prototypes) == len(ws.maps.prototype_ids)
    assert ws.predictions["multimodal"].shape == (n, len(ws.labels))
    # training rows got cross-fitted phrases, test rows the full generator's
    items = ws.items
    assert (items.loc[items["split"] == "test", "fold"] == -1).all()
    assert (items.loc[items["split"] == "train", "fold"] >= 0).all()


def test_predict_new_image_gives_sensible_phrases(fitted_workspace):
    ws = open_workspace(fitted_workspace)
    used = set(ws.items["item"])
    unseen = [r for r in demo_rows() if r["label"] == "food/fruit" and r["image"] not in used][:3]
    out = ws.predict([DEMO / r["image"] for r in unseen] + [b"junk"], names=[r["image"] for r in unseen] + ["junk"])
    assert out[-1].image == "junk" and out[-1].error and not out[-1].ok and "error" in out[-1].to_dict()
    for pred in out[:-1]:
        d = pred.to_dict()
        assert set(d) >= {"image", "phrases", "baseline", "multimodal"}
        assert d["multimodal"][0]["prob"] >= d["multimodal"][-1]["prob"]
    # drawings of fruit: most get a fruit label and a fruit-ish phrase
    assert sum(p.multimodal[0][0] == "food/fruit" for p in out[:-1]) >= 2
    fruity = {"fruit", "apple", "pear", "banana", "orange", "cherry", "cherries", "lemon", "strawberry", "grapes", "food"}
    assert sum(any(w in fruity for ph, _ in p.phrases[:5] for w in ph.split()) for p in out[:-1]) >= 2


def test_reproducible_for_a_seed(fitted_workspace, small_dataset, cache_dir, tmp_path):
    from core.pipeline import fit
    from core.progress import silent

    ws1 = open_workspace(fitted_workspace)
    ws2 = fit(small_dataset, tmp_path / "again", ws1.config, progress=silent)
    assert ws2.metrics == ws1.metrics
    assert np.array_equal(ws2.phrase_ids, ws1.phrase_ids)


def test_bad_files_are_reported_and_fit_goes_on(small_dataset, cache_dir, tmp_path):

    data = tmp_path / "data"
    shutil.copytree(small_dataset, data)
    (data / "images" / "zero.png").write_bytes(b"")
    (data / "images" / "text.png").write_text("I am a text file, not a PNG")
    good = next((data / "images").glob("*.webp")).read_bytes()
    (data / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + good[40:400])
    extra = [
        "images/missing.jpg,food/fruit,a missing apple,,train,x",
        "images/zero.png,food/fruit,an empty file,,train,x",
        "images/text.png,food/fruit,a text file,,train,x",
        "images/corrupt.jpg,food/fruit,a corrupt jpeg,,train,x",
    ]
    with (data / "manifest.csv").open("a") as fh:
        fh.write("\n".join(extra) + "\n")
    ws = quick_fit(data, tmp_path / "ws", cache_dir)
    bad = {i.image: i.reason for i in ws.issues}
    assert set(bad) == {"images/missing.jpg", "images/zero.png", "images/text.png", "images/corrupt.jpg"}
    assert "not found" in bad["images/missing.jpg"] and "0 bytes" in bad["images/zero.png"]
    assert all(i.row is not None for i in ws.issues)
    assert ws.manifest["dataset"]["n_issues"] == 4


def test_label_fraction_keeps_text_but_drops_labels(small_dataset, cache_dir, tmp_path):
    from core.training import scarce_labels

    labels = [["a"]] * 10 + [["b"]] * 4
    keep = scarce_labels(labels, np.ones(14, bool), 0.2, 0)
    assert keep[:10].sum() == 2 and keep[10:].sum() == 1
    ws = quick_fit(small_dataset, tmp_path / "ws", cache_dir, label_fraction=0.3)
    train = ws.items["split"] == "train"
    assert ws.manifest["n_labelled"] == int(ws.items["labelled"].sum()) < train.sum() * 0.5
    # phrase generator still saw the text of every training row
    assert (ws.items.loc[train, "fold"] >= 0).all()


def test_imagenet_phrase_source(small_dataset, cache_dir, tmp_path):

    ws = quick_fit(small_dataset, tmp_path / "ws", cache_dir, phrase_source="imagenet")
    assert len(ws.phrases) == len(imagenet_phrases()) > 1000 and "generator" not in {p.name for p in ws.path.iterdir()}
    fruit_row = int(np.flatnonzero(ws.items["labels"].map(lambda ls: ls == ["food/fruit"]))[0])
    assert ws.item_phrases(fruit_row, 3)
    json.dumps(ws.item_prediction(fruit_row).to_dict())
    with pytest.raises(ValueError, match="ImageNet"):
        ws.generator  # noqa: B018


def test_combined_phrase_sources(small_dataset, cache_dir, tmp_path):

    ws = quick_fit(small_dataset, tmp_path / "ws", cache_dir, phrase_source="corpus+imagenet")
    n_corpus = len(ws.generator.vocab)
    assert len(ws.phrases) == n_corpus + len(imagenet_phrases())
    ids = ws.phrase_ids
    assert (ids[:, :5] < n_corpus).all() and (ids[:, 5:] >= n_corpus).all()  # five from each source
    assert ws.text_vectors.shape[1] == 2 * ws.phrase_embeddings.shape[1]
    row = int(np.flatnonzero(ws.items["is_test"])[0])
    (pred,) = ws.predict([ws.items.at[row, "path"]])
    assert [p for p, _ in pred.phrases] == [p for p, _ in ws.item_phrases(row)]
    # the manifest lists only the ImageNet phrases: the vocabulary's are in the generator's file
    every = [*ws.generator.vocab.phrases, *imagenet_phrases()]
    assert ws.manifest["phrases"] is None and ws.manifest["extra_phrases"] == imagenet_phrases()
    assert ws.phrases == every and ws.phrases[n_corpus] == every[n_corpus] and ws.phrases[-1] == every[-1]
    # a workspace fitted before listed every phrase in ``phrases``: it still opens, with the same phrases
    manifest = json.loads((ws.path / "manifest.json").read_text())
    manifest["phrases"] = every
    del manifest["extra_phrases"]
    (ws.path / "manifest.json").write_text(json.dumps(manifest))
    old = open_workspace(ws.path)
    assert old.phrases == every and old.item_phrases(row) == ws.item_phrases(row)


def test_one_caption_on_every_image_is_a_clear_error(cache_dir, tmp_path):
    """The same caption everywhere gives the corpus phrase generator nothing to learn: the error
    says why and names the phrase source that needs no text (before: "needs more text", though
    every image had one)."""
    from tests.conftest import SMALL_LABELS, edit_manifest, write_subset

    data = edit_manifest(write_subset(tmp_path / "data", SMALL_LABELS[:3], per_label=8), text="a picture", tags="")
    with pytest.raises(ValueError, match=r"more varied.*--phrase-source imagenet"):
        quick_fit(data, tmp_path / "ws", cache_dir)
    assert not (tmp_path / "ws").exists()


def test_one_label_fails_before_any_feature_is_computed(tmp_path):
    from tests.conftest import SMALL_LABELS, write_subset

    one = write_subset(tmp_path / "one", SMALL_LABELS[:1], per_label=6)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"at least 2 labels.*animals/birds"):
        quick_fit(one, tmp_path / "ws", cache)
    assert not [f for f in cache.rglob("*") if f.is_file()]  # it failed at once (before: after the images' features)
    assert not (tmp_path / "ws").exists()


def _strict_json(text: str):
    """``json.loads`` that refuses ``NaN`` and ``Infinity``, as every JSON parser but Python's does."""
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"not JSON: {c}")))


def test_manifest_is_strict_json_where_a_number_is_undefined(untested_workspace, tmp_path):
    """No test image: every test metric is undefined, and so is the caption teacher's cross-validated
    accuracy with no unlabelled image to label. ``manifest.json`` says ``null`` there (before:
    ``NaN``, which jq and JavaScript refuse); the workspace reads it as NaN, as it reads the ``NaN``
    of a workspace written before."""
    manifest = _strict_json((untested_workspace / "manifest.json").read_text())
    assert manifest["n_test"] == 0 and manifest["metrics"]["baseline"]["top1"] is None
    assert manifest["captions"]["cv_accuracy"] is None
    ws = open_workspace(untested_workspace)
    assert all(np.isnan(v) for d in ws.metrics.values() for v in d.values())
    old = tmp_path / "old"
    shutil.copytree(untested_workspace, old)
    manifest["metrics"] = {m: {k: float("nan") for k in d} for m, d in manifest["metrics"].items()}
    (old / "manifest.json").write_text(json.dumps(manifest, indent=2))  # as workspaces were written before
    assert "NaN" in (old / "manifest.json").read_text()
    assert open_workspace(old).metrics.keys() == ws.metrics.keys()
    assert all(np.isnan(v) for d in open_workspace(old).metrics.values() for v in d.values())


def test_caption_labels_on_without_a_caption_label_trains_no_caption_models(untested_workspace):
    """Every training image is labelled: the caption teacher labels none, and caption models would
    train on exactly the rows and targets of the baseline and multimodal ones. None is trained
    (before: two duplicates), and the manifest says why (0 caption labels)."""
    from core.compare import caption_models_note
    from core.config import CAPTION_MODELS
    from core.explore import Explorer

    ws = open_workspace(untested_workspace)
    assert ws.config.caption_labels == "on" and ws.manifest["captions"]["n_caption_labels"] == 0
    assert not set(CAPTION_MODELS) & set(ws.models)
    assert "gave no unlabelled training image a caption label" in caption_models_note(Explorer(ws))
