"""Fast views over a fitted workspace: gallery filters, phrase search, neighbours, one image's detail.

An :class:`Explorer` precomputes, once per workspace, every per-image quantity the gallery
filters on (each model's top label and confidence, correctness, which model fixed or broke
what), so a filter over 100,000 images is a handful of vectorised numpy operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain

import numpy as np
import pandas as pd

from core.captions import caption_texts
from core.config import ALL_MODELS
from core.phrases.substring import PhraseFilter
from core.progress import ProgressFn, silent
from core.vector_index import NeighbourSearch, visual_index
from core.vectors import l2n
from core.workspace import Prediction, Workspace

CHANGES = ("any", "fixed", "broke", "both right", "both wrong")


@dataclass
class GalleryFilter:
    """What the gallery shows. Empty lists and ``None`` mean "no constraint".

    Attributes:
        true_labels: images with any of these true labels.
        split: ``train``, ``test`` or ``None`` for both.
        model: the model whose prediction, correctness and confidence the next fields test.
        predicted: images whose top label under ``model`` is one of these.
        correct: ``True`` (top label is a true label), ``False``, or ``None``.
        change: multimodal against baseline: ``fixed`` (baseline wrong, multimodal right),
            ``broke`` (the reverse), ``both right``, ``both wrong``, or ``any``.
        confidence: inclusive range of ``model``'s top probability.
        phrase: images whose generated phrases contain this text.
    """

    true_labels: list[str] = field(default_factory=list)
    split: str | None = None
    model: str = "multimodal"
    predicted: list[str] = field(default_factory=list)
    correct: bool | None = None
    change: str = "any"
    confidence: tuple[float, float] = (0.0, 1.0)
    phrase: str = ""


class Explorer:
    """Precomputed per-image predictions of one workspace, and the queries the app runs on them."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self._index: NeighbourSearch | None = None
        self.labels = workspace.labels
        self._label_index = {name: j for j, name in enumerate(self.labels)}
        items = workspace.items
        self.n = len(items)
        self.truth = _truth(items["labels"], self.labels)
        self.has_truth = self.truth.any(1)
        self.split = items["split"].to_numpy()
        from core.predictions import attached_predictions

        fitted = workspace.predictions
        preds = {**{m: fitted[m] for m in ALL_MODELS if m in fitted}, **attached_predictions(workspace)}
        #: the product's models (the caption models where fitted), then the predictions the user attached (``core.predictions``)
        self.models = tuple(preds)
        self.top = {m: p.argmax(1) for m, p in preds.items()}
        self.confidence = {m: p.max(1) for m, p in preds.items()}
        self.correct = {m: self.truth[np.arange(self.n), self.top[m]] for m in preds}

    # --- gallery ------------------------------------------------------------------------
    def filter(self, f: GalleryFilter) -> np.ndarray:
        """Row indices matching ``f``, in dataset order."""
        if f.model not in self.models:
            raise ValueError(f"unknown model {f.model!r}; one of {self.models}")
        if f.change not in CHANGES:
            raise ValueError(f"unknown change {f.change!r}; one of {CHANGES}")
        keep = np.ones(self.n, dtype=bool)
        if f.true_labels:
            keep &= self.truth[:, self._ids(f.true_labels)].any(1)
        if f.split:
            keep &= self.split == f.split
        if f.predicted:
            keep &= np.isin(self.top[f.model], self._ids(f.predicted))
        if f.correct is not None:
            keep &= self.has_truth & (self.correct[f.model] == f.correct)
        if f.change != "any":
            b, m = self.correct["baseline"], self.correct["multimodal"]
            want = {"fixed": ~b & m, "broke": b & ~m, "both right": b & m, "both wrong": ~b & ~m}[f.change]
            keep &= self.has_truth & want
        lo, hi = f.confidence
        if lo > 0.0 or hi < 1.0:
            c = self.confidence[f.model]
            keep &= (c >= lo) & (c <= hi)
        if f.phrase.strip():
            keep &= self.phrase_match(f.phrase)
        return np.flatnonzero(keep)

    def _ids(self, names: list[str]) -> np.ndarray:
        unknown = [n for n in names if n not in self._label_index]
        if unknown:
            raise ValueError(f"unknown label(s): {', '.join(unknown)}")
        return np.array([self._label_index[n] for n in names], dtype=np.int64)

    @cached_property
    def _phrase_filter(self) -> PhraseFilter:
        return PhraseFilter(self.ws.phrases)

    def matching_phrase_ids(self, query: str) -> np.ndarray:
        """Vocabulary ids of the phrases containing ``query`` once both are normalised (case and
        punctuation ignored), searched in the vocabulary's Arrow column (:mod:`core.phrases.substring`)."""
        return self._phrase_filter.containing(query)

    def phrase_match(self, query: str, k: int = 10) -> np.ndarray:
        """Mask of images with a phrase containing ``query`` among their top ``k`` generated phrases."""
        ids = self.ws.phrase_ids[:, :k]
        return np.isin(ids, self.matching_phrase_ids(query)).any(1)

    @cached_property
    def label_counts(self) -> pd.Series:
        """Images per label (every label a row has, taxonomy or not), most frequent first."""
        return pd.Series(list(chain.from_iterable(self.ws.items["labels"]))).value_counts()

    @cached_property
    def captioned_training_rows(self) -> tuple[int, int]:
        """``(unlabelled, all)``: training images with a caption (text or tags) and no training label,
        and all training images with a caption: what ``fit --caption-labels auto`` decides on."""
        items = self.ws.items
        texts = caption_texts(list(items["text"]), list(items["tags"]))  # what the fit reads a caption label from
        captioned = np.array([bool(t) for t in texts], dtype=bool) & (self.split != "test")
        return int((captioned & ~items["labelled"].to_numpy(dtype=bool)).sum()), int(captioned.sum())

    # --- one image ------------------------------------------------------------------------
    def true_labels(self, row: int) -> list[str]:
        return list(self.ws.items.at[row, "labels"])

    def caption_label(self, row: int) -> tuple[list[str], float | None] | None:
        """The label the caption classifier read from this unlabelled training image's caption (what the
        caption models trained on for it) and its confidence in it (``None`` in workspaces fitted
        before it was stored), or ``None``: no caption label (labelled, test, no caption, or a fit
        without caption labels)."""
        items = self.ws.items
        value = items.at[row, "caption_label"] if "caption_label" in items.columns else None
        if value is None:
            return None
        confidence = items.at[row, "caption_confidence"] if "caption_confidence" in items.columns else np.nan
        return list(value), None if np.isnan(confidence) else float(confidence)

    def prediction(self, row: int) -> Prediction:
        """Phrases and every model's full label ranking for a workspace image."""
        return self.ws.item_prediction(row, top=len(self.labels))

    def neighbours(self, query: int | np.ndarray, k: int = 8, *, progress: ProgressFn = silent) -> list[tuple[int, float]]:
        """The ``k`` images most similar (visual cosine) to a workspace row or a feature vector;
        the row itself is left out (exact up to 100k images, :func:`core.vector_index.neighbour_index` above).
        ``progress`` reports building the index when the fit did not save it (a workspace fitted
        before fits did)."""
        own = isinstance(query, (int, np.integer))
        vec = l2n(np.atleast_2d(self.ws.visual[query] if own else query))[0]
        return self.visual_index(progress).top(vec, k, exclude=int(query) if own else None) if k > 0 else []

    def visual_index(self, progress: ProgressFn = silent) -> NeighbourSearch:
        """The workspace's neighbour index, opened (or built) once per explorer."""
        if self._index is None:
            self._index = visual_index(self.ws.visual, self.ws.path, progress)
        return self._index

    def row_of(self, item: str) -> int | None:
        """Row of an item id (the image path as written in the manifest), or ``None``."""
        return self.ws.row_of(item)


def _truth(labels: pd.Series, names: list[str]) -> np.ndarray:
    """(N, L) whether row ``i`` has label ``names[j]`` (labels outside ``names`` are ignored)."""
    lengths = np.fromiter(map(len, labels), dtype=np.int64, count=len(labels))
    codes = pd.Categorical(list(chain.from_iterable(labels)), categories=names).codes
    rows = np.repeat(np.arange(len(labels)), lengths)
    truth = np.zeros((len(labels), len(names)), dtype=bool)
    truth[rows[codes >= 0], codes[codes >= 0]] = True
    return truth


def probability_table(pred: Prediction, top: int = 5) -> pd.DataFrame:
    """Baseline and multimodal probabilities of the labels either model ranks in its top ``top``
    (long format: ``label``, ``model``, ``probability``), best multimodal label first."""
    base, multi = dict(pred.baseline), dict(pred.multimodal)
    names = list(dict.fromkeys([n for n, _ in pred.multimodal[:top]] + [n for n, _ in pred.baseline[:top]]))
    rows = [{"label": n, "model": "baseline", "probability": base.get(n, 0.0)} for n in names]
    rows += [{"label": n, "model": "multimodal", "probability": multi.get(n, 0.0)} for n in names]
    return pd.DataFrame(rows)
