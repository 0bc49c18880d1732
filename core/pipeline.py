"""Fit a workspace: dataset -> features -> phrases -> text vectors -> classifiers -> evaluation.

``fit(data, workspace)`` runs every stage and writes the workspace (see
:mod:`core.workspace`). Visual features and phrase embeddings are cached by content hash
(:mod:`core.features`), so an interrupted or repeated fit only recomputes what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from core.backbones import Backbone, create_backbone, resolve_device
from core.classifiers import Classifier, ClassifierConfig
from core.corpus import generator_input_name
from core.data.manifest import Dataset, DatasetIssue, load_dataset
from core.features import FeatureCache, FeatureEngine, default_cache_dir, embed_images
from core.metrics import evaluate, per_label_scores
from core.phrases.combined import COMBINED, combine_outputs, image_text_vectors
from core.phrases.crossfit import crossfit_phrases
from core.phrases.generator import GeneratorConfig, PhraseGenerator, l2n
from core.phrases.imagenet import imagenet_phrases, imagenet_top_phrases
from core.phrases.vocab import extract_phrases
from core.progress import ProgressFn, TqdmProgress
from core.text import TextEncoder
from core.zeroshot import TextToCoEmbedding, label_embeddings, scores_to_proba, text_label_embeddings, zero_shot_scores

PHRASE_SOURCES = ("corpus", "imagenet", COMBINED)  # or the folder of a saved generator (core.corpus)
MODELS = ("baseline", "multimodal", "text_only", "zeroshot")


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
            folder of a generator saved by :func:`core.corpus.fit_corpus_generator`.
        top_k: phrases averaged into the text vector (the paper: 3).
        weighting: ``mean`` (the paper) or ``score``.
        n_folds: cross-fitting folds for the training rows' phrases.
        label_fraction: keep labels for this share of each label's training rows (the others
            keep their text only); 1.0 keeps all. For label-scarcity studies.
        seed: seed of every random choice.
        device: ``auto``, ``cpu`` or ``cuda``.
        runtime: what runs the backbone: ``auto`` (the fastest installed; :mod:`core.runtimes`),
            ``torch``, ``openvino`` or ``onnxruntime``.
        engine: ``local`` (this process) or ``ray`` (image features on a Ray cluster; :mod:`core.engines`).
        ray_address: the Ray cluster to join (``None``: start a local Ray).
        batch_size: backbone batch size.
        projections: compute the 2-D UMAP maps.
        cache_dir: feature cache (default ``$PIXCTX_CACHE_DIR`` or ``~/.cache/pixctx``).
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
    cache_dir: str | None = None
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    @classmethod
    def from_dict(cls, d: dict) -> FitConfig:
        d = dict(d)
        gen = GeneratorConfig(**d.pop("generator", {}))
        clf = ClassifierConfig(**d.pop("classifier", {}))
        return cls(**d, generator=gen, classifier=clf)


def scarce_labels(labels: list[list[str]], train: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Mask of training rows that keep their labels: ``fraction`` of each (first) label's rows, at least one."""
    keep = train & np.array([bool(labs) for labs in labels])
    if fraction >= 1.0:
        return keep
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels), dtype=bool)
    by_label: dict[str, list[int]] = {}
    for i in np.flatnonzero(keep):
        by_label.setdefault(labels[i][0], []).append(i)
    for lab in sorted(by_label):
        idx = np.array(by_label[lab])
        n = max(1, round(fraction * len(idx)))
        out[rng.permutation(idx)[:n]] = True
    return out


