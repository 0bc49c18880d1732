"""Phrases for training images without caption leakage.

If the generator that labels a training image had been trained on that image's own text,
its phrases would be a noisy copy of the caption -- something test images never get -- and
the classifier would learn to trust them too much. So the corpus rows are split into K folds;
the rows of fold k get their co-embeddings and phrases from a generator trained (and
whose prototypes were computed) without fold k. Rows outside the corpus (test rows, rows
without text) use the generator fitted on the whole corpus, exactly as new images do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.phrases.generator import GeneratorConfig, PhraseGenerator, fit_phrase_generator
from core.phrases.occurrences import PhraseOccurrences, fit_input
from core.phrases.vocab import PhraseVocabulary
from core.progress import ProgressFn, silent


@dataclass
class PhraseOutputs:
    """Per-image outputs of the phrase generator."""

    coembedding_crossfit: np.ndarray  # (N, d) co-embedding by the generator that produced the row's phrases
    coembedding: np.ndarray  # (N, d) co-embedding by the full generator: one space for every row (maps, zero-shot)
    ids: np.ndarray  # (N, k) vocabulary ids, best first, -1 = none
    scores: np.ndarray  # (N, k) cosine scores
    fold: np.ndarray  # (N,) fold that produced the row, -1 = full generator


def apply_generator(gen: PhraseGenerator, features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(co-embedding, ids, scores) of ``features`` under ``gen``."""
    emb = gen.encode(features)
    scores, ids = gen.search(emb, k)
    if ids.shape[1] < k:  # tiny vocabularies
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=0.0)
    return emb, ids, scores


def _rows(phrases: list[list[str]] | PhraseOccurrences, rows: np.ndarray) -> list[list[str]] | PhraseOccurrences:
    """The phrases of ``rows`` (increasing), in that order."""
    return phrases.take(rows) if isinstance(phrases, PhraseOccurrences) else [phrases[i] for i in rows]


def crossfit_phrases(
    features: np.ndarray,
    phrase_lists: list[list[str]] | PhraseOccurrences,
    corpus: np.ndarray,
    config: GeneratorConfig,
    *,
    n_folds: int = 5,
    k: int = 10,
    backbone: str = "",
    progress: ProgressFn = silent,
) -> tuple[PhraseGenerator, PhraseOutputs]:
    """Fit the full generator on the corpus rows and cross-fitted ones for the corpus rows.

    Args:
        features: (N, D) features of every row.
        phrase_lists: phrases of every row (used only where ``corpus`` is true), or their
            :class:`~core.phrases.occurrences.PhraseOccurrences` (the corpus's and each fold's are
            then taken in Arrow; lists past ``config.on_disk_above`` phrases are converted to it).
        corpus: (N,) bool, rows whose text trains the generator (never test rows).
        config: generator hyper-parameters.
        n_folds: folds for cross-fitting (``<= 1`` disables it: training rows then see
            phrases from a generator that saw their own text -- only for ablations).
        k: phrases kept per image.
        backbone: backbone name, stored in the generator.
        progress: progress callback.

    Returns:
        The full generator and the per-row outputs.
    """
    corpus_idx = np.flatnonzero(corpus)
    phrase_lists = fit_input(phrase_lists, config.on_disk_above)
    corpus_lists = _rows(phrase_lists, corpus_idx)
    vocab = PhraseVocabulary.build(corpus_lists, min_images_softmax=config.min_images_softmax, max_df=config.max_df)
    full = fit_phrase_generator(
        features[corpus_idx],
        corpus_lists,
        config,
        vocab=vocab,
        backbone=backbone,
        progress=progress,
        stage="phrase generator (all text)",
    )
    emb, ids, scores = apply_generator(full, features, k)
    shared = emb.copy()
    fold = np.full(len(features), -1, dtype=np.int64)
    if n_folds > 1 and len(corpus_idx) >= 2 * n_folds:
        rng = np.random.default_rng(config.seed)
        assignment = rng.permutation(len(corpus_idx)) % n_folds
        for f in range(n_folds):
            held = corpus_idx[assignment == f]
            kept = corpus_idx[assignment != f]
            gen = fit_phrase_generator(
                features[kept],
                _rows(phrase_lists, kept),
                config,
                vocab=vocab,
                backbone=backbone,
                progress=progress,
                stage=f"phrase generator (fold {f + 1}/{n_folds})",
            )
            e, i_, s = apply_generator(gen, features[held], k)
            emb[held], ids[held], scores[held] = e, i_, s
            fold[held] = f
    return full, PhraseOutputs(emb, shared, ids, scores, fold)
