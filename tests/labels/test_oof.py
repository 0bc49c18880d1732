"""The ``best`` out-of-fold source: the workspace's best model cross-validated, its caption teacher
refitted per fold, on a small real fit with caption models."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.forward import model_inputs
from core.labels.oof import OOF_DIR, fold_probabilities, out_of_fold, source_title, sources
from core.training import crossfit_folds, has_target, label_targets
from core.workspace import open_workspace
from tests.conftest import quick_fit
from tests.test_cli import run_here


@pytest.fixture(scope="module")
def caption_fit(small_dataset, cache_dir, tmp_path_factory):
    """Labels kept for 30% of each label's training images: caption labels and the caption models."""
    return quick_fit(small_dataset, tmp_path_factory.mktemp("oofcap") / "ws", cache_dir, label_fraction=0.3).path


@pytest.fixture
def best_is_baseline_captions(caption_fit, tmp_path):
    """A copy of the caption fit whose validation scores name ``baseline_captions`` the best model."""
    dest = tmp_path / "ws"
    shutil.copytree(caption_fit, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    scores = manifest["validation"]["scores"]
    manifest["validation"]["scores"] = {m: (0.99 if m == "baseline_captions" else 0.5) for m in scores}
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return open_workspace(dest)


def test_best_source_cross_validates_the_best_model_and_is_cached(best_is_baseline_captions):
    ws = best_is_baseline_captions
    assert "best" in sources(ws) and sources(ws)[0] == "linear"
    assert source_title(ws, "best") == "Best model (Baseline + captions (visual)), cross-validated"
    calls: list[tuple[str, int, int]] = []
    proba = out_of_fold(ws, "best", n_folds=3, progress=lambda s, d, n: calls.append((s, d, n)))
    assert proba.shape == (len(ws.items), len(ws.labels)) and np.isfinite(proba).all()
    assert [(d, n) for _, d, n in calls] == [(0, 3), (1, 3), (2, 3), (3, 3)]  # one step per fold
    assert "baseline_captions" in calls[0][0]
    y = label_targets([list(v) for v in ws.items["labels"]], ws.labels, ws.multilabel)
    train = ws.items["labelled"].to_numpy() & has_target(y, ws.multilabel)
    stored = ws.predictions["baseline_captions"]
    np.testing.assert_allclose(proba[~train], stored[~train], atol=1e-6)  # no label cross-validated: the model's own
    assert not np.allclose(proba[train], stored[train], atol=1e-3)  # in-sample there: replaced
    assert [p.name for p in (ws.path / OOF_DIR).iterdir()] == ["best_baseline_captions.safetensors"]
    again: list[tuple] = []
    np.testing.assert_array_equal(out_of_fold(ws, "best", n_folds=3, progress=lambda *a: again.append(a)), proba)
    assert again == []  # read from the cache, nothing refitted


def test_a_held_out_row_reaches_no_fold_model_even_through_the_caption_teacher(caption_fit):
    """A fold's caption model and its teacher never see the held-out rows: flipping their labels
    and swapping their captions for other rows' leaves their probabilities exactly as they were.
    A teacher that read the held-out labels, or caption labels given to the held-out rows, change them."""
    ws = open_workspace(caption_fit)
    model = "baseline_captions"
    x = model_inputs(ws.image_arrays, [model])[model]
    y = label_targets([list(v) for v in ws.items["labels"]], ws.labels, ws.multilabel)
    train = np.flatnonzero(ws.items["labelled"].to_numpy() & has_target(y, ws.multilabel))
    fold = crossfit_folds(y[train], 3, 0, ws.multilabel)
    held, fit = train[fold == 0], train[fold != 0]
    before = fold_probabilities(ws, model, x, y, fit, held)
    assert np.isfinite(before).all() and before.shape == (len(held), len(ws.labels))

    flipped = y.copy()
    flipped[held] = (y[held] + 1) % len(ws.labels)
    items, captions = ws.items, ws.arrays["caption_vec"].copy()
    text, tags = list(items["text"]), list(items["tags"])
    others = np.flatnonzero((items["split"].to_numpy() != "test") & ~np.isin(np.arange(len(y)), held))
    for r in held:  # the caption of a training row of another label
        donor = next(d for d in others if y[d] != y[r] and text[d])
        text[r], tags[r], captions[r] = text[donor], tags[donor], captions[donor]
    items["text"], items["tags"] = text, tags  # the workspace's own (cached) table
    ws.arrays["caption_vec"] = captions
    np.testing.assert_array_equal(fold_probabilities(ws, model, x, flipped, fit, held), before)


def test_cli_queue_accepts_the_best_source(best_is_baseline_captions):
    ws = best_is_baseline_captions
    out = run_here("labels", "queue", "--workspace", str(ws.path), "--source", "best", "--limit", "3")
    assert out.returncode == 0, out.stderr
    assert all("(best: baseline_captions out-of-fold)" in line for line in out.stdout.strip().splitlines()[:3])
    assert (ws.path / OOF_DIR / "best_baseline_captions.safetensors").is_file()
