"""Captions as supervision: label the unlabelled training images from their own captions.

Users' collections have captions (titles, alt text, tags) for nearly every image and labels for
few. A caption classifier (logistic regression on the captions' MiniLM embeddings and/or tf-idf
features, per-label sigmoid for multi-label data) is trained on the *labelled* training rows
only; it then labels every training row that has text but no label. Its features are chosen by
cross-validation on the labelled rows (never on test rows). Every caption label is kept
(``keep="all"``): with the confidence threshold that cross-validation chose instead
(``keep="cv"``, a label kept where the out-of-fold predictions at that confidence were more often
right than wrong), the caption models were about 1 point worse at 10% labels
(``docs/results.md``, "Every caption label kept"). Rows whose caption says nothing (no text, no
tags) get no caption label, test rows never get one, and a human label always wins.

Two things make the caption labels much better than a classifier on the labelled captions alone
(``bench/caption_teachers.py``, ``docs/results.md``):

* **the teacher sees both views of a row** (``visual``): its caption features beside its own
  L2-normalised visual features. It still labels only rows with a caption: a row without one
  would get the visual model's guess, which is what ``baseline`` already is;
* **each label's name is one more labelled caption** (``label_names``): "animals/mammals" read as
  "animals mammals", embedded like a caption (no visual part), always among the training rows of
  the teacher and of its cross-validation. With one or two labelled rows per label, the name is
  often the best evidence there is.

The result feeds the ``baseline_captions`` and ``multimodal_captions`` models (same
architectures as ``baseline`` and ``multimodal``, trained on human + caption labels).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.data.manifest import visible_text
from core.vectors import l2n

CAPTION_MODES = ("auto", "on", "off")
CAPTION_FEATURES = ("minilm", "tfidf", "both")
ROW_SPACE_MAX = 20_000_000  # at most this many dense values (160 MB) per matrix of a row-space fit (_row_space)


@dataclass
class CaptionLabelConfig:
    """How caption labels are made.

    Attributes:
        features: ``auto`` (chosen by cross-validation on the labelled rows) or one of
            :data:`CAPTION_FEATURES`.
        c: inverse regularisation strength of the logistic regression. 100 rather than 10: the
            teacher's inputs are L2-normalised blocks, and with few labelled rows weaker
            regularisation labels more unlabelled rows right on every shared set and the demo
            (``docs/results.md``, "A weaker-regularised teacher").
        n_folds: cross-validation folds on the labelled rows (fewer when a label has fewer rows).
        auto_share: in ``auto`` mode, caption labels are used when at least this share of the
            training rows with text are unlabelled.
        min_df: tf-idf keeps the words and word pairs of at least this many training captions (one
            caption's own terms cannot carry over to another row; they only let the regression
            memorise its labelled rows, and make it several times slower).
        visual: the teacher also sees each row's visual features (when the caller gives them).
        label_names: each label's readable name is one more labelled caption of the teacher
            (when the caller gives the names' embeddings).
        keep: which caption labels are kept: ``all`` (every unlabelled training row with a
            caption) or ``cv`` (those above the confidence threshold chosen on the labelled rows'
            out-of-fold predictions). ``all`` since session 10: at 10% labels over 10 label draws,
            ``multimodal_captions`` +0.9 and ``baseline_captions`` +1.4 points on average over the
            four sets, no set lower (``docs/results.md``, "Every caption label kept").
    """

    features: str = "auto"
    c: float = 100.0
    n_folds: int = 5
    auto_share: float = 0.2
    min_df: int = 2
    visual: bool = True
    label_names: bool = True
    keep: str = "all"


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
        threshold: the confidence a caption label needs (chosen by cross-validation, infinite when
            no out-of-fold confidence earns one; 0 with ``keep="all"``).
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
    """One string per row: the caption followed by its tags; "" when the row has neither, a caption
    or tag with no visible character (zero-width spaces...) counting as none, as when a dataset is
    read (:func:`core.data.manifest.visible_text`). A row has a caption when its string is not ""."""
    return [
        " ".join(p for p in (visible_text(str(s).strip()) for s in [t or "", *(tg or [])]) if p)
        for t, tg in zip(texts, tags, strict=True)
    ]


def wants_caption_labels(mode: str, train: np.ndarray, labelled: np.ndarray, has_text: np.ndarray, share: float) -> bool:
    """Whether a fit uses caption labels: ``on``, ``off``, or ``auto`` (when at least ``share`` of
    the training rows with text are unlabelled)."""
    if mode not in CAPTION_MODES:
        raise ValueError(f"caption_labels must be one of {CAPTION_MODES}, got {mode!r}")
    if mode != "auto":
        return mode == "on"
    with_text = train & has_text
    return bool(with_text.any()) and (with_text & ~labelled).sum() >= share * with_text.sum()


def label_name_texts(names: list[str]) -> list[str]:
    """Each label's name as a caption would say it: "animals/mammals" -> "animals mammals",
    "breads_and_carbs" -> "breads and carbs"."""
    return [" ".join(n.replace("/", " ").replace("_", " ").replace("-", " ").split()) for n in names]


def label_name_rows(names: list[str], embed: Callable[[list[str]], np.ndarray]) -> tuple[list[str], np.ndarray]:
    """The label names as captions (:func:`label_name_texts`) and their caption embeddings
    (``embed``: the encoder the captions were embedded with), for :func:`caption_labels`."""
    texts = label_name_texts(names)
    return texts, np.asarray(embed(texts), dtype=np.float32)


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


def _teacher_features(texts: list[str], emb: np.ndarray, visual: np.ndarray | None, fit_rows: np.ndarray, kind: str, min_df: int):
    """The teacher's features of every row: the caption features (:func:`_feature_blocks`),
    after the L2-normalised visual features when the teacher sees them."""
    from scipy import sparse

    x = _feature_blocks(texts, emb, fit_rows, kind, min_df)
    if visual is None:
        return x
    v = l2n(visual)
    return np.hstack([v, x]) if isinstance(x, np.ndarray) else sparse.hstack([sparse.csr_matrix(v), x]).tocsr()


def _model(multilabel: bool, c: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    lr = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    return OneVsRestClassifier(lr) if multilabel else lr


def _row_space(x, train_rows: np.ndarray, pred_rows: np.ndarray):
    """The training rows in coordinates of their own row space, and the predicted rows projected on it.

    An L2-regularised logistic regression's weights stay in the span of its training rows (its
    solver starts at zero and every gradient lies there), so fitted on these coordinates it is
    the same model as on ``x`` (up to rounding and the solver's stopping test), with one weight
    per training row instead of one per column for each label: several times faster for a
    teacher of a few labelled rows per label on 1,280 visual + 384 caption + tf-idf columns.
    With at least as many training rows as columns, or where the dense training rows or the
    projected rows would hold more than :data:`ROW_SPACE_MAX` values, ``x``'s own rows.
    """
    from scipy import sparse

    n = len(train_rows)
    if n >= x.shape[1] or max(n * x.shape[1], n * len(pred_rows)) > ROW_SPACE_MAX:
        return x[train_rows], x[pred_rows]
    xt = x[train_rows]
    xt = np.asarray(xt.toarray() if sparse.issparse(xt) else xt, dtype=np.float64)
    lam, u = np.linalg.eigh(xt @ xt.T)  # the Gram matrix: much cheaper than an SVD of the wide rows
    keep = lam > max(lam[-1], 0.0) * 1e-10  # directions of ~0 variance carry no weight anyway
    if not keep.any():  # every training row is zeros
        return x[train_rows], x[pred_rows]
    u, root = u[:, keep], np.sqrt(lam[keep])
    return u * root, np.asarray(x[pred_rows] @ xt.T) @ (u / root)


def _fit_predict(
    x, y: np.ndarray, train_rows: np.ndarray, pred_rows: np.ndarray, n_classes: int, multilabel: bool, c: float, seed: int
):
    """(len(pred_rows), n_classes) probabilities of a classifier fitted on ``train_rows`` (single-label:
    in their row space, :func:`_row_space`. Not multi-label: there the per-label binary regressions stop
    their solver at visibly different points in the two coordinate systems, up to 0.05 apart in
    probability on the demo's teacher features, though both tend to the same model)."""
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
    x_fit, x_pred = _row_space(x, train_rows, pred_rows)
    with warnings.catch_warnings():  # few labelled rows per label is the case this module is for
        warnings.filterwarnings("ignore", message="The number of unique classes")
        out[:, classes] = _model(False, c, seed).fit(x_fit, y[train_rows]).predict_proba(x_pred)
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


def _oof(
    x, y: np.ndarray, rows: np.ndarray, anchors: np.ndarray, n_classes: int, multilabel: bool, cfg: CaptionLabelConfig, seed: int
) -> np.ndarray:
    """Out-of-fold probabilities of the labelled ``rows`` (the ``anchors``, the label names' rows,
    are in every fold's training rows)."""
    n_folds = max(2, min(cfg.n_folds, len(rows) // 2))
    fold = _folds(y[rows], n_folds, seed)
    oof = np.zeros((len(rows), n_classes))
    for f in range(n_folds):
        held = fold == f
        if held.any() and (~held).any():
            train_rows = np.concatenate([rows[~held], anchors])
            oof[held] = _fit_predict(x, y, train_rows, rows[held], n_classes, multilabel, cfg.c, seed)
    return oof


def _score(y: np.ndarray, proba: np.ndarray, multilabel: bool) -> float:
    if multilabel:
        pred = proba >= 0.5
        tp = (pred & (y > 0)).sum()
        return float(2 * tp / max(1, pred.sum() + (y > 0).sum()))
    return float((proba.argmax(1) == y).mean())


def _threshold(confidence: np.ndarray, correct: np.ndarray) -> float:
    """The lowest confidence above which the out-of-fold caption labels are more often right than
    wrong, counted cumulatively from the most confident (keeps the most correct-minus-wrong);
    infinite when no confidence is (keep none: an unlabelled row more confident than every
    out-of-fold one is no evidence of a right label)."""
    if len(confidence) == 0:
        return math.inf
    order = np.argsort(-confidence)
    gain = np.cumsum(np.where(correct[order], 1, -1))
    best = int(np.argmax(gain))
    if gain[best] <= 0:
        return math.inf
    return float(confidence[order[best]])


def _with_label_names(
    texts: list[str],
    emb: np.ndarray,
    visual: np.ndarray | None,
    y_all: np.ndarray,
    names: tuple[list[str], np.ndarray],
    multilabel: bool,
):
    """Rows of every training matrix extended by one row per label name: its text, its caption
    embedding, no visual features (zeros) and its own label as target; and the new rows' indices."""
    name_texts, name_emb = names
    n, k = len(texts), len(name_texts)
    y_names = np.eye(k, dtype=y_all.dtype) if multilabel else np.arange(k, dtype=y_all.dtype)
    vis = None if visual is None else np.vstack([visual, np.zeros((k, visual.shape[1]), dtype=visual.dtype)])
    return (
        [*texts, *name_texts],
        np.vstack([emb, name_emb.astype(emb.dtype)]),
        vis,
        np.concatenate([y_all, y_names]),
        np.arange(n, n + k),
    )


def caption_labels(
    texts: list[str],
    emb: np.ndarray,
    y_all: np.ndarray,
    labelled: np.ndarray,
    train: np.ndarray,
    multilabel: bool,
    config: CaptionLabelConfig | None = None,
    seed: int = 0,
    *,
    visual: np.ndarray | None = None,
    label_names: tuple[list[str], np.ndarray] | None = None,
) -> CaptionLabels:
    """Caption labels for the unlabelled training rows with text.

    The teacher is fitted on the labelled training rows (and the label names' rows) only, and
    predicts the unlabelled training rows with a caption only: no test row's caption or visual
    features are read, except to build the tf-idf matrix's rows (its vocabulary comes from the
    training captions).

    Args:
        texts: every row's caption + tags (:func:`caption_texts`).
        emb: every row's caption embedding (MiniLM), (N, D).
        y_all: every row's human target (class index, -1 for none; or a 0/1 matrix).
        labelled: rows whose human label the classifiers may use (training rows only).
        train: training rows (caption labels never go to other rows).
        multilabel: per-label sigmoid instead of a softmax over labels.
        config: caption classifier settings.
        seed: seed of the folds and the solver.
        visual: every row's visual features (N, Dv): the teacher sees them beside the caption
            (``config.visual``).
        label_names: every label's name as a caption and its embedding, in the order of
            ``y_all``'s labels (:func:`label_name_rows`), added to the teacher's labelled rows
            (``config.label_names``).

    Returns:
        Human + caption targets and the caption rows (none if the labelled rows are too few).
    """
    cfg = config or CaptionLabelConfig()
    if cfg.features not in (*CAPTION_FEATURES, "auto"):
        raise ValueError(f"caption features must be 'auto' or one of {CAPTION_FEATURES}, got {cfg.features!r}")
    n = len(texts)
    n_classes = y_all.shape[1] if multilabel else int(y_all.max()) + 1
    label_names = label_names if cfg.label_names else None
    if label_names is not None:
        if len(label_names[0]) < n_classes or (multilabel and len(label_names[0]) != n_classes):
            raise ValueError(f"label_names has {len(label_names[0])} names for {n_classes} labels")
        n_classes = len(label_names[0])
    visual = visual if cfg.visual else None
    has_text = np.array([bool(t) for t in texts])
    has_y = (y_all.sum(1) > 0) if multilabel else (y_all >= 0)
    # a labelled row without a caption still teaches the visual half of a teacher that sees both
    rows = np.flatnonzero(labelled & has_y & (has_text if visual is None else np.ones(n, dtype=bool)))
    todo = np.flatnonzero(train & ~labelled & has_text)
    targets = y_all.copy()
    targets[train & ~labelled] = 0 if multilabel else -1
    predicted = np.zeros((n, n_classes), dtype=np.float32)
    none = CaptionLabels(targets, np.zeros(n, bool), np.zeros(n), predicted, 1.0, "", float("nan"))
    if len(todo) == 0 or len(rows) < 4 or n_classes < 2:
        return none
    all_texts, all_emb, all_visual, y_fit, anchors = texts, emb, visual, y_all, np.zeros(0, dtype=np.int64)
    if label_names is not None:
        all_texts, all_emb, all_visual, y_fit, anchors = _with_label_names(texts, emb, visual, y_all, label_names, multilabel)
    fit_rows = np.flatnonzero(train & has_text)
    best = None
    for kind in CAPTION_FEATURES if cfg.features == "auto" else (cfg.features,):
        x = _teacher_features(all_texts, all_emb, all_visual, fit_rows, kind, cfg.min_df)
        oof = _oof(x, y_fit, rows, anchors, n_classes, multilabel, cfg, seed)
        score = _score(y_all[rows], oof, multilabel)
        if best is None or score > best[0] + 1e-9:
            best = (score, kind, x, oof)
    score, kind, x, oof = best
    proba = _fit_predict(x, y_fit, np.concatenate([rows, anchors]), todo, n_classes, multilabel, cfg.c, seed)
    thr, keep, chosen = _keep(oof, y_all[rows], proba, multilabel, cfg.keep)
    targets[todo[keep]] = chosen.astype(targets.dtype)
    confidence = np.zeros(n)
    caption = np.zeros(n, dtype=bool)
    confidence[todo] = _confidence(proba, multilabel)
    predicted[todo] = proba
    caption[todo[keep]] = True
    return CaptionLabels(targets, caption, confidence, predicted, thr, kind, score)


def _confidence(proba: np.ndarray, multilabel: bool) -> np.ndarray:
    """A row's confidence: its top probability, or (multi-label) its least decided label's sigmoid."""
    return np.maximum(proba, 1 - proba).min(1) if multilabel else proba.max(1)


def _keep(oof: np.ndarray, y: np.ndarray, proba: np.ndarray, multilabel: bool, mode: str) -> tuple[float, np.ndarray, np.ndarray]:
    """The confidence threshold (chosen on the labelled rows' out-of-fold predictions, or 0 when
    ``mode`` is ``all``), which predicted rows reach it, and their labels. A multi-label row whose
    every label's sigmoid is below 0.5 gets none: every labelled row has a label, so "none of
    these" would teach the caption models what no human label says."""
    if mode not in ("cv", "all"):
        raise ValueError(f"caption keep must be 'cv' or 'all', got {mode!r}")
    if multilabel:
        thr = 0.0 if mode == "all" else _threshold(_confidence(oof, True), ((oof >= 0.5) == (y > 0)).all(1))
        keep = (_confidence(proba, True) >= thr) & (proba >= 0.5).any(1)
        return thr, keep, proba[keep] >= 0.5
    if mode == "all":
        return 0.0, np.ones(len(proba), dtype=bool), proba.argmax(1)
    thr = _threshold(oof.max(1), oof.argmax(1) == y)
    keep = proba.max(1) >= thr
    return thr, keep, proba[keep].argmax(1)


NO_CAPTION_LABELS = (
    "the caption classifier gave no unlabelled training image a caption label (none unlabelled, too few labelled, "
    "or none confident enough), and trained on no caption label the caption models would repeat the baseline and "
    "multimodal models"
)


def useful_caption_labels(captions: CaptionLabels | None) -> CaptionLabels | None:
    """``captions`` when they label at least one row, else ``None``: the caption models train only
    then (:data:`NO_CAPTION_LABELS` says why)."""
    return captions if captions is not None and captions.caption.any() else None


def caption_targets(
    captions: CaptionLabels | None, fit_idx: np.ndarray, models: tuple[str, ...]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per caption model, ``(targets of every row, rows to train on)``: the human-labelled rows plus
    the caption-labelled ones (for :func:`core.training.train_classifiers`); empty without captions."""
    if captions is None:
        return {}
    rows = np.union1d(fit_idx, np.flatnonzero(captions.caption))
    return {m: (captions.targets, rows) for m in models}


def caption_label_columns(captions: CaptionLabels | None, names: list[str], n: int) -> dict[str, list]:
    """The workspace's per-row caption columns: ``caption_label``, the caption label the caption
    models trained on (None: none, or a human label), and ``caption_confidence``, the caption
    classifier's confidence in it (NaN where none)."""
    if captions is None:
        return {"caption_label": [None] * n, "caption_confidence": [np.nan] * n}
    t, has = captions.targets, captions.caption
    return {
        "caption_label": [
            (list(np.asarray(names)[t[i] > 0]) if t.ndim == 2 else [names[int(t[i])]]) if has[i] else None for i in range(len(t))
        ],
        "caption_confidence": [float(captions.confidence[i]) if has[i] else np.nan for i in range(len(t))],
    }
