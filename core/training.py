"""Training targets and classifier training: which rows keep labels, their targets, one head per model input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.classifiers import Classifier, ClassifierConfig, stratified_holdout
from core.progress import ProgressFn


def check_label_fraction(fraction: float) -> float:
    """``fraction`` if it is a share of labels a fit can keep (0 < fraction <= 1).

    Raises:
        ValueError: it is not a number in (0, 1].
    """
    if not (isinstance(fraction, int | float) and 0 < fraction <= 1):  # NaN fails both comparisons
        raise ValueError(f"label fraction must be a share in (0, 1] (0.1 keeps 10% of each label's), got {fraction!r}")
    return fraction


def scarce_labels(labels: list[list[str]], train: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Mask of training rows that keep their labels: ``fraction`` of each (first) label's rows, at least one.

    Raises:
        ValueError: ``fraction`` is not in (0, 1] (:func:`check_label_fraction`).
    """
    check_label_fraction(fraction)
    keep = train & np.array([bool(labs) for labs in labels])
    if fraction >= 1.0:
        return keep
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels), dtype=bool)
    by_label: dict[str, list[int]] = {}
    for i in np.flatnonzero(keep):
        by_label.setdefault(labels[i][0], []).append(i)
    for lab in sorted(by_label):
        idx = np.array(by_label[lab])
        n = max(1, round(fraction * len(idx)))
        out[rng.permutation(idx)[:n]] = True
    return out


def label_targets(labels: list[list[str]], names: list[str], multilabel: bool) -> np.ndarray:
    """Class indices (single-label; -1 for none or unknown) or a 0/1 matrix (multi-label)."""
    pos = {n: i for i, n in enumerate(names)}
    if multilabel:
        y = np.zeros((len(labels), len(names)), dtype=np.float32)
        for i, labs in enumerate(labels):
            for lab in labs:
                if lab in pos:
                    y[i, pos[lab]] = 1.0
        return y
    return np.array([pos[labs[0]] if labs and labs[0] in pos else -1 for labs in labels], dtype=np.int64)


def has_target(y: np.ndarray, multilabel: bool) -> np.ndarray:
    """(N,) bool: rows with at least one known label."""
    return (y.sum(1) > 0) if multilabel else (y >= 0)


def crossfit_folds(y: np.ndarray, n_folds: int, seed: int, multilabel: bool) -> np.ndarray:
    """Fold of each row: stratified by label (single-label), random (multi-label)."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    if not multilabel and y.ndim == 2:  # soft targets: by their top label
        y = y.argmax(1)
    if multilabel:
        out[:] = rng.permutation(len(y)) % n_folds
        return out
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        out[rng.permutation(idx)] = (np.arange(len(idx)) + rng.integers(n_folds)) % n_folds
    return out


@dataclass
class TrainedModels:
    """What :func:`train_classifiers` returns.

    Attributes:
        probs: every row's probabilities, per model; for the models in ``crossfit``, the rows
            they trained on hold cross-fitted probabilities (:meth:`Classifier.crossfit`).
        validation: each model's score (top-1, or mAP) on the held-out human-labelled rows.
        n_validation: how many rows were held out.
    """

    probs: dict[str, np.ndarray]
    validation: dict[str, float]
    n_validation: int
    crossfit: tuple[str, ...] = ()

    def validation_summary(self) -> dict:
        """JSON-able validation scores for the manifest."""
        return {
            "n_rows": self.n_validation,
            "scores": {m: None if np.isnan(v) else round(float(v), 4) for m, v in self.validation.items()},
        }


def train_classifiers(
    inputs: dict[str, np.ndarray],
    y_all: np.ndarray,
    fit_idx: np.ndarray,
    n_classes: int,
    multilabel: bool,
    config: ClassifierConfig,
    folder: Path | None,
    progress: ProgressFn,
    *,
    targets: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    blocks: dict[str, tuple[int, ...] | None] | None = None,
    crossfit: tuple[str, ...] = (),
    twins: dict[str, str] | None = None,
) -> TrainedModels:
    """Fit one classifier per input and save it under ``folder`` (unless None).

    Every model holds out the same human-labelled rows of ``fit_idx`` for early stopping (and
    the fusion choice); rows only a model's own ``targets`` add (caption labels) are always
    trained on. Those held-out rows' scores compare the models without touching the test split.

    Args:
        inputs: each model's input, every row.
        y_all: every row's human target; ``fit_idx``: the human-labelled training rows.
        targets: per model, ``(targets of every row, rows to train on)`` replacing
            ``(y_all, fit_idx)`` (the caption models; trained with :meth:`ClassifierConfig.for_captions`).
        blocks: per model, the widths of its modalities (:func:`core.forward.input_blocks`).
        crossfit: models whose probabilities on their training rows are cross-fitted
            (``config.crossfit_folds`` folds, about as many extra refits each; fewer than 2: none), so that a page or a review
            queue shows what a model that never saw the row predicts, not its fit of that row.
        twins: per model, an earlier model of ``inputs`` with the same input and architecture
            (:data:`core.config.CAPTION_TWINS`). With ``config.warm_start`` the model fine-tunes
            its twin (:meth:`Classifier.fit_from`); else, with ``config.reuse_fusion``, it reuses
            the twin's fusion weight (visual share) instead of searching its own.

    Returns:
        Every row's probabilities per model, each model's validation score, the validation size.
    """
    targets, blocks = targets or {}, blocks or {}
    twins = twins or {}
    fitted: dict[str, Classifier] = {}
    crossfit = crossfit if config.crossfit_folds >= 2 else ()
    val_rows = fit_idx[stratified_holdout(y_all[fit_idx], config.val_fraction, config.seed)]
    probs: dict[str, np.ndarray] = {}
    validation: dict[str, float] = {}
    progress("classifiers", 0, len(inputs))
    for n_done, (name, x) in enumerate(inputs.items()):
        y, rows = targets.get(name, (y_all, fit_idx))
        clf = Classifier(n_classes, multilabel, config.for_captions() if name in targets else config)
        twin, val_mask = fitted.get(twins.get(name, "")), np.isin(rows, val_rows)
        if twin is not None and config.warm_start:
            clf.fit_from(twin, x[rows], y[rows], val_mask, blocks.get(name))
        else:
            share = twin.visual_share if twin is not None and config.reuse_fusion else None
            clf.fit(x[rows], y[rows], blocks=blocks.get(name), val_mask=val_mask, visual_share=share)
        fitted[name] = clf
        if folder is not None:
            clf.save(folder, name)
        probs[name] = clf.predict_proba(x)
        if name in crossfit:
            fold = crossfit_folds(y[rows], config.crossfit_folds, config.seed, multilabel)
            probs[name][rows] = clf.crossfit(x[rows], y[rows], fold, blocks.get(name))
        validation[name] = clf.val_score
        progress("classifiers", n_done + 1, len(inputs))
    return TrainedModels(probs, validation, len(val_rows), tuple(m for m in inputs if m in crossfit))
