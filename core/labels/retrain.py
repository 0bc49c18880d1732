"""Refit the classifiers with corrected labels, reusing every stored embedding.

Visual features, phrases and text vectors do not depend on labels, so a retrain only refits
the three classifiers (seconds to a minute), recomputes zero-shot scores for the new label set,
and rewrites the workspace's predictions, metrics and labels. Corrected training rows count
as labelled (a labeler labelled them, or confirmed their label); corrected test rows change the test truth, and the
"before" metrics are the old models scored on that same corrected truth.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.caption_cache import cached_caption_labels
from core.captions import (
    CaptionLabels,
    caption_label_columns,
    caption_targets,
    caption_texts,
    label_name_rows,
    useful_caption_labels,
)
from core.config import CAPTION_MODELS, CAPTION_TWINS, CLASSIFIER_MODELS, FitConfig, default_cache_dir
from core.forward import input_blocks, model_inputs
from core.labels.session import current_labels, dataset_labels, reviewed_items
from core.labels.store import LabelStore
from core.metrics import evaluate, evaluate_models, paired_bootstrap_delta
from core.progress import ProgressFn, silent
from core.text import embed_texts
from core.training import has_target, label_targets, train_classifiers
from core.workspace import Workspace
from core.workspace_files import classifiers_staging, commit_retrain, workspace_lock
from core.zeroshot import scores_to_proba


@dataclass
class RetrainReport:
    """Metrics of the old and the new models on the same (corrected) test truth."""

    before: dict[str, dict[str, float]]
    after: dict[str, dict[str, float]]
    n_corrected: int
    n_labelled: int
    labels: list[str]
    delta: dict[str, dict] | None = None  # per model: the change on the test split with a 95% bootstrap interval

    def to_dict(self) -> dict:
        return {
            "before": self.before,
            "after": self.after,
            "n_corrected": self.n_corrected,
            "n_labelled": self.n_labelled,
            "labels": self.labels,
            "delta": self.delta,
        }


def _expand(proba: np.ndarray, old: list[str], new: list[str]) -> np.ndarray:
    """Old-label-space probabilities laid out in the new label space (zeros for new labels)."""
    out = np.zeros((len(proba), len(new)), dtype=np.float32)
    pos = {n: j for j, n in enumerate(new)}
    for j, name in enumerate(old):
        if name in pos:
            out[:, pos[name]] = proba[:, j]
    return out


def _cache_root(cfg: FitConfig) -> Path:
    """The fit's cache folder, or the default one (``$PIXCTX_CACHE_DIR`` or ``~/.cache/pixctx``)
    where the fit's cannot be written here (a workspace fitted on another machine with ``--cache-dir``)."""
    root = cfg.cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    return default_cache_dir()


def workspace_caption_labels(
    ws: Workspace, y_all: np.ndarray, labelled: np.ndarray, train: np.ndarray, names: list[str], *, reuse: bool = True
) -> CaptionLabels:
    """The caption labels a fit of ``ws`` makes for these human targets and rows: the teacher of
    :func:`core.captions.caption_labels` with the workspace's captions, visual features, caption
    settings and seed, reading the label names as captions, as the fit does.

    Args:
        ws: the workspace (fitted with captions).
        y_all: every row's human target over ``names``.
        labelled: rows whose human label the teacher may read.
        train: rows that may get a caption label (training rows).
        names: the label names.
        reuse: read and write the teacher cache (:mod:`core.caption_cache`); off for one-off
            teachers (a cross-validation fold's), which would push the fit's entry out.
    """
    texts = caption_texts(list(ws.items["text"]), list(ws.items["tags"]))
    cfg = ws.config
    cache = _cache_root(cfg)
    names_rows = label_name_rows(names, lambda t: embed_texts(t, ws.text_encoder, cache))  # as the fit does
    return cached_caption_labels(
        cache if reuse else None,
        texts,
        ws.caption_vectors,
        y_all,
        labelled,
        train,
        ws.multilabel,
        cfg.captions,
        cfg.seed,
        visual=ws.visual,
        label_names=names_rows,
    )


