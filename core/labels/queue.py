"""Review queues: which images a labeler should look at first, and what to suggest for each.

Strategies:

* ``disagree`` -- the baseline and the multimodal model predict different labels.
* ``margin`` -- the multimodal model hesitates: smallest gap between its two best labels.
* ``label_errors`` -- likely wrong labels, in the spirit of confident learning (Northcutt et
  al., 2021): the given label gets a low *out-of-fold* probability from the multimodal model
  while another label is predicted. Rows the classifiers trained on get cross-validated
  probabilities (computed once, cached in the workspace); the others are already out of sample.
* ``unlabeled`` -- images without a label, least confident prediction first.
* ``random`` -- a seeded shuffle (an unbiased audit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from safetensors.numpy import load_file, save_file

from core.classifiers import Classifier
from core.phrases.generator import l2n
from core.pipeline import label_targets
from core.progress import ProgressFn, silent
from core.workspace import Workspace

STRATEGIES = {
    "disagree": "Baseline and multimodal disagree",
    "margin": "Low margin between the top two labels",
    "label_errors": "Likely label errors (out-of-fold)",
    "unlabeled": "Unlabeled images",
    "random": "Random",
}
OOF_FILE = "oof_multimodal.safetensors"


@dataclass
class QueueItem:
    """One image to review: why it is queued, and the suggested labels."""

    row: int
    item: str
    suggestion: list[str]
    reason: str
    score: float


def _stamp(ws: Workspace) -> str:
    return f"{ws.manifest['created']}|{len(ws.manifest.get('retrains', []))}"


def out_of_fold_proba(ws: Workspace, *, n_folds: int = 5, progress: ProgressFn = silent) -> np.ndarray:
    """Multimodal probabilities of every row that no model trained on that row produced.

    Training rows get K-fold cross-validated predictions from classifiers of the workspace's
    configuration; the other rows keep the workspace's predictions (they were never trained
    on). Cached in ``oof_multimodal.safetensors`` until the next fit or retrain.
    """
    path = ws.path / OOF_FILE
    if path.is_file():
        cached = load_file(str(path))
        if bytes(cached["stamp"]).decode() == _stamp(ws):
            return cached["proba"]
    proba = ws.predictions["multimodal"].copy()
    train = np.flatnonzero(ws.items["labelled"].to_numpy())
    x = np.concatenate([l2n(ws.arrays["visual"]), ws.arrays["text_vec"]], axis=1)
    y = label_targets(list(ws.items["labels"]), ws.labels, ws.multilabel)
    rng = np.random.default_rng(ws.config.seed)
    folds = _folds(y[train], n_folds, rng, ws.multilabel)
    for f in range(n_folds):
        progress("out-of-fold predictions", f, n_folds)
        held = train[folds == f]
        fit = train[folds != f]
        if len(held) == 0 or len(fit) == 0:
            continue
        clf = Classifier(len(ws.labels), ws.multilabel, ws.config.classifier).fit(x[fit], y[fit])
        proba[held] = clf.predict_proba(x[held])
    progress("out-of-fold predictions", n_folds, n_folds)
    stamp = np.frombuffer(_stamp(ws).encode(), dtype=np.uint8)
    save_file({"proba": proba.astype(np.float32), "stamp": stamp}, str(path))
    return proba


def _folds(y: np.ndarray, n_folds: int, rng: np.random.Generator, multilabel: bool) -> np.ndarray:
    """Fold of each row: stratified by label (single-label), random (multi-label)."""
    folds = np.empty(len(y), dtype=np.int64)
    if multilabel:
        folds[:] = rng.permutation(len(y)) % n_folds
        return folds
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        folds[rng.permutation(idx)] = (np.arange(len(idx)) + rng.integers(n_folds)) % n_folds
    return folds


def _suggest(p: np.ndarray, labels: list[str], multilabel: bool) -> list[str]:
    if multilabel:
        chosen = [labels[j] for j in np.flatnonzero(p >= 0.5)]
        return chosen or [labels[int(p.argmax())]]
    return [labels[int(p.argmax())]]


def suggesting_model(ws: Workspace) -> str:
    """The model whose labels are suggested: the best on held-out labelled rows (:func:`core.compare.best_model`)."""
    from core.compare import best_model

    return best_model(ws).name


def review_item(ws: Workspace, row: int, reason: str) -> QueueItem:
    """One row as a queue item, with the best model's suggestion."""
    p = ws.predictions[suggesting_model(ws)][row]
    return QueueItem(row, str(ws.items.at[row, "item"]), _suggest(p, ws.labels, ws.multilabel), reason, float(p.max()))


def review_queue(
    ws: Workspace,
    strategy: str,
    *,
    current: list[list[str]] | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
    limit: int | None = None,
    seed: int = 0,
    progress: ProgressFn = silent,
) -> list[QueueItem]:
    """The images to review under ``strategy``, most useful first.

    Args:
        ws: the workspace.
        strategy: one of :data:`STRATEGIES`.
        current: every row's current labels (corrections applied); default: the workspace's.
        exclude: items to leave out (e.g. already reviewed).
        limit: at most this many.
        seed: seed of ``random``.
        progress: progress callback (``label_errors`` may fit cross-validation models once).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    labels = ws.labels
    current = current if current is not None else [list(v) for v in ws.items["labels"]]
    multi = ws.predictions["multimodal"]
    items = ws.items["item"].astype(str).to_numpy()
    has_label = np.array([bool(labs) for labs in current])
    proba = ws.predictions[suggesting_model(ws)]
    if strategy == "disagree":
        base_top, multi_top = ws.predictions["baseline"].argmax(1), multi.argmax(1)
        rows = np.flatnonzero(base_top != multi_top)
        score = multi.max(1)[rows] + ws.predictions["baseline"].max(1)[rows]  # confident disagreements first
        order = rows[np.argsort(-score, kind="stable")]
        reason = "baseline says {base}, multimodal says {multi}"
    elif strategy == "margin":
        top2 = np.sort(multi, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        order = np.argsort(margin, kind="stable")
        reason = "top-2 margin {score:.2f}"
    elif strategy == "label_errors":
        proba = out_of_fold_proba(ws, progress=progress)
        y = label_targets(current, labels, ws.multilabel)
        if ws.multilabel:
            given = np.where(y > 0, proba, np.inf).min(1)  # the least supported given label
            flagged = has_label & (given < 0.5)
        else:
            known = y >= 0
            given = np.where(known, proba[np.arange(len(y)), np.maximum(y, 0)], np.inf)
            flagged = known & (proba.argmax(1) != y)
        rows = np.flatnonzero(flagged)
        order = rows[np.argsort(given[rows], kind="stable")]
        reason = "out-of-fold probability of the given label {score:.2f}"
    elif strategy == "unlabeled":
        rows = np.flatnonzero(~has_label)
        order = rows[np.argsort(multi.max(1)[rows], kind="stable")]
        reason = "no label; model confidence {score:.2f}"
    else:
        order = np.random.default_rng(seed).permutation(len(items))
        reason = "random audit"
    out = []
    for r in order:
        if items[r] in exclude:
            continue
        if strategy == "label_errors":
            s = float(given[r])
        elif strategy == "margin":
            s = float(margin[r])
        else:
            s = float(multi[r].max())
        text = reason.format(
            base=labels[int(ws.predictions["baseline"][r].argmax())], multi=labels[int(multi[r].argmax())], score=s
        )
        out.append(QueueItem(int(r), str(items[r]), _suggest(proba[r], labels, ws.multilabel), text, s))
        if limit is not None and len(out) >= limit:
            break
    return out
