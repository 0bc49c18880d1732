"""Phrase sources, by name: what turns an image into ranked phrases, at fit time and at prediction time.

========================  ==========================================================================
``corpus``                a generator trained on the dataset's own text (cross-fitted for training rows)
``imagenet``              the backbone's ImageNet-1k head (collections without text; no co-embedding)
``corpus+imagenet``       both, ``k/2`` phrases from each, one text vector per source
a folder                  a generator saved by :func:`core.corpus.fit_corpus_generator`
========================  ==========================================================================

Each source has ``fit`` (used by :func:`core.pipeline.fit`) and ``apply`` (used by
:class:`core.workspace.Workspace` on new images), so both paths share one dispatch:
``phrase_source(config.phrase_source)`` (open_clip's style of naming a model by string or path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import PHRASE_SOURCES, FitConfig
from core.data.manifest import DatasetIssue
from core.forward import generator_input_name
from core.phrases.combined import COMBINED, ChainedPhrases, combine_outputs
from core.phrases.imagenet import imagenet_phrases, imagenet_top_phrases
from core.phrases.occurrences import PhraseOccurrences, has_phrases
from core.progress import ProgressFn


@dataclass
class PhraseFitInputs:
    """What a source may read at fit time.

    Attributes:
        features: (N, D) the classifier backbone's features.
        generator_input: (N, D') what a phrase generator reads (:func:`core.forward.generator_input`).
        phrase_lists: each row's phrases from its text and tags (Arrow columns past
            ``GeneratorConfig.on_disk_above`` phrases: :func:`core.phrases.occurrences.extract_fit_phrases`).
        train: (N,) bool, rows whose text may train a generator (never test rows).
        items: the rows (``row``, ``item``, ``split`` columns are read).
        digests: SHA-1 of each image file (to detect captions a saved generator has seen).
        k: phrases kept per image.
    """

    features: np.ndarray
    generator_input: np.ndarray
    phrase_lists: list[list[str]] | PhraseOccurrences
    train: np.ndarray
    items: pd.DataFrame
    digests: list[bytes | None]
    k: int


@dataclass
class PhraseFit:
    """A source's per-image outputs at fit time.

    Attributes:
        phrases: the phrase texts that ``ids`` index.
        ids: (N, k) phrase ids, best first (-1 = none).
        scores: (N, k) their scores.
        generator: the phrase generator to store (``None`` for ``imagenet``).
        coembedding: (N, d) co-embedding by the full generator: one space for every row (maps,
            neighbours, zero-shot); ``None`` without a generator.
        coembedding_crossfit: (N, d) co-embedding by the generator that produced each row's
            phrases (what a classifier may train on without leakage).
        fold: (N,) cross-fitting fold that produced the row, -1 = full generator.
        issues: rows to report (a saved generator that saw a test image's caption).
    """

    phrases: Sequence[str]
    ids: np.ndarray
    scores: np.ndarray
    generator: object | None = None
    coembedding: np.ndarray | None = None
    coembedding_crossfit: np.ndarray | None = None
    fold: np.ndarray | None = None
    issues: list[DatasetIssue] = field(default_factory=list)


class PhraseSource:
    """One way of producing phrases. Subclasses implement :meth:`fit` and :meth:`apply`.

    Attributes:
        name: the ``FitConfig.phrase_source`` value.
        has_generator: stores a phrase generator (and so a co-embedding for maps and zero-shot).
        uses_imagenet_head: needs a backbone with an ImageNet-1k head.
        combined: the text vector is one block per source (:func:`core.phrases.combined.image_text_vectors`).
    """

    name = ""
    has_generator = True
    uses_imagenet_head = False
    combined = False

    @property
    def stores_phrases(self) -> bool:
        """Whether the manifest must list the phrases (they are not all in the generator's vocabulary)."""
        return not self.has_generator or self.uses_imagenet_head

    def manifest_phrases(self, phrases: Sequence[str]) -> dict[str, list[str] | None]:
        """The manifest's entries for the fit's phrase texts: ``phrases``, listed where
        :attr:`stores_phrases` (the generator's vocabulary is in its own file)."""
        return {"phrases": list(phrases) if self.stores_phrases else None}

    def check(self, cfg: FitConfig, has_imagenet_head: bool) -> None:
        """Raise ``ValueError`` if ``cfg`` cannot use this source."""
        if self.uses_imagenet_head and not has_imagenet_head:
            raise ValueError(f"backbone {cfg.backbone!r} has no ImageNet-1k head for phrase_source={self.name!r}")

    def fit(self, x: PhraseFitInputs, cfg: FitConfig, backbone, progress: ProgressFn) -> PhraseFit:
        raise NotImplementedError

    def apply(
        self, generator, backbone, features: np.ndarray, generator_in: np.ndarray, k: int
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """``(co-embedding or None, ids, scores)`` of new images, as the fit computed them for test rows."""
        from core.phrases.crossfit import apply_generator

        return apply_generator(generator, generator_in, k)


class CorpusSource(PhraseSource):
    """A generator fitted on the dataset's training text, cross-fitted (:mod:`core.phrases.crossfit`)."""

    name = "corpus"

    def fit(self, x: PhraseFitInputs, cfg: FitConfig, backbone, progress: ProgressFn) -> PhraseFit:
        from core.phrases.crossfit import crossfit_phrases
        from core.phrases.stage_cache import cached_stage, stage_key

        corpus = x.train & has_phrases(x.phrase_lists)
        name = generator_input_name(cfg.backbone, cfg.generator_backbone)
        key = stage_key(x.generator_input, x.phrase_lists, corpus, cfg.generator, n_folds=cfg.n_folds, k=x.k, backbone=name)
        generator, outs = cached_stage(  # a resumed (or repeated) fit reuses a finished phrase-generator stage
            cfg.cache_root(),
            key,
            lambda: crossfit_phrases(
                x.generator_input,
                x.phrase_lists,
                corpus,
                cfg.generator,
                n_folds=cfg.n_folds,
                k=x.k,
                backbone=name,
                progress=progress,
            ),
        )
        return PhraseFit(
            generator.vocab.phrases,  # read where indexed (a loaded vocabulary is memory-mapped)
            outs.ids,
            outs.scores,
            generator,
            outs.coembedding,
            outs.coembedding_crossfit,
            outs.fold,
        )


class ImagenetSource(PhraseSource):
    """The backbone's ImageNet-1k classes and their WordNet hypernyms (:mod:`core.phrases.imagenet`)."""

    name = "imagenet"
    has_generator = False
    uses_imagenet_head = True

    def check(self, cfg: FitConfig, has_imagenet_head: bool) -> None:
        if cfg.generator_backbone:
            raise ValueError("generator_backbone applies to the corpus phrase generator, not to phrase_source='imagenet'")
        super().check(cfg, has_imagenet_head)

    def fit(self, x: PhraseFitInputs, cfg: FitConfig, backbone, progress: ProgressFn) -> PhraseFit:
        ids, scores = imagenet_top_phrases(backbone.imagenet_logits(x.features), x.k)
        return PhraseFit(list(imagenet_phrases()), ids, scores)

    def apply(self, generator, backbone, features, generator_in, k):
        return (None, *imagenet_top_phrases(backbone.imagenet_logits(features), k))


class CombinedSource(CorpusSource):
    """``corpus`` and ``imagenet`` side by side: the first ``k/2`` phrase columns from each."""

    name = COMBINED
    uses_imagenet_head = True
    combined = True

    def fit(self, x: PhraseFitInputs, cfg: FitConfig, backbone, progress: ProgressFn) -> PhraseFit:
        out = super().fit(x, cfg, backbone, progress)
        half = x.k // 2
        inet = imagenet_top_phrases(backbone.imagenet_logits(x.features), half)
        out.ids, out.scores = combine_outputs((out.ids, out.scores), inet, len(out.phrases), half)
        out.phrases = ChainedPhrases(out.phrases, imagenet_phrases())  # the vocabulary not copied
        return out

    def manifest_phrases(self, phrases: Sequence[str]) -> dict[str, list[str] | None]:
        """Only the ImageNet phrases (``extra_phrases``): the vocabulary's are in the generator's file."""
        return {"phrases": None, "extra_phrases": list(phrases.extra)}

    def apply(self, generator, backbone, features, generator_in, k):
        emb, ids, scores = super().apply(generator, backbone, features, generator_in, k)
        half = k // 2
        inet = imagenet_top_phrases(backbone.imagenet_logits(features), half)
        ids, scores = combine_outputs((ids, scores), inet, len(generator.vocab), half)
        return emb, ids, scores


class SavedGeneratorSource(PhraseSource):
    """A generator fitted elsewhere (``python -m core phrases fit``), read from its folder.

    Its captions may include this dataset's: images whose caption it has seen are reported
    (test images: optimistic metrics; training images: no cross-fitting possible).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.name = str(folder)

    def fit(self, x: PhraseFitInputs, cfg: FitConfig, backbone, progress: ProgressFn) -> PhraseFit:
        from core.corpus import corpus_digests
        from core.phrases.generator import PhraseGenerator

        gen = PhraseGenerator.load(self.folder)
        expected = generator_input_name(cfg.backbone, cfg.generator_backbone)
        if gen.backbone and gen.backbone != expected:
            raise ValueError(f"the saved generator reads {gen.backbone!r} features, this fit uses {expected!r}")
        seen = corpus_digests(self.folder)
        leaks = []
        if seen:
            items = x.items
            for row, digest, item, split in zip(items["row"], x.digests, items["item"], items["split"]):
                if digest in seen:
                    what = "test image whose caption trained the phrase generator: its test metrics are optimistic"
                    if split != "test":
                        what = "training image whose caption trained the phrase generator (no cross-fitting possible)"
                    leaks.append(DatasetIssue("phrase generator", int(row), what, str(item)))
        emb, ids, scores = self.apply(gen, backbone, x.features, x.generator_input, x.k)
        fold = np.full(len(ids), -1, dtype=np.int64)
        return PhraseFit(gen.vocab.phrases, ids, scores, gen, emb, emb, fold, leaks)


SOURCES: dict[str, PhraseSource] = {s.name: s for s in (CorpusSource(), ImagenetSource(), CombinedSource())}


def phrase_source(name: str) -> PhraseSource:
    """The source named by ``FitConfig.phrase_source``: a registered name, or a saved generator folder.

    Raises:
        ValueError: neither.
    """
    if name in SOURCES:
        return SOURCES[name]
    if (Path(name).expanduser() / "generator.json").is_file():
        return SavedGeneratorSource(Path(name).expanduser())
    raise ValueError(f"phrase_source {name!r} is neither one of {PHRASE_SOURCES} nor a saved generator folder")


def stored_source(name: str) -> PhraseSource:
    """The source of a fitted workspace (its saved generator is the workspace's own ``generator/`` copy)."""
    return SOURCES.get(name) or SavedGeneratorSource(name)