def retrain(ws: Workspace, store: LabelStore, *, progress: ProgressFn = silent) -> RetrainReport:
    """Refit the classifiers of ``ws`` on the store's current labels and rewrite the workspace.

    Returns:
        Metrics before and after on the corrected test split.

    Raises:
        ValueError: fewer than two labels among the labelled training rows.
        core.workspace.WorkspaceBusyError: a fit or another retrain is writing the workspace.
    """
    with workspace_lock(ws.path):
        return _retrain(ws, store, progress)


def _retrain(ws: Workspace, store: LabelStore, progress: ProgressFn) -> RetrainReport:
    items = ws.items
    labels = current_labels(ws, store)
    reviewed = reviewed_items(store)
    was_reviewed = np.array([i in reviewed for i in items["item"].astype(str)])
    original = dataset_labels(ws)
    n_corrected = sum(sorted(a) != sorted(b) for a, b in zip(labels, original, strict=True))
    split = items["split"].to_numpy()
    train = split != "test"
    labelled = (items["labelled"].to_numpy() | (was_reviewed & train)) & np.array([bool(x) for x in labels])
    names = sorted({lab for i in np.flatnonzero(labelled) for lab in labels[i]})
    if len(names) < 2:
        raise ValueError(f"need at least 2 labels among the labelled training rows, found {names}")
    y_all = label_targets(labels, names, ws.multilabel)
    has = has_target(y_all, ws.multilabel)
    test = (split == "test") & has
    fit_idx = np.flatnonzero(labelled & has)

    captions = None
    if ws.caption_vectors is not None and ws.manifest.get(
        "captions"
    ):  # fitted with caption labels: re-read them; the store's labels win
        captions = workspace_caption_labels(ws, y_all, labelled, train, names)
    used = useful_caption_labels(captions)  # as a fit: no caption model without a caption label
    models = CLASSIFIER_MODELS + (CAPTION_MODELS if used is not None else ())
    arrays = ws.image_arrays
    new_dir = classifiers_staging(ws.path)
    trained = train_classifiers(
        model_inputs(arrays, models),
        y_all,
        fit_idx,
        len(names),
        ws.multilabel,
        ws.config.classifier,
        new_dir,
        progress,
        targets=caption_targets(used, fit_idx, CAPTION_MODELS),
        blocks={m: input_blocks(m, arrays) for m in models},
        crossfit=CLASSIFIER_MODELS,
        twins=CAPTION_TWINS,
    )
    probs = trained.probs
    probs["zeroshot"] = scores_to_proba(
        ws.zeroshot_scores([(n, []) for n in names], embeddings=ws.coembedding, text_vectors=ws.text_vectors)
    )
    after, per_label = evaluate_models(probs, y_all, test, fit_idx, names, ws.multilabel)
    old_probs = {m: _expand(ws.predictions[m][test], ws.labels, names) for m in ws.models if m in probs}
    before = {m: evaluate(y_all[test], p, multilabel=ws.multilabel) for m, p in old_probs.items()}
    delta = {m: paired_bootstrap_delta(y_all[test], p, probs[m][test], multilabel=ws.multilabel) for m, p in old_probs.items()}

    caption_columns = caption_label_columns(captions, names, len(items))
    out_items = items.assign(labels=labels, labels_dataset=original, labelled=labelled, is_test=test, **caption_columns)
    manifest = dict(ws.manifest)
    report = RetrainReport(before, after, n_corrected, len(fit_idx), names, delta)
    manifest.update(labels=names, metrics=after, per_label=per_label, n_test=int(test.sum()), n_labelled=len(fit_idx))
    manifest.update(captions=None if captions is None else captions.summary(), validation=trained.validation_summary())
    manifest.update(crossfit=list(trained.crossfit))
    manifest["retrains"] = [
        *manifest.get("retrains", []),
        {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **report.to_dict()},
    ]
    commit_retrain(ws.path, new_dir, probs, out_items, manifest)
    return report
