"""Captions as supervision: label the unlabelled training images from their own captions.

Users' collections have captions (titles, alt text, tags) for nearly every image and labels for
few. A caption classifier (logistic regression on the captions' MiniLM embeddings and/or tf-idf
features, per-label sigmoid for multi-label data) is trained on the *labelled* training rows
only; it then labels every training row that has text but no label. Its features and the
confidence threshold are chosen by cross-validation on the labelled rows (never on test rows):
a caption label is kept where the out-of-fold predictions at that confidence were more often
right than wrong. Rows whose caption says nothing (no text, no tags) get no caption label, test
rows never get one, and a human label always wins.

The result feeds the ``baseline_captions`` and ``multimodal_captions`` models (same
architectures as ``baseline`` and ``multimodal``, trained on human + caption labels).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

CAPTION_MODES = ("auto", "on", "off")
CAPTION_FEATURES = ("minilm", "tfidf", "both")


@dataclass
class CaptionLabelConfig:
    """How caption labels are made.

    Attributes:
        features: ``auto`` (chosen by cross-validation on the labelled rows) or one of
            :data:`CAPTION_FEATURES`.
        c: inverse regularisation strength of the logistic regression.
        n_folds: cross-validation folds on the labelled rows (fewer when a label has fewer rows).
        auto_share: in ``auto`` mode, caption labels are used when at least this share of the
            training rows with text are unlabelled.
        min_df: tf-idf keeps the words and word pairs of at least this many training captions (one
            caption's own terms cannot carry over to another row; they only let the regression
            memorise its labelled rows, and make it several times slower).
    """

    features: str = "auto"
    c: float = 10.0
    n_folds: int = 5
    auto_share: float = 0.2
    min_df: int = 2


@dataclass
class CaptionLabels:
    """Caption labels of one fit.

    Attributes:
        targets: every row's training target: the human label on labelled rows, the caption
            label on ``caption`` rows, -1 (single-label) or zeros (multi-label) elsewhere.
        caption: rows that carry a caption label (unlabelled training rows with text only).
        confidence: the caption classifier's confidence on each row (0 where none).
        predicted: the caption classifier's probabilities on every unlabelled training row with
            text (zeros elsewhere), kept or not: how good the caption labels are.
        threshold: the confidence a caption label needs (chosen by cross-validation).
        features: the caption features used.
        cv_accuracy: out-of-fold accuracy (single-label) or micro-F1 (multi-label) of the
            caption classifier on the labelled rows, for the features used.
    """

    targets: np.ndarray
    caption: np.ndarray
    confidence: np.ndarray
    predicted: np.ndarray
    threshold: float
    features: str
    cv_accuracy: float

    def summary(self) -> dict:
        """JSON-able description for the workspace manifest."""
        return {
            "n_caption_labels": int(self.caption.sum()),
            "threshold": round(float(self.threshold), 4),
            "features": self.features,
            "cv_accuracy": round(float(self.cv_accuracy), 4),
        }


def caption_texts(texts: list[str], tags: list[list[str]]) -> list[str]:
    """One string per row: the caption followed by its tags ("" when the row has neither)."""
    return [" ".join([str(t or "").strip(), *[str(g) for g in (tg or [])]]).strip() for t, tg in zip(texts, tags, strict=True)]


def wants_caption_labels(mode: str, train: np.ndarray, labelled: np.ndarray, has_text: np.ndarray, share: float) -> bool:
    """Whether a fit uses caption labels: ``on``, ``off``, or ``auto`` (when at least ``share`` of
    the training rows with text are unlabelled)."""
    if mode not in CAPTION_MODES:
        raise ValueError(f"caption_labels must be one of {CAPTION_MODES}, got {mode!r}")
    if mode != "auto":
        return mode == "on"
    with_text = train & has_text
    return bool(with_text.any()) and (with_text & ~labelled).sum() >= share * with_text.sum()


def _feature_blocks(texts: list[str], emb: np.ndarray, fit_rows: np.ndarray, kind: str, min_df: int = 1):
    """Caption feature matrix of every row (tf-idf vocabulary learnt on ``fit_rows`` only)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    dense = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    if kind == "minilm":
        return dense
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    try:
        vec.fit([texts[i] for i in fit_rows])
    except ValueError:  # no term is shared by min_df captions: keep every term
        vec.set_params(min_df=1).fit([texts[i] for i in fit_rows])
    tfidf = vec.transform(texts)
    return tfidf if kind == "tfidf" else sparse.hstack([sparse.csr_matrix(dense), tfidf]).tocsr()


