"""Fit a workspace: dataset -> features -> phrases -> text vectors -> classifiers -> evaluation.

:func:`fit` is a short orchestrator over one function per stage; each stage returns a small
typed result that the next ones read. Visual features and phrase embeddings are cached by
content hash (:mod:`core.features`, :func:`core.text.embed_texts`), so an interrupted or
repeated fit only recomputes what is missing. The workspace is written into a staging folder
and swapped in at the end (:mod:`core.workspace_files`).
"""

from __future__ import annotations

import contextlib
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.backbones import Backbone, create_backbone, resolve_device
from core.caption_cache import cached_caption_labels
from core.captions import (
    CaptionLabels,
    caption_label_columns,
    caption_targets,
    caption_texts,
    label_name_rows,
    useful_caption_labels,
    wants_caption_labels,
)
from core.config import CAPTION_MODELS, CAPTION_TWINS, CLASSIFIER_MODELS, FitConfig
from core.data.manifest import Dataset, DatasetIssue, load_dataset
from core.engines import feature_engine
from core.features import FeatureCache, cache_key, embed_images
from core.forward import ImageArrays, generator_input, input_blocks, model_inputs
from core.labels.session import stored_corrections
from core.metrics import evaluate_models
from core.phrases.occurrences import extract_fit_phrases
from core.phrases.sources import PhraseFit, PhraseFitInputs, PhraseSource, phrase_source
from core.phrases.vocab import extract_phrases
from core.progress import ProgressFn, TqdmProgress
from core.text import PhraseVectors, TextEncoder, caption_embeddings, embed_texts, phrase_embedding_arrays, phrase_texts
from core.training import TrainedModels, check_label_fraction, has_target, label_targets, scarce_labels, train_classifiers
from core.vector_index import save_visual_index
from core.vectors import sample_rows
from core.workspace import Workspace
from core.workspace_files import staged_workspace, write_fit
from core.zeroshot import fit_mapper, label_embeddings, scores_to_proba, text_label_embeddings, zero_shot_scores

__all__ = ["FitConfig", "fit"]


@dataclass
class Features:
    """Stage 1: the decodable rows and their visual features."""

    items: pd.DataFrame  # decodable rows, renumbered 0..N-1
    visual: np.ndarray  # (N, D) classifier backbone features
    generator_input: np.ndarray  # what the phrase generator reads
    digests: list[bytes | None]  # SHA-1 of each image file
    issues: list[DatasetIssue]  # dataset issues plus undecodable images


@dataclass
class Targets:
    """Stage 2: which rows train, which are scored, and their targets."""

    names: list[str]  # label names (columns of every probability matrix)
    y: np.ndarray  # targets of every row (:func:`core.training.label_targets`)
    labelled: np.ndarray  # (N,) rows whose labels are kept for training
    test: np.ndarray  # (N,) scored test rows
    fit_idx: np.ndarray  # rows the classifiers train on
    corrected: list[list[str]] | None = None  # every row's labels after the label store's corrections (None: none)


@dataclass
class TextVectors:
    """Stage 4: the phrases' embeddings (every phrase's, or above ``FitConfig.sample_above`` those
    the images use: :class:`core.text.PhraseVectors`) and every image's text vector."""

    phrase_embeddings: np.ndarray | PhraseVectors
    image_vectors: np.ndarray


def embed_stage(ds: Dataset, cfg: FitConfig, backbone: Backbone, cache_root: Path, progress: ProgressFn) -> Features:
    """Visual features of every row (cached), dropping undecodable images (reported as issues)."""
    items = ds.items.reset_index(drop=True)
    paths = list(items["path"])
    engine = feature_engine(cfg, cache_root)  # None: this process
    feats, errors, digests = embed_images(
        paths,
        backbone,
        cache=FeatureCache(cache_root, cache_key(backbone, cfg.backbone_weights)),
        batch_size=cfg.batch_size,
        engine=engine,
        progress=progress,
    )
    extra = None
    if cfg.generator_backbone:
        second = create_backbone(cfg.generator_backbone, device=backbone.device, runtime=cfg.runtime, cache_dir=cache_root)
        extra, _, _ = embed_images(
            paths,
            second,
            cache=FeatureCache(cache_root, cache_key(second, None)),
            batch_size=cfg.batch_size,
            engine=engine,
            progress=lambda s, d, n: progress("embed images (generator backbone)", d, n),
        )
    issues = list(ds.issues)
    for i, reason in sorted(errors.items()):
        issues.append(DatasetIssue(Path(ds.source).name, int(items.at[i, "row"]), reason, items.at[i, "item"]))
    ok = np.array([i not in errors for i in range(len(items))])
    if not ok.any():
        raise ValueError("no image could be decoded; see the issues: " + "; ".join(map(str, issues[:5])))
    return Features(
        items=items[ok].reset_index(drop=True),
        visual=feats[ok],
        generator_input=generator_input(feats[ok], extra[ok] if extra is not None else None),
        digests=[d for d, keep in zip(digests, ok) if keep],
        issues=issues,
    )


