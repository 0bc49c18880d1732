"""Model comparisons and zero-shot with typed labels on a real fitted workspace."""

from __future__ import annotations

import numpy as np
import pytest

from core.compare import (
    best_model,
    caption_models_note,
    confusion_matrix,
    model_groups,
    per_label_table,
    top_confusions,
    zeroshot_images,
    zeroshot_report,
)
from core.explore import Explorer
from core.workspace import open_workspace
from tests.conftest import quick_fit


@pytest.fixture(scope="module")
def ex(fitted_workspace) -> Explorer:
    return Explorer(open_workspace(fitted_workspace))


@pytest.fixture(scope="module")
def caption_ex(small_dataset, cache_dir, tmp_path_factory) -> Explorer:
    """The small dataset fitted with 30% of the labels: caption labels on, six models."""
    return Explorer(quick_fit(small_dataset, tmp_path_factory.mktemp("cap") / "ws", cache_dir, label_fraction=0.3))


def test_caption_models_note_says_why_they_are_missing(ex, caption_ex):
    """With every training label there is nothing for captions to label, and the page says so with
    the counts ``fit --caption-labels auto`` decided on; with few labels the caption models are there."""
    from core.captions import caption_texts

    items = ex.ws.items
    has_text = np.array([bool(t) for t in caption_texts(list(items["text"]), list(items["tags"]))])  # as the fit reads them
    train = (items["split"].to_numpy() != "test") & has_text
    captioned = int(train.sum())
    assert captioned > 0 and "multimodal_captions" not in ex.ws.metrics
    note = caption_models_note(ex)
    assert note is not None and note.startswith("No models trained on your labels + captions")
    assert f"here 0 of {captioned:,} (0%) have none" in note
    assert "multimodal_captions" in caption_ex.ws.metrics and caption_models_note(caption_ex) is None
    unlabelled, total = caption_ex.captioned_training_rows
    assert total == captioned and unlabelled == int((train & ~caption_ex.ws.items["labelled"].to_numpy()).sum())


def test_model_groups_put_every_model_under_one_group():
    """The one grouping Home and Compare show (before: zero-shot was "No labels" on one, "Other" on the other)."""
    groups = model_groups(["zeroshot", "baseline", "multimodal", "mine (your predictions)"])
    assert groups == {
        "trained on your labels": ["baseline", "multimodal"],
        "trained on your labels + captions": [],
        "no labels": ["zeroshot"],
        "other": ["mine (your predictions)"],
    }


def test_confusion_matrix_matches_metrics(ex):
    cm = confusion_matrix(ex, "multimodal")
    assert cm.sum() == ex.ws.manifest["n_test"]
    assert np.trace(cm) / cm.sum() == pytest.approx(ex.ws.metrics["multimodal"]["top1"])
    mistakes = top_confusions(ex, "multimodal", 3)
    assert (mistakes["true"] != mistakes["predicted"]).all()
    assert mistakes["images"].is_monotonic_decreasing


def test_per_label_table_sorted_by_gain(ex):
    table = per_label_table(ex)
    assert set(table["label"]) == set(ex.labels)
    assert table["delta"].dropna().is_monotonic_decreasing
    np.testing.assert_allclose(table["delta"], table["multimodal"] - table["baseline"])


def test_zeroshot_report_with_typed_synonyms(ex):
    rows = np.flatnonzero(ex.ws.items["is_test"].to_numpy())
    labels = [("birds", ["bird"]), ("fruit", ["apple"]), ("music", ["guitar"]), ("flowers", ["flower"])]
    report = zeroshot_report(ex, labels, rows)
    assert report.proba.shape == (len(rows), 4)
    assert set(report.matched) == {"animals/birds", "food/fruit", "recreation/music", "plants/flowers"}
    assert report.n_evaluated == sum(ex.truth[r, [ex.labels.index(m) for m in report.matched]].any() for r in rows)
    assert report.accuracy > 0.25  # four well-separated labels: better than chance
    with pytest.raises(ValueError, match="two labels"):
        zeroshot_report(ex, labels[:1], rows)


def test_zeroshot_images_reports_undecodable_files(ex):
    path = ex.ws.items.at[0, "path"]
    proba, errors = zeroshot_images(ex.ws, [path, b"not an image"], [("birds", []), ("fruit", [])])
    assert proba.shape == (2, 2) and list(errors) == [1]
    assert np.isclose(proba[0].sum(), 1.0)


def test_zeroshot_report_scores_every_trained_model_on_the_same_rows(caption_ex):
    """With the dataset's own label names every test row is matched, so each trained model's score
    on the zero-shot rows is its test top-1, the caption models' included."""
    rows = np.flatnonzero(caption_ex.ws.items["is_test"].to_numpy())
    report = zeroshot_report(caption_ex, [(name, []) for name in caption_ex.labels], rows)
    assert report.n_evaluated == len(rows)
    assert set(report.trained_accuracy) == {"baseline", "multimodal", "text_only", "baseline_captions", "multimodal_captions"}
    for model, acc in report.trained_accuracy.items():
        assert acc == pytest.approx(caption_ex.ws.metrics[model]["top1"]), model


def test_best_model_sentence_says_when_two_models_tie(fitted_workspace, tmp_path):
    """On a tie the sentence says so, and whose labels are suggested (it read "best: 71.4%, against 71.4%")."""
    import json
    import shutil

    dest = tmp_path / "ws"
    shutil.copytree(fitted_workspace, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["validation"]["scores"] = {"baseline": 0.5, "multimodal": 0.5, "text_only": 0.25}
    (dest / "manifest.json").write_text(json.dumps(manifest))
    best = best_model(open_workspace(dest))
    assert best.name == "multimodal"  # on a tie, the product's model first
    assert "Multimodal (trained on your labels) and Baseline (visual) tie for best at top-1 50.0%" in best.sentence
    assert best.sentence.endswith("the labels suggested are Multimodal's.") and "against" not in best.sentence
