"""Review queues: which images a labeler should look at first, and what to suggest for each.

Strategies:

* ``disagree`` -- the baseline and the multimodal model predict different labels.
* ``margin`` -- the multimodal model hesitates: smallest gap between its two best labels.
* ``label_errors`` -- likely wrong labels by confident learning (Northcutt et al., 2021):
  :func:`cleanlab.filter.find_label_issues` over *out-of-fold* probabilities of the row's
  current label, ranked by :func:`cleanlab.rank.get_label_quality_scores`. The probabilities
  come from any model (``source``, see :mod:`core.labels.oof`): a cross-validated logistic
  regression on the visual features and captions (default: five linear fits), the workspace's
  best model cross-validated (``best``), the product's multimodal classifier cross-validated
  (stored by the fit; refitted after label changes), or predictions the user attached.
  Rows whose label both cross-fitted image models predict are left out
  (:func:`confirmed_by_both_models`).
* ``near_duplicates`` / ``outliers`` -- cleanlab Datalab's checks on the visual features.
* ``unlabeled`` -- images without a label, or training images whose label no model trained on (a fit
  with ``--label-fraction`` keeps it aside), least confident prediction first.
* ``random`` -- a seeded shuffle (an unbiased audit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.labels.issues import datalab_issues, rank_label_issues
from core.labels.oof import out_of_fold
from core.progress import ProgressFn, silent
from core.training import label_targets
from core.vectors import l2n
from core.workspace import Workspace

STRATEGIES = {
    "disagree": "Baseline and multimodal disagree",
    "margin": "Low margin between the top two labels",
    "label_errors": "Likely label errors (cleanlab, out-of-fold)",
    "near_duplicates": "Near-duplicates (cleanlab Datalab)",
    "outliers": "Outliers (cleanlab Datalab)",
    "unlabeled": "Unlabeled images",
    "random": "Random",
}
DEFAULT_SOURCE = "linear"


@dataclass
class QueueItem:
    """One image to review: why it is queued, and the suggested labels."""

    row: int
    item: str
    suggestion: list[str]
    reason: str
    score: float


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
    source: str = DEFAULT_SOURCE,
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
        source: out-of-fold probabilities of ``label_errors`` (:func:`core.labels.oof.sources`).
        progress: progress callback (``label_errors`` may cross-validate a model once).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    current = current if current is not None else [list(v) for v in ws.items["labels"]]
    if strategy == "label_errors":
        order, score, proba, reason = _label_errors(ws, current, source, progress)
    elif strategy in ("near_duplicates", "outliers"):
        order, score, proba, reason = _datalab(ws, strategy)
    else:
        order, score, proba, reason = _model_queue(ws, strategy, current, seed)
    labels, items = ws.labels, ws.items["item"]
    base, multi = ws.predictions["baseline"], ws.predictions["multimodal"]
    out = []
    for r in order:  # rows are read as they are visited: a queue of 1M images costs its first rows
        item = str(items.iat[r])
        if item in exclude:
            continue
        names = {"base": labels[int(base[r].argmax())], "multi": labels[int(multi[r].argmax())]}
        text = reason(int(r)).format(**names, score=float(score[r]))
        out.append(QueueItem(int(r), item, _suggest(proba[r], labels, ws.multilabel), text, float(score[r])))
        if limit is not None and len(out) >= limit:
            break
    return out


_Queue = tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[int], str]]


def _model_queue(ws: Workspace, strategy: str, current: list[list[str]], seed: int) -> _Queue:
    """Queues read off the workspace's own predictions."""
    multi, base = ws.predictions["multimodal"], ws.predictions["baseline"]
    score = multi.max(1).astype(np.float64)
    if strategy == "disagree":
        rows = np.flatnonzero(base.argmax(1) != multi.argmax(1))
        order = rows[np.argsort(-(score[rows] + base.max(1)[rows]), kind="stable")]  # confident disagreements first
        text = "baseline says {base}, multimodal says {multi}"
    elif strategy == "margin":
        top2 = np.sort(multi, axis=1)[:, -2:]
        score = (top2[:, 1] - top2[:, 0]).astype(np.float64)
        order = np.argsort(score, kind="stable")
        text = "top-2 margin {score:.2f}"
    elif strategy == "unlabeled":  # no label, or a training label no model trained on (fit --label-fraction)
        items = ws.items
        untrained = ~items["labelled"].to_numpy(dtype=bool) & ~items["is_test"].to_numpy(dtype=bool)
        rows = np.flatnonzero(np.array([not labs for labs in current], dtype=bool) | untrained)
        order = rows[np.argsort(score[rows], kind="stable")]
        text = "no training label; model confidence {score:.2f}"
    else:
        order = np.random.default_rng(seed).permutation(len(multi))
        text = "random audit"
    return order, score, ws.predictions[suggesting_model(ws)], lambda r: text


def _label_errors(ws: Workspace, current: list[list[str]], source: str, progress: ProgressFn) -> _Queue:
    """cleanlab's label issues over the source's out-of-fold probabilities of the current labels,
    without the rows whose label both cross-fitted image models confirm (:func:`confirmed_by_both_models`)."""
    proba = out_of_fold(ws, source, current=current, progress=progress)
    y = label_targets(current, ws.labels, ws.multilabel)
    found = rank_label_issues(y, proba, ws.multilabel)
    order = found.order[~confirmed_by_both_models(ws, y)[found.order]]
    name = f"best: {suggesting_model(ws)}" if source == "best" else source.removeprefix("predictions:")
    return order, found.quality, proba, lambda r: f"label quality {{score:.2f}} ({name} out-of-fold)"


def confirmed_by_both_models(ws: Workspace, y: np.ndarray) -> np.ndarray:
    """(N,) rows whose current label is the top prediction of both the baseline and the
    multimodal model, where both are held out on the row (cross-fitted on training rows, see
    :attr:`Workspace.crossfit_models`; test and unlabelled rows trained neither).

    Two image models that never saw a row and still pick its label are evidence against an
    error, whatever a caption-aware source says: the label-error queue leaves such rows out
    (single-label workspaces; what that costs is measured by ``bench/label_queue_check.py``).
    Workspaces fitted before cross-fitting (in-sample predictions, which repeat any training
    label) confirm nothing.

    Args:
        ws: the workspace.
        y: every row's current label index, -1 for none (:func:`core.training.label_targets`).
    """
    if ws.multilabel or not {"baseline", "multimodal"} <= set(ws.crossfit_models):
        return np.zeros(len(y), dtype=bool)
    p = ws.predictions
    return (y >= 0) & (p["baseline"].argmax(1) == y) & (p["multimodal"].argmax(1) == y)


def _datalab(ws: Workspace, strategy: str) -> _Queue:
    """cleanlab Datalab's near-duplicate or outlier check on the visual features."""
    check = "near_duplicate" if strategy == "near_duplicates" else "outlier"
    order, score, sets = datalab_issues(l2n(ws.visual), check)
    items = ws.items["item"].astype(str).to_numpy()
    if check == "outlier":
        return order, score, ws.predictions[suggesting_model(ws)], lambda r: "outlier score {score:.2f}"

    def reason(r: int) -> str:
        others = ", ".join(items[j] for j in sets[r][:3]) + (" …" if len(sets[r]) > 3 else "")
        return f"near-duplicate of {others} (score {{score:.2f}})"

    return order, score, ws.predictions[suggesting_model(ws)], reason
