"""Out-of-fold probabilities for the label-error queue, from any model, cached safely.

Sources:

* ``product`` -- the workspace's multimodal classifier, K-fold cross-validated on its
  training rows (the other rows keep the workspace's predictions: no model trained on them);
  free while the training labels are those of the last fit or retrain, which stored them;
* ``linear`` -- a logistic regression on the stored visual features and caption embeddings
  (visual only when no row has a caption), cross-validated over every labelled row (seconds on
  the demo). A caption that contradicts its label is strong evidence the pixels alone lack: on
  the demo with 5% of the labels flipped it lifts precision@100 from about 0.43 to 0.77
  (``bench/label_errors.py``, ``docs/results.md``);
* ``best`` -- the workspace's best model on its validation rows (:func:`core.compare.best_model`)
  cross-validated like ``product`` (which it is when that model is the multimodal one). A caption
  model's folds each train on the other folds' human labels and on caption labels from a teacher
  refitted without the held-out fold (:func:`fold_probabilities`);
* ``predictions:NAME`` -- a predictions file the user attached (``core.predictions``), taken
  as out of sample.

Every result is cached in the workspace (``oof/<source>.safetensors``) under a key that hashes
the workspace's fit and retrain stamp, its item order, its label space and every row's *current*
labels: a cached array is used only for exactly the rows and labels it was computed for, so a
refit, a retrain, a label change or a reordered workspace is never served stale probabilities
(see :func:`cache_key`). The cache is written atomically under the workspace's lock, and skipped
while another process writes the workspace (:func:`core.workspace_files.cache_arrays`).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from core.forward import input_blocks, model_inputs
from core.progress import ProgressFn, silent
from core.training import crossfit_folds, has_target, label_targets, train_classifiers
from core.vectors import l2n
from core.workspace import Workspace
from core.workspace_files import cache_arrays

OOF_DIR = "oof"
BASE_SOURCES = ("linear", "best", "product")
SOURCE_NAMES = {
    "linear": "Logistic regression on the visual features and captions (fast)",
    "best": "Best model, cross-validated",
    "product": "Multimodal classifier, cross-validated (stored by the fit; refitted after label changes)",
}
PREDICTIONS_PREFIX = "predictions:"


def sources(ws: Workspace) -> list[str]:
    """Every source of out-of-fold probabilities this workspace offers."""
    from core.predictions import attached_names

    return [*BASE_SOURCES, *(PREDICTIONS_PREFIX + n for n in attached_names(ws))]


def source_title(ws: Workspace, source: str) -> str:
    """A source for people; ``best`` names the workspace's best model."""
    if source == "best":
        from core.compare import MODEL_TITLES, best_model

        return f"Best model ({MODEL_TITLES[best_model(ws).name]}), cross-validated"
    return SOURCE_NAMES.get(source, source.removeprefix(PREDICTIONS_PREFIX) + " (your predictions)")


def _computed_as(ws: Workspace, source: str) -> str:
    """What a base source computes: ``best`` is ``product`` when the best model is the
    multimodal one (same probabilities, same cache), else ``best:MODEL``."""
    if source != "best":
        return source
    from core.compare import best_model

    model = best_model(ws).name
    return "product" if model == "multimodal" else f"best:{model}"


def cache_key(ws: Workspace, source: str, current: list[list[str]], n_folds: int = 5) -> str:
    """Hash of everything the probabilities depend on: the fit and retrain stamp, the dataset,
    the label space, the number of folds, and every row's item and current labels, in order.

    The previous cache (``oof_multimodal.safetensors``) was keyed by ``created|number of
    retrains`` only: labels changed between retrains were cross-validated with their old values,
    and nothing tied the cached rows and columns to the workspace's. With this key a cached array
    is only ever used for exactly the rows and labels it was computed for.
    """
    h = hashlib.sha256()
    stamp = [ws.manifest.get("created"), len(ws.manifest.get("retrains", [])), ws.manifest["dataset"]["fingerprint"]]
    h.update(json.dumps([source, n_folds, stamp, ws.labels]).encode())
    for item, labs in zip(ws.items["item"].astype(str), current, strict=True):
        h.update(json.dumps([item, sorted(labs)]).encode())
    return h.hexdigest()