def _model(multilabel: bool, c: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    lr = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    return OneVsRestClassifier(lr) if multilabel else lr


def _fit_predict(
    x, y: np.ndarray, train_rows: np.ndarray, pred_rows: np.ndarray, n_classes: int, multilabel: bool, c: float, seed: int
):
    """(len(pred_rows), n_classes) probabilities of a classifier fitted on ``train_rows``."""
    out = np.zeros((len(pred_rows), n_classes), dtype=np.float64)
    if multilabel:
        cols = np.flatnonzero((y[train_rows].sum(0) > 0) & (y[train_rows].sum(0) < len(train_rows)))
        if len(cols):
            out[:, cols] = _model(True, c, seed).fit(x[train_rows], y[train_rows][:, cols]).predict_proba(x[pred_rows])
        return out
    classes = np.unique(y[train_rows])
    if len(classes) == 1:
        out[:, classes[0]] = 1.0
        return out
    with warnings.catch_warnings():  # few labelled rows per label is the case this module is for
        warnings.filterwarnings("ignore", message="The number of unique classes")
        out[:, classes] = _model(False, c, seed).fit(x[train_rows], y[train_rows]).predict_proba(x[pred_rows])
    return out


def _folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold id of each labelled row: each label's rows dealt round-robin in a random order."""
    rng = np.random.default_rng(seed)
    key = y.argmax(1) if y.ndim == 2 else y
    fold = np.zeros(len(y), dtype=np.int64)
    start = 0
    for c in np.unique(key):
        idx = rng.permutation(np.flatnonzero(key == c))
        fold[idx] = (start + np.arange(len(idx))) % n_folds
        start += len(idx)
    return fold


def _oof(x, y: np.ndarray, rows: np.ndarray, n_classes: int, multilabel: bool, cfg: CaptionLabelConfig, seed: int) -> np.ndarray:
    """Out-of-fold probabilities of the labelled ``rows``."""
    n_folds = max(2, min(cfg.n_folds, len(rows) // 2))
    fold = _folds(y[rows], n_folds, seed)
    oof = np.zeros((len(rows), n_classes))
    for f in range(n_folds):
        held = fold == f
        if held.any() and (~held).any():
            oof[held] = _fit_predict(x, y, rows[~held], rows[held], n_classes, multilabel, cfg.c, seed)
    return oof


def _score(y: np.ndarray, proba: np.ndarray, multilabel: bool) -> float:
    if multilabel:
        pred = proba >= 0.5
        tp = (pred & (y > 0)).sum()
        return float(2 * tp / max(1, pred.sum() + (y > 0).sum()))
    return float((proba.argmax(1) == y).mean())


def _threshold(confidence: np.ndarray, correct: np.ndarray) -> float:
    """The lowest confidence above which the out-of-fold caption labels are more often right than
    wrong, counted cumulatively from the most confident (keeps the most correct-minus-wrong)."""
    if len(confidence) == 0:
        return 1.0
    order = np.argsort(-confidence)
    gain = np.cumsum(np.where(correct[order], 1, -1))
    best = int(np.argmax(gain))
    if gain[best] <= 0:
        return float(confidence[order[0]]) + 1e-9  # nothing earns its place: keep none
    return float(confidence[order[best]])


def caption_labels(
    texts: list[str],
    emb: np.ndarray,
    y_all: np.ndarray,
    labelled: np.ndarray,
    train: np.ndarray,
    multilabel: bool,
    config: CaptionLabelConfig | None = None,
    seed: int = 0,
) -> CaptionLabels:
    """Caption labels for the unlabelled training rows with text.

    Args:
        texts: every row's caption + tags (:func:`caption_texts`).
        emb: every row's caption embedding (MiniLM), (N, D).
        y_all: every row's human target (class index, -1 for none; or a 0/1 matrix).
        labelled: rows whose human label the classifiers may use (training rows only).
        train: training rows (caption labels never go to other rows).
        multilabel: per-label sigmoid instead of a softmax over labels.
        config: caption classifier settings.
        seed: seed of the folds and the solver.

    Returns:
        Human + caption targets and the caption rows (none if the labelled rows are too few).
    """
    cfg = config or CaptionLabelConfig()
    n_classes = y_all.shape[1] if multilabel else int(y_all.max()) + 1
    has_text = np.array([bool(t) for t in texts])
    has_y = (y_all.sum(1) > 0) if multilabel else (y_all >= 0)
    rows = np.flatnonzero(labelled & has_y & has_text)
    todo = np.flatnonzero(train & ~labelled & has_text)
    targets = y_all.copy()
    targets[train & ~labelled] = 0 if multilabel else -1
    predicted = np.zeros((len(texts), n_classes), dtype=np.float32)
    none = CaptionLabels(targets, np.zeros(len(texts), bool), np.zeros(len(texts)), predicted, 1.0, "", float("nan"))
    if len(todo) == 0 or len(rows) < 4 or n_classes < 2:
        return none
    kinds = CAPTION_FEATURES if cfg.features == "auto" else (cfg.features,)
    if cfg.features not in (*CAPTION_FEATURES, "auto"):
        raise ValueError(f"caption features must be 'auto' or one of {CAPTION_FEATURES}, got {cfg.features!r}")
    fit_rows = np.flatnonzero(train & has_text)
    best = None
    for kind in kinds:
        x = _feature_blocks(texts, emb, fit_rows, kind, cfg.min_df)
        oof = _oof(x, y_all, rows, n_classes, multilabel, cfg, seed)
        score = _score(y_all[rows], oof, multilabel)
        if best is None or score > best[0] + 1e-9:
            best = (score, kind, x, oof)
    score, kind, x, oof = best
    proba = _fit_predict(x, y_all, rows, todo, n_classes, multilabel, cfg.c, seed)
    confidence = np.zeros(len(texts))
    caption = np.zeros(len(texts), dtype=bool)
    if multilabel:  # a row's confidence: its least decided label's sigmoid
        oof_conf = np.maximum(oof, 1 - oof).min(1)
        thr = _threshold(oof_conf, ((oof >= 0.5) == (y_all[rows] > 0)).all(1))
        conf = np.maximum(proba, 1 - proba).min(1)
        keep = conf >= thr
        targets[todo[keep]] = (proba[keep] >= 0.5).astype(targets.dtype)
    else:
        thr = _threshold(oof.max(1), oof.argmax(1) == y_all[rows])
        conf = proba.max(1)
        keep = conf >= thr
        targets[todo[keep]] = proba[keep].argmax(1)
    confidence[todo] = conf
    predicted[todo] = proba
    caption[todo[keep]] = True
    return CaptionLabels(targets, caption, confidence, predicted, thr, kind, score)


def caption_targets(
    captions: CaptionLabels | None, fit_idx: np.ndarray, models: tuple[str, ...]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per caption model, ``(targets of every row, rows to train on)``: the human-labelled rows plus
    the caption-labelled ones (for :func:`core.training.train_classifiers`); empty without captions."""
    if captions is None:
        return {}
    rows = np.union1d(fit_idx, np.flatnonzero(captions.caption))
    return {m: (captions.targets, rows) for m in models}


def caption_label_column(captions: CaptionLabels | None, names: list[str], n: int) -> list[list[str] | None]:
    """Per row, the caption label the caption models trained on (None: none, or a human label)."""
    if captions is None:
        return [None] * n
    t = captions.targets
    return [
        (list(np.asarray(names)[t[i] > 0]) if t.ndim == 2 else [names[int(t[i])]]) if captions.caption[i] else None
        for i in range(len(t))
    ]