def _apply_saved_generator(
    cfg: FitConfig, gen_feats: np.ndarray, items, digests: list[bytes | None], k: int
) -> tuple[PhraseGenerator, np.ndarray, np.ndarray, np.ndarray, list[DatasetIssue]]:
    """Phrases from a generator fitted elsewhere; warns about images whose captions it has seen."""
    from core.corpus import corpus_digests, generator_input_name
    from core.phrases.crossfit import apply_generator

    gen = PhraseGenerator.load(cfg.phrase_source)
    expected = generator_input_name(cfg.backbone, cfg.generator_backbone)
    if gen.backbone and gen.backbone != expected:
        raise ValueError(f"the saved generator reads {gen.backbone!r} features, this fit uses {expected!r}")
    seen = corpus_digests(cfg.phrase_source)
    leaks = []
    if seen:
        for row, digest, item, split in zip(items["row"], digests, items["item"], items["split"]):
            if digest in seen:
                what = "test image whose caption trained the phrase generator: its test metrics are optimistic"
                if split != "test":
                    what = "training image whose caption trained the phrase generator (no cross-fitting possible)"
                leaks.append(DatasetIssue("phrase generator", int(row), what, str(item)))
    emb, ids, scores = apply_generator(gen, gen_feats, k)
    return gen, emb, ids, scores, leaks


def feature_engine(cfg: FitConfig, cache_root: Path) -> FeatureEngine | None:
    """The engine computing image features: ``None`` (this process) or a Ray engine."""
    if cfg.engine == "local":
        return None
    if cfg.engine != "ray":
        raise ValueError(f"unknown engine {cfg.engine!r}; choose local or ray")
    from core.engines import RayEngine

    return RayEngine(
        cfg.ray_address, runtime=cfg.runtime, device=cfg.device, batch_size=cfg.batch_size, cache_dir=str(cache_root)
    )


def cache_key(backbone: Backbone, weights: str | None) -> str:
    """Feature-cache key of a backbone configuration."""
    key = f"{backbone.name}-{backbone.info.image_size}"
    if weights:
        key += "-" + hashlib.sha1(str(Path(weights).resolve()).encode()).hexdigest()[:8]
    return key