def _cache_path(ws: Workspace, source: str) -> Path:
    return ws.path / OOF_DIR / (re.sub(r"[^A-Za-z0-9_.-]", "_", source) + ".safetensors")


def out_of_fold(
    ws: Workspace,
    source: str = "linear",
    *,
    current: list[list[str]] | None = None,
    n_folds: int = 5,
    progress: ProgressFn = silent,
) -> np.ndarray:
    """(N, L) out-of-fold probabilities of every row, in the workspace's label order.

    Args:
        ws: the workspace.
        source: ``linear``, ``best``, ``product`` or ``predictions:NAME`` (see :func:`sources`).
        current: every row's current labels (corrections applied); default: the workspace's.
        n_folds: cross-validation folds.
        progress: progress callback.
    """
    current = current if current is not None else [list(v) for v in ws.items["labels"]]
    if source.startswith(PREDICTIONS_PREFIX):
        from core.predictions import load_attached

        attached = load_attached(ws, source[len(PREDICTIONS_PREFIX) :])
        return attached.proba
    if source not in BASE_SOURCES:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(sources(ws))}")
    name = _computed_as(ws, source)
    key = cache_key(ws, name, current, n_folds)
    path = _cache_path(ws, name)
    if path.is_file():
        cached = load_file(str(path))
        if bytes(cached["key"]).decode() == key:
            return cached["proba"]
    if name == "linear":
        proba = _linear_oof(ws, current, n_folds, progress)
    else:
        model = "multimodal" if name == "product" else name.removeprefix("best:")
        proba = _model_oof(ws, model, current, n_folds, progress)
    proba = proba.astype(np.float32)
    cache_arrays(ws.path, OOF_DIR, path.name, {"proba": proba, "key": np.frombuffer(key.encode(), dtype=np.uint8)})
    return proba


def _model_oof(ws: Workspace, model: str, current: list[list[str]], n_folds: int, progress: ProgressFn) -> np.ndarray:
    """``model``'s configuration cross-validated on the human-labelled training rows; every other
    row keeps the workspace's predictions of ``model``.

    For a model the fit cross-fitted (:attr:`Workspace.crossfit_models`: the paper's three),
    when no training row's label has changed since the fit or retrain, these are the cross-fitted
    probabilities that fit stored: nothing is retrained."""
    proba = ws.predictions[model].copy()
    y = label_targets(current, ws.labels, ws.multilabel)
    train = np.flatnonzero(ws.items["labelled"].to_numpy() & has_target(y, ws.multilabel))
    trained_on = ws.items["labels"]
    stored = model in ws.crossfit_models and n_folds == ws.config.classifier.crossfit_folds
    if stored and all(sorted(current[r]) == sorted(trained_on[r]) for r in train):
        return proba
    x = model_inputs(ws.image_arrays, [model])[model]
    fold = crossfit_folds(y[train], n_folds, ws.config.seed, ws.multilabel)
    step = f"out-of-fold predictions ({model})"
    for f in range(n_folds):
        progress(step, f, n_folds)
        held, fit = train[fold == f], train[fold != f]
        if len(held) and len(fit):
            proba[held] = fold_probabilities(ws, model, x, y, fit, held)
    progress(step, n_folds, n_folds)
    return proba


def fold_probabilities(ws: Workspace, model: str, x: np.ndarray, y: np.ndarray, fit: np.ndarray, held: np.ndarray) -> np.ndarray:
    """The ``held`` rows' probabilities from ``model``'s configuration trained as the fit trains
    it (:func:`core.training.train_classifiers`) on the ``fit`` rows' labels ``y``.

    A caption model also trains on the caption labels of a teacher refitted on the ``fit`` rows'
    labels only (:func:`core.labels.retrain.workspace_caption_labels`), given to the training rows
    outside ``held``: neither a held-out row nor its label reaches the model, even through the
    teacher. Human labels win over caption labels, as in the fit.

    Args:
        ws: the workspace.
        model: a classifier model of the workspace.
        x: every row's input of ``model`` (:func:`core.forward.model_inputs`).
        y: every row's current target (:func:`core.training.label_targets`).
        fit: the human-labelled rows to train on.
        held: the rows to predict.
    """
    from core.captions import caption_targets
    from core.config import CAPTION_MODELS
    from core.labels.retrain import workspace_caption_labels

    targets = {}
    if model in CAPTION_MODELS:
        labelled = np.zeros(len(y), dtype=bool)
        labelled[fit] = True
        train = ws.items["split"].to_numpy() != "test"
        train[held] = False
        captions = workspace_caption_labels(ws, y, labelled, train, ws.labels, reuse=False)
        targets = caption_targets(captions, fit, (model,))
    cfg = ws.config.classifier
    blocks = {model: input_blocks(model, ws.image_arrays)}  # the same fusion balancing as the fitted model
    trained = train_classifiers(
        {model: x}, y, fit, len(ws.labels), ws.multilabel, cfg, None, silent, targets=targets, blocks=blocks
    )
    return trained.probs[model][held]


