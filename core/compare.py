"""Model comparisons on the test split: per-label deltas, confusion matrices, PR curves, and
zero-shot classification with labels a user types."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.captions import NO_CAPTION_LABELS
from core.explore import Explorer
from core.metrics import pr_curve
from core.workspace import Workspace
from core.zeroshot import match_labels, scores_to_proba


def per_label_table(explorer: Explorer) -> pd.DataFrame:
    """One row per label: training and test counts, each model's per-label score (F1, or AP for
    multi-label) and ``delta`` = multimodal - baseline, sorted by ``delta`` (largest gain first)."""
    df = pd.DataFrame(explorer.ws.manifest["per_label"]).astype({m: float for m in ("baseline", "multimodal")})
    df["delta"] = df["multimodal"] - df["baseline"]
    return df.sort_values("delta", ascending=False, na_position="last").reset_index(drop=True)


def confusion_matrix(explorer: Explorer, model: str) -> np.ndarray:
    """(L, L) counts on the single-label test rows: row = true label, column = ``model``'s top label."""
    test = np.flatnonzero(explorer.ws.items["is_test"].to_numpy())
    true = explorer.truth[test].argmax(1)
    n = len(explorer.labels)
    return np.bincount(true * n + explorer.top[model][test], minlength=n * n).reshape(n, n)