@dataclass
class StoredLabels:
    """Stage 0: the label store's corrections of a refit (:func:`core.labels.session.stored_corrections`)."""

    items: list[str]  # the dataset's items
    labels: list[list[str]]  # their current labels
    reviewed: np.ndarray  # (N,) rows a labeler set a label on

    def rows(self, items: pd.DataFrame) -> tuple[list[list[str]], np.ndarray]:
        """The current labels and the reviewed mask of ``items`` (the decodable rows)."""
        pos = {item: i for i, item in enumerate(self.items)}
        idx = np.array([pos[item] for item in items["item"].astype(str)], dtype=np.int64)
        return [self.labels[i] for i in idx], self.reviewed[idx]


def label_stage(workspace: str | Path, ds: Dataset) -> StoredLabels | None:
    """The label store's corrections when ``workspace`` has a label history for this dataset
    (``None`` otherwise), checked before any work: fewer than 2 labels among the training rows
    fail here, not after minutes of features."""
    items, labels = list(ds.items["item"].astype(str)), list(ds.items["labels"])
    found = stored_corrections(workspace, ds.fingerprint(), items, labels)
    current = found[0] if found else labels
    train = ds.items["split"].to_numpy() != "test"
    names = sorted({lab for labs, t in zip(current, train, strict=True) if t for lab in labs})
    if len(names) < 2:
        raise ValueError(f"need at least 2 labels among the labelled training rows, found {names}")
    return None if found is None else StoredLabels(items, found[0], found[1])


def target_stage(
    items: pd.DataFrame, multilabel: bool, cfg: FitConfig, corrections: tuple[list[list[str]], np.ndarray] | None = None
) -> Targets:
    """Labels kept for training (``label_fraction``), their targets, and the scored test rows.

    ``corrections`` (:func:`core.labels.session.stored_corrections`): every row's labels after the
    label store's changes and the rows a labeler reviewed. They win as on a retrain: a reviewed
    training row counts as labelled with its current labels, whatever ``label_fraction`` drew."""
    labels = list(items["labels"])
    split = items["split"].to_numpy()
    labelled = scarce_labels(labels, split != "test", cfg.label_fraction, cfg.seed)
    if corrections is not None:
        labels, reviewed = corrections
        labelled = (labelled | (reviewed & (split != "test"))) & np.array([bool(labs) for labs in labels])
    names = sorted({lab for i in np.flatnonzero(labelled) for lab in labels[i]})
    if len(names) < 2:
        raise ValueError(f"need at least 2 labels among the labelled training rows, found {names}")
    y = label_targets(labels, names, multilabel)
    test = (split == "test") & np.array([bool(labs) for labs in labels])
    if not multilabel:
        test &= y >= 0  # a test label never seen in training cannot be predicted
    fit_idx = np.flatnonzero(labelled & has_target(y, multilabel))
    return Targets(names, y, labelled, test, fit_idx, labels if corrections is not None else None)


def phrase_stage(source: PhraseSource, feats: Features, cfg: FitConfig, backbone: Backbone, progress: ProgressFn) -> PhraseFit:
    """Top phrases of every image from the configured phrase source (:mod:`core.phrases.sources`)."""
    items = feats.items
    inputs = PhraseFitInputs(
        features=feats.visual,
        generator_input=feats.generator_input,
        phrase_lists=extract_fit_phrases(
            items["text"].tolist(), items["tags"].tolist(), cfg.generator.on_disk_above, extract_phrases
        ),
        train=items["split"].to_numpy() != "test",
        items=items,
        digests=feats.digests,
        k=max(10, cfg.top_k),
    )
    out = source.fit(inputs, cfg, backbone, progress)
    if out.fold is None:
        out.fold = np.full(len(items), -1, dtype=np.int64)
    return out


