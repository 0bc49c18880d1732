"""Configuration of a fit and the names of its models (no heavy imports: the CLI reads its defaults here).

* :class:`FitConfig` -- everything that determines a fit, stored in ``manifest.json``.
* :class:`GeneratorConfig` -- the phrase generator's hyper-parameters.
* :class:`ClassifierConfig` -- the classifier's hyper-parameters (:mod:`core.classifiers` trains it;
  defined here so that reading a workspace's config, e.g. ``python -m core evaluate``, imports no torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from core.captions import CaptionLabelConfig

MODELS = ("baseline", "multimodal", "text_only", "zeroshot")  # every model of a fit, in display order
CLASSIFIER_MODELS = ("baseline", "multimodal", "text_only")  # the trained heads among them
CAPTION_MODELS = ("baseline_captions", "multimodal_captions")  # trained on human + caption labels (core.captions)
ALL_MODELS = (*MODELS, *CAPTION_MODELS)
# each caption model's paper twin (same input and architecture, trained on the human labels only):
# with ClassifierConfig.warm_start the caption model fine-tunes it; with ClassifierConfig.reuse_fusion
# it reuses its fusion weight (both off by default; docs/results.md "Fit time with caption labels")
CAPTION_TWINS = {"baseline_captions": "baseline", "multimodal_captions": "multimodal"}
PHRASE_SOURCES = ("corpus", "imagenet", "corpus+imagenet")  # or the folder of a saved generator


@dataclass
class GeneratorConfig:
    """Hyper-parameters of the phrase generator (:mod:`core.phrases.generator`)."""

    bottleneck_dim: int = 64
    hidden_dim: int = 512
    scale: float = 16.0
    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    min_images_softmax: int = 2
    max_df: float = 0.2
    sampled_threshold: int = 50_000
    n_negatives: int = 8192
    output_space: str = "large"
    index_factory: str | None = None
    #: above this many prototypes an IVF index is built shard by shard with its inverted lists on
    #: disk, from the fit on, saved that way and loaded memory-mapped (:mod:`core.phrases.index`);
    #: above this many phrases the fit also writes the prototypes shard by shard into a file it maps
    #: (:mod:`core.phrases.generator`); above this many phrase occurrences the fit reads the phrases
    #: as Arrow columns, counting the vocabulary and building the incidence there
    #: (:mod:`core.phrases.occurrences`). By default every automatic IVF index: a generator of 1M
    #: prototypes loads and answers its first search in about 1 s, against 52 s to rebuild the index
    #: in memory at each load (0.13 GiB per million prototypes), and searches in 0.26 ms per image
    #: against 0.18 (``docs/results.md`` B8). ``None``: everything in memory, the index built at
    #: every load. (100,000 is ``core.vector_index.EXACT_MAX``, tested.)
    on_disk_above: int | None = 100_000
    seed: int = 0


@dataclass
class ClassifierConfig:
    """Hyper-parameters of the two-layer classifier.

    ``max_epochs`` and ``patience`` count validation checks: one per epoch, or one every
    ``check_rows`` training rows when an epoch is longer (a check then covers a part of an epoch).
    ``modality_dropout``: share of the training rows of a multi-modal input whose non-visual
    blocks are hidden (zeros) at each step, so the net cannot lean on the text alone: with 0.3
    instead of none, ``multimodal`` − ``baseline`` on a PCA-weakened 32-64-d visual vector moved
    from −2.7 / −2.9 to −0.9 / −1.6 points on ifct-food and with all labels from +0.2 to +0.5 on
    average over the four sets (docs/results.md, "Modality dropout").
    ``crossfit_folds``: folds of the cross-fitted training-row probabilities a fit and a retrain
    store for the paper's models (:func:`core.training.train_classifiers`; below 2: none).
    ``fused``: torch's fused AdamW (one kernel per step, about 5x cheaper steps on CPU) instead
    of the ``foreach`` one; not bit-identical to it, so the paper's models keep ``foreach``.
    ``caption_patience``, ``caption_fused``: the patience and optimiser of the models trained on
    other targets than the human labels (:meth:`for_captions`; the caption models: ~8x the
    rows, whose best check comes early; 25 checks of patience were most of their training).
    ``warm_start``: the caption models start from their paper twin's weights, fusion weight and
    standardisation and fine-tune (:meth:`core.classifiers.Classifier.fit_from`), stopping after ``warm_patience``
    checks without a better validation loss, after ``warm_max_epochs`` checks at most. Off by
    default: on the demo it cost ``multimodal_captions`` about 2 points (docs/results.md).
    """

    hidden_dim: int = 512
    dropout: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 300
    patience: int = 25
    val_fraction: float = 0.15
    seed: int = 0
    fusion: str = "cv"
    visual_shares: tuple[float, ...] = (0.5, 0.7, 0.9)
    modality_dropout: float = 0.3
    check_rows: int = 256
    crossfit_folds: int = 5
    reuse_fusion: bool = False
    fused: bool = False
    caption_patience: int = 8
    caption_fused: bool = True
    warm_start: bool = False
    warm_patience: int = 3
    warm_max_epochs: int = 60

    def for_captions(self) -> ClassifierConfig:
        """The config of a caption model: ``caption_patience`` and ``caption_fused``."""
        return replace(self, patience=self.caption_patience, fused=self.caption_fused)


@dataclass
class FitConfig:
    """Everything that determines a fit (stored in the workspace's ``manifest.json``).

    Attributes:
        backbone: visual backbone name (:func:`core.backbones.list_backbones`).
        backbone_weights: optional local checkpoint for the backbone.
        generator_backbone: a second backbone whose features the phrase generator sees in
            addition to the classifier's (the paper's generator is a different, stronger network).
        text_model: sentence-transformers name or local path.
        phrase_source: ``corpus`` (a generator trained on the dataset's text, cross-fitted),
            ``imagenet`` (the backbone's ImageNet-1k head; for collections without text),
            ``corpus+imagenet`` (both, one text vector per source, concatenated), or the
            folder of a generator saved by :func:`core.corpus.fit_corpus_generator`
            (see :mod:`core.phrases.sources`).
        top_k: phrases averaged into the text vector (the paper: 3).
        weighting: ``mean`` (the paper) or ``score``.
        n_folds: cross-fitting folds for the training rows' phrases.
        label_fraction: keep labels for this share of each label's training rows (the others
            keep their text only); 1.0 keeps all. For label-scarcity studies.
        seed: seed of every random choice (label draws, generator, classifiers, maps).
        device: ``auto``, ``cpu`` or ``cuda``.
        runtime: what runs the backbone: ``auto`` (the fastest installed; :mod:`core.runtimes`),
            ``torch``, ``openvino`` or ``onnxruntime``.
        engine: ``local`` (this process) or ``ray`` (image features on a Ray cluster; :mod:`core.engines`).
        ray_address: the Ray cluster to join (``None``: start a local Ray).
        batch_size: backbone batch size.
        projections: compute the 2-D UMAP maps.
        sample_above: above this many phrases the zero-shot mapper (:func:`core.zeroshot.fit_mapper`)
            is fitted on a seeded uniform sample of this many phrases, and above this many distinct
            prototypes the 2-D map lays out a seeded uniform sample of this many (the app says so);
            the prototypes, memory-mapped past ``generator.on_disk_above``, are read by index. Above
            this many phrases the text stage also embeds only the phrases the images' top-k use (any
            other when a prediction first reads it: :class:`core.text.PhraseVectors`). ``None``:
            every phrase and prototype, whatever their number. Below it the fit is unchanged.
        cache_dir: feature cache (default ``$PIXCTX_CACHE_DIR`` or ``~/.cache/pixctx``).
        caption_labels: ``on``: also train the caption models (:mod:`core.captions`) on human
            labels + labels read from the unlabelled training images' captions; ``off``: don't;
            ``auto``: on when at least ``captions.auto_share`` of the training rows with text
            are unlabelled.
        captions: caption classifier settings.
        generator: phrase generator hyper-parameters.
        classifier: classifier hyper-parameters.
    """

    backbone: str = "efficientnet-lite0"
    backbone_weights: str | None = None
    generator_backbone: str | None = None
    text_model: str = "all-MiniLM-L6-v2"
    phrase_source: str = "corpus"
    top_k: int = 3
    weighting: str = "mean"
    n_folds: int = 5
    label_fraction: float = 1.0
    seed: int = 0
    device: str = "auto"
    runtime: str = "auto"
    engine: str = "local"
    ray_address: str | None = None
    batch_size: int = 32
    projections: bool = True
    sample_above: int | None = 200_000
    cache_dir: str | None = None
    caption_labels: str = "auto"
    captions: CaptionLabelConfig = field(default_factory=CaptionLabelConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    @classmethod
    def from_dict(cls, d: dict) -> FitConfig:
        """The config stored in a manifest.

        Raises:
            ValueError: an unknown or ill-typed key (names the key).
        """
        d = dict(d)
        try:
            gen = GeneratorConfig(**d.pop("generator", {}))
            clf = ClassifierConfig(**d.pop("classifier", {}))
            caps = CaptionLabelConfig(**d.pop("captions", {}))
            return cls(**d, generator=gen, classifier=clf, captions=caps)
        except TypeError as exc:
            known = sorted(f.name for f in fields(cls))
            raise ValueError(f"invalid fit configuration ({exc}); known keys: {', '.join(known)}") from None

    def cache_root(self) -> Path:
        """Where features and text embeddings are cached: ``cache_dir``, or :func:`default_cache_dir`."""
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

    def seeded(self) -> FitConfig:
        """The config with its seed copied into the generator's and the classifiers' (one seed drives everything)."""
        return replace(
            self, generator=replace(self.generator, seed=self.seed), classifier=replace(self.classifier, seed=self.seed)
        )


def default_cache_dir() -> Path:
    """The feature cache: ``$PIXCTX_CACHE_DIR`` or ``~/.cache/pixctx``."""
    return Path(os.environ.get("PIXCTX_CACHE_DIR", Path.home() / ".cache" / "pixctx")).expanduser()


def default(name: str) -> object:
    """Default value of a scalar :class:`FitConfig` field (what the CLI shows)."""
    return next(f.default for f in fields(FitConfig) if f.name == name)