def linear_oof(x: np.ndarray, y: np.ndarray, n_classes: int, multilabel: bool, *, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Cross-validated logistic-regression probabilities of the rows with a label (zeros elsewhere).

    Single-label rows follow cleanlab's documented recipe exactly: scikit-learn's
    ``LogisticRegression(max_iter=1000)`` through ``cross_val_predict`` over a shuffled
    ``StratifiedKFold``, so on the same features the queue is never worse than that recipe. Our
    own stratified folds take over when no class has ``n_folds`` rows (scikit-learn refuses).

    Args:
        x: (N, D) features (L2-normalised blocks: :func:`linear_features`).
        y: (N,) class indices (-1: none) or an (N, C) 0/1 matrix.
        n_classes: number of classes C.
        multilabel: one binary regression per class instead of a softmax.
        n_folds: folds.
        seed: fold seed.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    known = np.flatnonzero(has_target(y, multilabel))
    proba = np.zeros((len(x), n_classes), dtype=np.float64)
    if not multilabel and len(np.unique(y[known])) > 1 and np.bincount(y[known]).max() >= n_folds:
        cv = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # classes with fewer rows than folds: scikit-learn warns, and copes
            warnings.simplefilter("ignore", UserWarning)
            out = cross_val_predict(LogisticRegression(max_iter=1000), x[known], y[known], cv=cv, method="predict_proba")
        proba[np.ix_(known, np.unique(y[known]))] = out
        return proba
    fold = crossfit_folds(y[known], n_folds, seed, multilabel)
    for f in range(n_folds):
        held, fit = known[fold == f], known[fold != f]
        if len(held) == 0 or len(fit) == 0:
            continue
        if multilabel:
            for c in range(n_classes):
                yc = y[fit, c]
                if yc.min() == yc.max():
                    proba[held, c] = yc[0]
                    continue
                proba[held, c] = LogisticRegression(max_iter=1000).fit(x[fit], yc).predict_proba(x[held])[:, 1]
            continue
        if len(np.unique(y[fit])) < 2:
            proba[np.ix_(held, np.unique(y[fit]))] = 1.0
            continue
        clf = LogisticRegression(max_iter=1000).fit(x[fit], y[fit])
        proba[np.ix_(held, clf.classes_)] = clf.predict_proba(x[held])
    return proba


def linear_features(visual: np.ndarray, captions: np.ndarray | None) -> np.ndarray:
    """The linear source's features: L2-normalised visual features, beside the L2-normalised
    caption embeddings when there are any (rows without a caption: zeros)."""
    return l2n(visual) if captions is None else np.hstack([l2n(visual), l2n(captions)])


def _linear_oof(ws: Workspace, current: list[list[str]], n_folds: int, progress: ProgressFn) -> np.ndarray:
    progress("linear out-of-fold predictions", 0, 1)
    y = label_targets(current, ws.labels, ws.multilabel)
    proba = linear_oof(
        linear_features(ws.visual, ws.caption_vectors), y, len(ws.labels), ws.multilabel, n_folds=n_folds, seed=ws.config.seed
    )
    unknown = ~has_target(y, ws.multilabel)
    proba[unknown] = ws.predictions["baseline"][unknown]  # no label to cross-validate: the visual model's view
    progress("linear out-of-fold predictions", 1, 1)
    return proba