def text_stage(
    phrases: PhraseFit, source: PhraseSource, encoder: TextEncoder, cfg: FitConfig, cache_root: Path, progress: ProgressFn
) -> TextVectors:
    """Embed the phrases once (cached) and average each image's top-k into its text vector: every
    phrase up to ``cfg.sample_above`` phrases (or with ``None``); above, only the phrases the images'
    top-k use (the others are embedded when a prediction first reads them)."""
    from core.phrases.combined import image_text_vectors, used_phrase_ids

    if cfg.sample_above is None or len(phrases.phrases) <= cfg.sample_above:
        emb = embed_texts(phrases.phrases, encoder, cache_root, progress)
    else:
        used = used_phrase_ids(phrases.ids, top_k=cfg.top_k, combined=source.combined)
        rows = embed_texts(phrase_texts(phrases.phrases, used), encoder, cache_root, progress)
        emb = PhraseVectors(used, rows, phrases.phrases, lambda texts: embed_texts(texts, encoder, cache_root))
    vec = image_text_vectors(emb, phrases.ids, phrases.scores, top_k=cfg.top_k, weighting=cfg.weighting, combined=source.combined)
    return TextVectors(emb, vec)


def zeroshot_stage(
    phrases: PhraseFit, text: TextVectors, names: list[str], encoder: TextEncoder, cfg: FitConfig, out: Path
) -> np.ndarray:
    """Zero-shot probabilities of every row for the label names (the text -> co-embedding map,
    fitted on a sample of the phrases above ``cfg.sample_above``, is saved to ``out``)."""
    label_specs: list[tuple[str, list[str]]] = [(n, []) for n in names]
    generator = phrases.generator
    if generator is None:  # no co-embedding: compare label names with the image's phrase text vector
        return scores_to_proba(zero_shot_scores(text.image_vectors, text_label_embeddings(label_specs, encoder.encode)))
    emb = text.phrase_embeddings  # combined sources append the ImageNet phrases; PhraseVectors are read by id
    corpus_emb = emb[: len(generator.vocab)] if isinstance(emb, np.ndarray) else emb
    mapper = fit_mapper(corpus_emb, generator.prototypes, sample_above=cfg.sample_above, seed=cfg.seed)
    mapper.save(str(out))
    terms = label_embeddings(
        label_specs, vocab_index=generator.vocab.index, prototypes=generator.prototypes, embed_text=encoder.encode, mapper=mapper
    )
    return scores_to_proba(zero_shot_scores(phrases.coembedding, terms))


def map_stage(phrases: PhraseFit, seed: int, progress: ProgressFn, sample_above: int | None = None) -> dict[str, np.ndarray]:
    """2-D UMAP of the phrase prototypes and the images in the co-embedding (empty without a
    generator): every distinct prototype up to ``sample_above`` of them (or with ``None``), above
    that a seeded uniform sample of ``sample_above`` (:func:`map_prototype_ids`)."""
    generator = phrases.generator
    if generator is None:
        return {}
    from core.projection import umap_2d

    proto_ids = map_prototype_ids(generator.output_ids, sample_above, seed)
    xy = umap_2d(np.concatenate([generator.prototypes[proto_ids], phrases.coembedding]), seed=seed, progress=progress)
    return {
        "map_prototype_ids": proto_ids.astype(np.int64),
        "map_prototypes": xy[: len(proto_ids)],
        "map_images": xy[len(proto_ids) :],
    }


def map_prototype_ids(output_ids: np.ndarray, sample_above: int | None, seed: int) -> np.ndarray:
    """The vocabulary ids the map lays out: ``output_ids`` (one per distinct prototype) up to
    ``sample_above`` of them, else a seeded uniform sample of ``sample_above`` of them, in vocabulary order."""
    if sample_above is None:
        return output_ids
    return output_ids[sample_rows(len(output_ids), sample_above, seed)]


class _Timings(dict):
    """Seconds per stage: ``with timings("stage"): ...``."""

    @contextlib.contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        yield
        self[stage] = time.perf_counter() - t