def generator_input(features: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    """What the phrase generator sees: the classifier's features, plus a second backbone's if any."""
    return features if extra is None else np.concatenate([l2n(features), l2n(extra)], axis=1)


def label_targets(labels: list[list[str]], names: list[str], multilabel: bool) -> np.ndarray:
    """Class indices (single-label; -1 for none or unknown) or a 0/1 matrix (multi-label)."""
    pos = {n: i for i, n in enumerate(names)}
    if multilabel:
        y = np.zeros((len(labels), len(names)), dtype=np.float32)
        for i, labs in enumerate(labels):
            for lab in labs:
                if lab in pos:
                    y[i, pos[lab]] = 1.0
        return y
    return np.array([pos[labs[0]] if labs and labs[0] in pos else -1 for labs in labels], dtype=np.int64)


def embed_texts(texts: list[str], encoder: TextEncoder, cache_root: Path, progress: ProgressFn) -> np.ndarray:
    """Text embeddings (phrases, captions), cached by (model, text)."""
    cache = FeatureCache(cache_root, f"text-{encoder.name}")
    digests = [hashlib.sha1(t.encode()).digest() for t in texts]
    todo = [i for i, d in enumerate(digests) if d not in cache]
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    for i, d in enumerate(digests):
        if d in cache:
            out[i] = cache.get(d)
    step = 4096
    for s in range(0, len(todo), step):
        chunk = todo[s : s + step]
        vecs = encoder.encode([texts[i] for i in chunk])
        out[chunk] = vecs
        cache.add([digests[i] for i in chunk], vecs)
        progress("embed phrases", s + len(chunk), len(todo))
    return out


def fit(
    data: str | Path | Dataset,
    workspace: str | Path,
    config: FitConfig | None = None,
    *,
    progress: ProgressFn | None = None,
) -> Path:
    """Fit every model on a dataset and write a workspace folder.

    Args:
        data: a dataset path (see :func:`core.data.load_dataset`) or a loaded :class:`Dataset`.
        workspace: output folder (created; an existing workspace there is replaced at the end).
        config: the fit configuration.
        progress: progress callback (default: tqdm bars on stderr).

    Returns:
        The workspace path.
    """
    cfg = config or FitConfig()
    # one seed drives everything: label draws, generator, classifiers, maps
    cfg = replace(cfg, generator=replace(cfg.generator, seed=cfg.seed), classifier=replace(cfg.classifier, seed=cfg.seed))
    external = cfg.phrase_source not in PHRASE_SOURCES
    if external and not (Path(cfg.phrase_source) / "generator.json").is_file():
        raise ValueError(f"phrase_source {cfg.phrase_source!r} is neither one of {PHRASE_SOURCES} nor a saved generator folder")
    if cfg.phrase_source == "imagenet" and cfg.generator_backbone:
        raise ValueError("generator_backbone applies to the corpus phrase generator, not to phrase_source='imagenet'")
    prog = progress or TqdmProgress()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ds = data if isinstance(data, Dataset) else load_dataset(data, seed=cfg.seed)
    ws = Path(workspace).expanduser().resolve()
    tmp = ws.with_name(ws.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    cache_root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    device = resolve_device(cfg.device)
    timings["load"] = time.perf_counter() - t0

    # 1. visual features ------------------------------------------------------------------
    t = time.perf_counter()
    backbone = create_backbone(
        cfg.backbone, weights=cfg.backbone_weights, device=device, runtime=cfg.runtime, cache_dir=cache_root
    )
    if cfg.phrase_source in ("imagenet", COMBINED) and not backbone.info.has_imagenet_head:
        raise ValueError(f"backbone {cfg.backbone!r} has no ImageNet-1k head for phrase_source={cfg.phrase_source!r}")
    items = ds.items.reset_index(drop=True)
    batch = cfg.batch_size if device == "cpu" else max(cfg.batch_size, 128)
    engine = feature_engine(cfg, cache_root)
    feats, errors, digests = embed_images(
        list(items["path"]),
        backbone,
        cache=FeatureCache(cache_root, cache_key(backbone, cfg.backbone_weights)),
        batch_size=batch,
        processes=device != "cpu",
        engine=engine,
        progress=prog,
    )
    if cfg.generator_backbone:
        second = create_backbone(cfg.generator_backbone, device=device, runtime=cfg.runtime, cache_dir=cache_root)
        gen_extra, _, _ = embed_images(
            list(items["path"]),
            second,
            cache=FeatureCache(cache_root, cache_key(second, None)),
            batch_size=batch,
            engine=engine,
            progress=lambda s, d, n: prog("embed images (generator backbone)", d, n),
        )
    issues = list(ds.issues)
    for i, reason in sorted(errors.items()):
        issues.append(DatasetIssue(Path(ds.source).name, int(items.at[i, "row"]), reason, items.at[i, "item"]))
    ok = np.array([i not in errors for i in range(len(items))])
    items = items[ok].reset_index(drop=True)
    feats = feats[ok]
    digests = [d for d, keep in zip(digests, ok) if keep]
    gen_feats = generator_input(feats, gen_extra[ok] if cfg.generator_backbone else None)
    if len(items) == 0:
        raise ValueError("no image could be decoded; see the issues: " + "; ".join(map(str, issues[:5])))
    timings["features"] = time.perf_counter() - t

    # 2. labels kept for training ---------------------------------------------------------
    labels = list(items["labels"])
    split = items["split"].to_numpy()
    train = split != "test"
    labelled = scarce_labels(labels, train, cfg.label_fraction, cfg.seed)
    names = sorted({lab for i in np.flatnonzero(labelled) for lab in labels[i]})
    if len(names) < 2:
        raise ValueError(f"need at least 2 labels among the labelled training rows, found {names}")
    y_all = label_targets(labels, names, ds.multilabel)
    test = (split == "test") & np.array([bool(labs) for labs in labels])
    if not ds.multilabel:
        test &= y_all >= 0  # a test label never seen in training cannot be predicted

    # 3. phrases --------------------------------------------------------------------------
    t = time.perf_counter()
    k_store = max(10, cfg.top_k)
    phrase_lists = [extract_phrases(tx, tg) for tx, tg in zip(items["text"], items["tags"])]
    fold = np.full(len(items), -1, dtype=np.int64)
    if cfg.phrase_source in ("corpus", COMBINED):
        corpus = train & np.array([bool(p) for p in phrase_lists])
        generator, outs = crossfit_phrases(
            gen_feats,
            phrase_lists,
            corpus,
            cfg.generator,
            n_folds=cfg.n_folds,
            k=k_store,
            backbone=generator_input_name(cfg.backbone, cfg.generator_backbone),
            progress=prog,
        )
        generator.save(tmp / "generator")
        phrase_texts = generator.vocab.phrases
        bottleneck, ids, scores, fold = outs.embedding, outs.ids, outs.scores, outs.fold
        bottleneck_crossfit = outs.bottleneck
    elif external:
        generator, bottleneck, ids, scores, leaks = _apply_saved_generator(cfg, gen_feats, items, digests, k_store)
        generator.save(tmp / "generator")
        phrase_texts = generator.vocab.phrases
        bottleneck_crossfit = bottleneck
        issues += leaks
    else:
        generator = None
        phrase_texts = imagenet_phrases()
        ids, scores = imagenet_top_phrases(backbone.imagenet_logits(feats), k_store)
        bottleneck = bottleneck_crossfit = None
    if cfg.phrase_source == COMBINED:
        half = k_store // 2
        ids, scores = combine_outputs(
            (ids, scores), imagenet_top_phrases(backbone.imagenet_logits(feats), half), len(phrase_texts), half
        )
        phrase_texts = [*phrase_texts, *imagenet_phrases()]
    timings["phrase_generator"] = time.perf_counter() - t

    # 4. text vectors ---------------------------------------------------------------------
    t = time.perf_counter()
    encoder = TextEncoder(cfg.text_model, device=device)
    phrase_emb = embed_texts(phrase_texts, encoder, cache_root, prog)
    text_vec = image_text_vectors(
        phrase_emb, ids, scores, top_k=cfg.top_k, weighting=cfg.weighting, combined=cfg.phrase_source == COMBINED
    )
    timings["text_embeddings"] = time.perf_counter() - t

    # 5. classifiers ----------------------------------------------------------------------
    t = time.perf_counter()
    visual = l2n(feats)
    inputs = {
        "baseline": visual,
        "multimodal": np.concatenate([visual, text_vec], axis=1),
        "text_only": text_vec,
    }
    fit_idx = np.flatnonzero(labelled & ((y_all.sum(1) > 0) if ds.multilabel else (y_all >= 0)))
    probs = train_classifiers(inputs, y_all, fit_idx, len(names), ds.multilabel, cfg.classifier, tmp / "classifiers", prog)
    timings["classifiers"] = time.perf_counter() - t

    # 6. zero-shot ------------------------------------------------------------------------
    t = time.perf_counter()
    label_specs = [(n, []) for n in names]
    if generator is not None:
        has_proto = np.abs(generator.prototypes).sum(1) > 0
        corpus_emb = phrase_emb[: len(generator.vocab)]  # combined sources append the ImageNet phrases
        mapper = TextToCoEmbedding.fit(corpus_emb[has_proto], generator.prototypes[has_proto])
        mapper.save(str(tmp / "zeroshot.safetensors"))
        terms = label_embeddings(
            label_specs,
            vocab_index=generator.vocab.index,
            prototypes=generator.prototypes,
            embed_text=encoder.encode,
            mapper=mapper,
        )
        zs = zero_shot_scores(bottleneck, terms)
    else:  # no co-embedding: compare label names with the image's phrase text vector
        terms = text_label_embeddings(label_specs, encoder.encode)
        zs = zero_shot_scores(text_vec, terms)
    probs["zeroshot"] = scores_to_proba(zs)
    timings["zeroshot"] = time.perf_counter() - t

    # 7. evaluation -----------------------------------------------------------------------
    metrics, per_label = evaluate_models(probs, y_all, test, fit_idx, names, ds.multilabel)

    # 8. 2-D maps -------------------------------------------------------------------------
    t = time.perf_counter()
    arrays: dict[str, np.ndarray] = {}
    if cfg.projections and generator is not None:
        from core.projection import umap_2d

        proto_ids = generator.output_ids
        joint = np.concatenate([generator.prototypes[proto_ids], bottleneck])
        xy = umap_2d(joint, seed=cfg.seed, progress=prog)
        arrays.update(
            map_prototype_ids=proto_ids.astype(np.int64), map_prototypes=xy[: len(proto_ids)], map_images=xy[len(proto_ids) :]
        )
    timings["projections"] = time.perf_counter() - t

    # 9. write ----------------------------------------------------------------------------
    from core.workspace import write_workspace

    items = items.assign(labelled=labelled, fold=fold, is_test=test)
    arrays.update(
        visual=feats,
        text_vec=text_vec,
        phrase_ids=ids.astype(np.int64),
        phrase_scores=scores.astype(np.float32),
        phrase_embeddings=phrase_emb,
    )
    if bottleneck is not None:
        arrays["bottleneck"] = bottleneck  # full generator: one space for maps, neighbours, zero-shot
        arrays["bottleneck_crossfit"] = bottleneck_crossfit  # what a classifier may train on (ablations)
    timings["total"] = time.perf_counter() - t0
    manifest = {
        "format": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": asdict(cfg),
        "dataset": {
            "source": ds.source,
            "fingerprint": ds.fingerprint(),
            "multilabel": ds.multilabel,
            "n_items": len(items),
            "n_issues": len(issues),
            "meta_columns": ds.meta_columns,
        },
        "labels": names,
        "phrases": list(phrase_texts) if generator is None or cfg.phrase_source == COMBINED else None,
        "n_phrases": len(phrase_texts),
        "metrics": metrics,
        "n_test": int(test.sum()),
        "n_labelled": len(fit_idx),
        "per_label": per_label,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "versions": _versions(),
        "device": device,
    }
    write_workspace(tmp, manifest, items, issues, arrays, probs)
    if ws.exists():
        shutil.rmtree(ws)
    tmp.rename(ws)
    return ws


def train_classifiers(
    inputs: dict[str, np.ndarray],
    y_all: np.ndarray,
    fit_idx: np.ndarray,
    n_classes: int,
    multilabel: bool,
    config: ClassifierConfig,
    folder: Path,
    progress: ProgressFn,
) -> dict[str, np.ndarray]:
    """Fit one classifier per input (rows ``fit_idx``), save it under ``folder``, and return
    every row's probabilities per model."""
    probs: dict[str, np.ndarray] = {}
    progress("classifiers", 0, len(inputs))
    for n_done, (name, x) in enumerate(inputs.items()):
        clf = Classifier(n_classes, multilabel, config).fit(x[fit_idx], y_all[fit_idx])
        clf.save(folder, name)
        probs[name] = clf.predict_proba(x)
        progress("classifiers", n_done + 1, len(inputs))
    return probs


def evaluate_models(
    probs: dict[str, np.ndarray], y_all: np.ndarray, test: np.ndarray, fit_idx: np.ndarray, names: list[str], multilabel: bool
) -> tuple[dict[str, dict[str, float]], dict[str, list]]:
    """Test metrics of every model, and the per-label table (training/test counts, per-label scores)."""
    y_test = y_all[test]
    metrics = {m: evaluate(y_test, probs[m][test], multilabel=multilabel) for m in probs}

    def counts(y: np.ndarray) -> list[int]:
        c = y.sum(0) if multilabel else np.bincount(y[y >= 0], minlength=len(names))
        return [int(v) for v in c]

    per_label: dict[str, list] = {"label": names, "n_train": counts(y_all[fit_idx]), "n_test": counts(y_test)}
    for m in probs:
        scores = per_label_scores(y_test, probs[m][test], multilabel=multilabel)
        per_label[m] = [None if np.isnan(v) else float(v) for v in scores]
    return metrics, per_label


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "faiss-cpu", "sentence-transformers", "umap-learn", "scikit-learn"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    import core

    out["core"] = core.__version__
    return out