def top_confusions(explorer: Explorer, model: str, k: int = 15) -> pd.DataFrame:
    """The ``k`` most frequent (true, predicted) mistakes of ``model`` on the test split."""
    cm = confusion_matrix(explorer, model).astype(float)
    np.fill_diagonal(cm, 0)
    flat = np.argsort(-cm, axis=None)[:k]
    n = len(explorer.labels)
    rows = [{"true": explorer.labels[f // n], "predicted": explorer.labels[f % n], "images": int(cm.flat[f])} for f in flat]
    return pd.DataFrame([r for r in rows if r["images"] > 0], columns=["true", "predicted", "images"])


def pr_curves(explorer: Explorer, models: tuple[str, ...] = ("baseline", "multimodal")) -> pd.DataFrame:
    """Micro-averaged precision/recall curves on the test split (long format, for plotting)."""
    test = np.flatnonzero(explorer.ws.items["is_test"].to_numpy())
    frames = []
    for m in models:
        precision, recall = pr_curve(explorer.truth[test], explorer.ws.predictions[m][test])
        step = max(1, len(precision) // 2000)  # plot at most ~2,000 points per curve
        frames.append(pd.DataFrame({"model": m, "recall": recall[::step], "precision": precision[::step]}))
    return pd.concat(frames, ignore_index=True)


@dataclass
class ZeroShotReport:
    """Zero-shot classification of workspace rows with typed labels.

    Attributes:
        typed: the typed label names, in order.
        proba: (N, len(typed)) probabilities (softmax of scaled cosines).
        rows: the workspace rows scored.
        matched: dataset label -> index of the typed label naming it.
        ambiguous: typed label -> the dataset labels it could name (:func:`core.zeroshot.match_labels`):
            it is scored against none of them.
        accuracy: top-1 of the zero-shot model on rows whose true label is matched (NaN if none).
        trained_accuracy: top-1 of each trained model on the same rows, among all dataset labels.
        n_evaluated: how many rows the accuracies count.
    """

    typed: list[str]
    proba: np.ndarray
    rows: np.ndarray
    matched: dict[str, int]
    ambiguous: dict[str, list[str]]
    accuracy: float
    trained_accuracy: dict[str, float]
    n_evaluated: int


def zeroshot_report(explorer: Explorer, labels: list[tuple[str, list[str]]], rows: np.ndarray) -> ZeroShotReport:
    """Classify workspace ``rows`` among typed ``labels`` (``(name, synonyms)`` pairs, as from
    :func:`core.zeroshot.parse_label_spec`) and compare with the trained models where the typed
    names match dataset labels (``"bird"`` matches ``"animals/birds"``: :func:`core.zeroshot.match_labels`)."""
    if len(labels) < 2:
        raise ValueError("type at least two labels")
    ws = explorer.ws
    proba = ws.zeroshot_rows(labels, rows)
    typed = [name for name, _ in labels]
    match = match_labels(typed, explorer.labels)
    matched = match.matched
    target = np.full(len(rows), -1)
    for lab, j in matched.items():
        col = explorer.labels.index(lab)
        hit = explorer.truth[rows, col] & (target < 0)
        target[hit] = j
    ok = target >= 0
    acc = float((proba[ok].argmax(1) == target[ok]).mean()) if ok.any() else float("nan")
    models = [m for m in MODEL_TITLES if m != "zeroshot" and m in explorer.correct]  # every trained model, best included
    trained = {m: float(explorer.correct[m][rows[ok]].mean()) if ok.any() else float("nan") for m in models}
    return ZeroShotReport(typed, proba, rows, matched, match.ambiguous, acc, trained, int(ok.sum()))


def zeroshot_images(
    ws: Workspace, images: list[str | bytes], labels: list[tuple[str, list[str]]]
) -> tuple[np.ndarray, dict[int, str]]:
    """Zero-shot probabilities of new images among typed ``labels``: ``(proba (N, L), errors)``,
    errors mapping the index of an image that could not be decoded to the reason."""
    if len(labels) < 2:
        raise ValueError("type at least two labels")
    feats, gen_in, errors = ws.embed(list(images))
    emb, ids, scores = ws.phrase_outputs(feats, gen_in)
    proba = scores_to_proba(ws.zeroshot_scores(labels, embeddings=emb, text_vectors=ws.text_vectors_of(ids, scores)))
    return proba, errors


CAPTION_GROUP = "trained on your labels + captions"
MODEL_GROUPS = {  # the groups Home and Compare show the models under (model_groups)
    "trained on your labels": ("baseline", "multimodal", "text_only"),
    CAPTION_GROUP: ("baseline_captions", "multimodal_captions"),
    "no labels": ("zeroshot",),
}
OTHER_GROUP = "other"  # any other model: the predictions a user attached (core.predictions)
MODEL_TITLES = {
    "baseline": "Baseline (visual)",
    "multimodal": "Multimodal",
    "text_only": "Text only",
    "zeroshot": "Zero-shot",
    "baseline_captions": "Baseline + captions (visual)",
    "multimodal_captions": "Multimodal + captions",
}
# on a tie, the product's model first
_PREFERENCE = ("multimodal_captions", "baseline_captions", "multimodal", "baseline", "text_only")


def model_groups(models: Iterable[str]) -> dict[str, list[str]]:
    """``models`` under the group Home and Compare show them in: every group of
    :data:`MODEL_GROUPS`, in order (empty where the workspace has none of its models), then
    :data:`OTHER_GROUP` with the models of no group (the predictions a user attached)."""
    models = list(models)
    groups = {g: [m for m in ms if m in models] for g, ms in MODEL_GROUPS.items()}
    grouped = {m for ms in MODEL_GROUPS.values() for m in ms}
    return {**groups, OTHER_GROUP: [m for m in models if m not in grouped]}


def caption_models_note(explorer: Explorer) -> str | None:
    """One sentence saying why the workspace has no models trained on labels + captions, or ``None``
    when it has them (Home and Compare show it where that group would be)."""
    ws = explorer.ws
    if any(m in ws.metrics for m in MODEL_GROUPS[CAPTION_GROUP]):
        return None
    cfg = ws.manifest["config"]
    lead = f"No models {CAPTION_GROUP}: "
    if cfg.get("caption_labels", "auto") == "off":
        return lead + "this workspace was fitted with caption labels off (`fit --caption-labels on` adds them)."
    summary = ws.manifest.get("captions")
    if summary is not None and not summary["n_caption_labels"]:
        return lead + NO_CAPTION_LABELS + "."
    unlabelled, captioned = explorer.captioned_training_rows
    if not captioned:
        return lead + "no training image has a caption (text or tags) to read a label from."
    share = cfg.get("captions", {}).get("auto_share", 0.2)
    return (
        lead + f"caption labels are added when at least {share:.0%} of the training images with a caption have no "
        f"label; here {unlabelled:,} of {captioned:,} ({unlabelled / captioned:.0%}) have none."
    )


@dataclass
class BestModel:
    """The trained model to suggest labels with, chosen on validation rows (never the test split).

    Attributes:
        name: the model's key (``multimodal`` when the workspace has no validation scores).
        score: its validation score (top-1, or mAP for multi-label); NaN when unknown.
        n_rows: how many held-out labelled training images the scores count.
        sentence: one plain sentence saying which model is best and by how much.
    """

    name: str
    score: float
    n_rows: int
    sentence: str


def best_model(ws: Workspace) -> BestModel:
    """The best trained model on this workspace's validation rows: the human-labelled training
    images every classifier held out for early stopping (see :func:`core.pipeline.train_classifiers`)."""
    val = ws.manifest.get("validation") or {}
    scores = {m: s for m, s in (val.get("scores") or {}).items() if s is not None and m in ws.models}
    n = int(val.get("n_rows", 0))
    if not scores:
        return BestModel(
            "multimodal", float("nan"), n, "No validation scores in this workspace (refit it): showing the multimodal model."
        )
    ranked = sorted(scores, key=lambda m: (-scores[m], _PREFERENCE.index(m)))
    best = ranked[0]
    metric = "mAP" if ws.multilabel else "top-1"
    group = next(g for g, ms in MODEL_GROUPS.items() if best in ms)
    sentence = (
        f"On {n} held-out labelled training images (not the test split), {MODEL_TITLES[best]} ({group}) "
        f"is best: {metric} {scores[best]:.1%}"
    )
    if len(ranked) > 1 and scores[ranked[1]] == scores[best]:  # a tie: say so, and whose labels are suggested
        return BestModel(
            best,
            float(scores[best]),
            n,
            f"On {n} held-out labelled training images (not the test split), {MODEL_TITLES[best]} ({group}) and "
            f"{MODEL_TITLES[ranked[1]]} tie for best at {metric} {scores[best]:.1%}; the labels suggested are "
            f"{MODEL_TITLES[best]}'s.",
        )
    if len(ranked) > 1:
        sentence += f", against {scores[ranked[1]]:.1%} for {MODEL_TITLES[ranked[1]]}"
    return BestModel(best, float(scores[best]), n, sentence + ".")