def fit(
    data: str | Path | Dataset,
    workspace: str | Path,
    config: FitConfig | None = None,
    *,
    progress: ProgressFn | None = None,
) -> Workspace:
    """Fit every model on a dataset and write a workspace folder.

    Args:
        data: a dataset path (see :func:`core.data.load_dataset`) or a loaded :class:`Dataset`.
        workspace: output folder: new, empty, or a workspace this product wrote (replaced at the
            end; its label history and add-ons are kept, see :mod:`core.workspace_files`).
        config: the fit configuration.
        progress: progress callback (default: tqdm bars on stderr).

    Returns:
        The fitted :class:`~core.workspace.Workspace`.

    Raises:
        FileNotFoundError: the dataset does not exist.
        ValueError: a bad configuration or dataset; a folder that must not be replaced.
        core.workspace.WorkspaceBusyError: another fit is writing the same workspace.
    """
    cfg = (config or FitConfig()).seeded()
    check_label_fraction(cfg.label_fraction)  # before minutes of features, not after
    source = phrase_source(cfg.phrase_source)
    prog = progress or TqdmProgress()
    timings = _Timings()
    t0 = time.perf_counter()
    with timings("load"):
        ds = data if isinstance(data, Dataset) else load_dataset(data, seed=cfg.seed)
        cache_root = cfg.cache_root()
        device = resolve_device(cfg.device)
    protect = [p for p in (Path(ds.source), Path(ds.root) if ds.root else None) if p is not None]
    protect = [p if p.is_dir() else p.parent for p in protect]
    with staged_workspace(workspace, protect=protect) as tmp:
        stored = label_stage(workspace, ds)
        with timings("features"):
            backbone = create_backbone(
                cfg.backbone, weights=cfg.backbone_weights, device=device, runtime=cfg.runtime, cache_dir=cache_root
            )
            source.check(cfg, backbone.info.has_imagenet_head)
            feats = embed_stage(ds, cfg, backbone, cache_root, prog)
        with timings("neighbour_index"):
            save_visual_index(feats.visual, tmp, prog)  # above 100k images: Explore's first detail need not build it
        targets = target_stage(feats.items, ds.multilabel, cfg, stored and stored.rows(feats.items))
        with timings("phrase_generator"):
            phrases = phrase_stage(source, feats, cfg, backbone, prog)
            if phrases.generator is not None:
                phrases.generator.save(tmp / "generator")
        with timings("text_embeddings"):
            encoder = TextEncoder(cfg.text_model, device=device)
            text = text_stage(phrases, source, encoder, cfg, cache_root, prog)
        with timings("caption_labels"):
            captions = caption_stage(feats.items, feats.visual, targets, ds.multilabel, cfg, encoder, cache_root, prog)
            cap_labels = useful_caption_labels(captions and captions.labels)
        with timings("classifiers"):
            arrays = ImageArrays(feats.visual, text.image_vectors)
            models = CLASSIFIER_MODELS + (CAPTION_MODELS if cap_labels is not None else ())
            trained = train_classifiers(
                model_inputs(arrays, models),
                targets.y,
                targets.fit_idx,
                len(targets.names),
                ds.multilabel,
                cfg.classifier,
                tmp / "classifiers",
                prog,
                targets=caption_targets(cap_labels, targets.fit_idx, CAPTION_MODELS),
                blocks={m: input_blocks(m, arrays) for m in models},
                crossfit=CLASSIFIER_MODELS,
                twins=CAPTION_TWINS,
            )
            probs = trained.probs
        with timings("zeroshot"):
            probs["zeroshot"] = zeroshot_stage(phrases, text, targets.names, encoder, cfg, tmp / "zeroshot.safetensors")
        metrics, per_label = evaluate_models(probs, targets.y, targets.test, targets.fit_idx, targets.names, ds.multilabel)
        with timings("projections"):
            maps = map_stage(phrases, cfg.seed, prog, cfg.sample_above) if cfg.projections else {}
        timings["total"] = time.perf_counter() - t0
        _write(
            tmp,
            cfg,
            ds,
            feats,
            targets,
            phrases,
            text,
            maps,
            probs,
            source,
            metrics,
            per_label,
            timings,
            device,
            captions,
            trained,
        )
    return Workspace(workspace)


@dataclass
class Captions:
    """Stage 4b: every row's caption embedding (stored: the label-error queue's linear source and
    a retrain read it) and, when the fit asks for them, the caption labels of the unlabelled
    training rows (:mod:`core.captions`)."""

    embeddings: np.ndarray
    labels: CaptionLabels | None


