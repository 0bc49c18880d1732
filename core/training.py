"""Training targets and classifier training: which rows keep labels, their targets, one head per model input."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.classifiers import Classifier, ClassifierConfig
from core.progress import ProgressFn


def scarce_labels(labels: list[list[str]], train: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Mask of training rows that keep their labels: ``fraction`` of each (first) label's rows, at least one."""
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


def train_classifiers(
    inputs: dict[str, np.ndarray],
    y_all: np.ndarray,
    fit_idx: np.ndarray,
    n_classes: int,
    multilabel: bool,
    config: ClassifierConfig,
    folder: Path,
    progress: ProgressFn,
) -> dict[str, np.ndarray]:
    """Fit one classifier per input (rows ``fit_idx``), save it under ``folder``, and return
    every row's probabilities per model."""
    probs: dict[str, np.ndarray] = {}
    progress("classifiers", 0, len(inputs))
    for n_done, (name, x) in enumerate(inputs.items()):
        clf = Classifier(n_classes, multilabel, config).fit(x[fit_idx], y_all[fit_idx])
        clf.save(folder, name)
        probs[name] = clf.predict_proba(x)
        progress("classifiers", n_done + 1, len(inputs))
    return probs