def caption_stage(
    items: pd.DataFrame,
    visual: np.ndarray,
    targets: Targets,
    multilabel: bool,
    cfg: FitConfig,
    encoder: TextEncoder,
    cache_root: Path,
    progress: ProgressFn,
) -> Captions | None:
    """Caption embeddings when rows have captions; caption labels too when ``cfg.caption_labels``
    asks for them (``auto``: enough unlabelled rows with text), from a teacher that sees each
    row's caption and ``visual`` features and reads the label names as captions (reused from
    ``cache_root`` when its inputs are unchanged: :mod:`core.caption_cache`)."""
    texts = caption_texts(list(items["text"]), list(items["tags"]))
    train = items["split"].to_numpy() != "test"
    has_text = np.array([bool(t) for t in texts])
    if not has_text.any():
        return None
    emb = caption_embeddings(texts, encoder, cache_root, progress)
    labels = None
    if wants_caption_labels(cfg.caption_labels, train, targets.labelled, has_text, cfg.captions.auto_share):
        names = label_name_rows(targets.names, lambda t: embed_texts(t, encoder, cache_root))
        labels = cached_caption_labels(
            cache_root,
            texts,
            emb,
            targets.y,
            targets.labelled,
            train,
            multilabel,
            cfg.captions,
            cfg.seed,
            visual=visual,
            label_names=names,
        )
    return Captions(emb, labels)


def _write(
    tmp: Path,
    cfg: FitConfig,
    ds: Dataset,
    feats: Features,
    targets: Targets,
    phrases: PhraseFit,
    text: TextVectors,
    maps: dict[str, np.ndarray],
    probs: dict[str, np.ndarray],
    source: PhraseSource,
    metrics: dict,
    per_label: dict,
    timings: dict[str, float],
    device: str,
    captions: Captions | None,
    trained: TrainedModels,
) -> None:
    """Write the staged workspace's tables, arrays and manifest (file keys: see :mod:`core.workspace`)."""
    caption_columns = caption_label_columns(captions and captions.labels, targets.names, len(feats.items))
    items = feats.items.assign(labelled=targets.labelled, fold=phrases.fold, is_test=targets.test, **caption_columns)
    if targets.corrected is not None:  # as a retrain writes them: the labels trained on, and the dataset's
        items = items.assign(labels=targets.corrected, labels_dataset=feats.items["labels"])
    issues = feats.issues + phrases.issues
    arrays = {
        **maps,
        "visual": feats.visual,
        "text_vec": text.image_vectors,
        "phrase_ids": phrases.ids.astype(np.int64),
        "phrase_scores": phrases.scores.astype(np.float32),
        **phrase_embedding_arrays(text.phrase_embeddings),
    }
    if captions is not None:
        arrays["caption_vec"] = captions.embeddings
    if phrases.coembedding is not None:
        arrays["bottleneck"] = phrases.coembedding
        arrays["bottleneck_crossfit"] = phrases.coembedding_crossfit
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": asdict(cfg),
        "dataset": {
            "source": ds.source,
            "root": str(ds.root),
            "fingerprint": ds.fingerprint(),
            "multilabel": ds.multilabel,
            "n_items": len(items),
            "n_issues": len(issues),
            "meta_columns": ds.meta_columns,
        },
        "labels": targets.names,
        **source.manifest_phrases(phrases.phrases),
        "n_phrases": len(phrases.phrases),
        "map_prototypes": _map_counts(maps, phrases),
        "metrics": metrics,
        "n_test": int(targets.test.sum()),
        "n_labelled": len(targets.fit_idx),
        "captions": None if captions is None or captions.labels is None else captions.labels.summary(),
        "validation": trained.validation_summary(),
        "crossfit": list(trained.crossfit),
        "per_label": per_label,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "versions": _versions(),
        "device": device,
    }
    write_fit(tmp, manifest, items, issues, arrays, probs)


def _map_counts(maps: dict[str, np.ndarray], phrases: PhraseFit) -> dict[str, int] | None:
    """How many prototypes the map lays out (``mapped``) of the generator's distinct ones (``of``);
    ``None`` without a map. Fewer above ``FitConfig.sample_above`` (:func:`core.maps.map_sample`)."""
    if "map_prototype_ids" not in maps or phrases.generator is None:
        return None
    return {"mapped": len(maps["map_prototype_ids"]), "of": len(phrases.generator.output_ids)}


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "faiss-cpu", "sentence-transformers", "umap-learn", "scikit-learn"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    import core

    out["core"] = core.__version__
    return out
