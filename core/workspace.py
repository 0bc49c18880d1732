"""A workspace: one folder with every artifact of a fit, and the API to use it.

Layout (no pickles anywhere)::

    manifest.json            config, versions, dataset fingerprint, labels, metrics, timings
    items.parquet            one row per image: item, path, labels, text, tags, split, metadata,
                             labelled (used for training), is_test, fold (cross-fitting)
    issues.json              rows skipped at load or embedding time, with reasons
    arrays.safetensors       visual features, co-embeddings, phrase ids/scores, text vectors,
                             phrase embeddings, 2-D maps
    predictions.safetensors  baseline / multimodal / text_only / zeroshot probabilities
    generator/               the phrase generator (safetensors + JSON + vocabulary)
    classifiers/             baseline, multimodal, text_only (safetensors + JSON)
    zeroshot.safetensors     text -> co-embedding map
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

from core.data.manifest import DatasetIssue


def write_workspace(
    folder: Path,
    manifest: dict,
    items: pd.DataFrame,
    issues: list[DatasetIssue],
    arrays: dict[str, np.ndarray],
    predictions: dict[str, np.ndarray],
) -> None:
    """Write the workspace files (``manifest.json`` last: its presence marks a complete fit)."""
    items.to_parquet(folder / "items.parquet", index=False)
    (folder / "issues.json").write_text(
        json.dumps([{"file": i.file, "row": i.row, "image": i.image, "reason": i.reason} for i in issues], indent=1)
    )
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / "arrays.safetensors"))
    save_file(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in predictions.items()}, str(folder / "predictions.safetensors")
    )
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))


def is_workspace(path: str | Path) -> bool:
    """Whether ``path`` holds a complete fitted workspace."""
    return (Path(path) / "manifest.json").is_file()


@dataclass
class Prediction:
    """What the pipeline says about one image."""

    image: str
    phrases: list[tuple[str, float]]
    baseline: list[tuple[str, float]]
    multimodal: list[tuple[str, float]]
    text_only: list[tuple[str, float]]
    zeroshot: list[tuple[str, float]]
    features: np.ndarray | None = None  # classifier visual features of a new image (for neighbours)

    def to_dict(self, top: int = 5) -> dict:
        def pairs(key: str, xs: list[tuple[str, float]]) -> list[dict]:
            return [{key: a, "prob" if key == "label" else "score": round(b, 6)} for a, b in xs[:top]]

        return {
            "image": self.image,
            "phrases": pairs("phrase", self.phrases),
            "baseline": pairs("label", self.baseline),
            "multimodal": pairs("label", self.multimodal),
            "text_only": pairs("label", self.text_only),
            "zeroshot": pairs("label", self.zeroshot),
        }


def _ranked(names: list[str], p: np.ndarray, top: int) -> list[tuple[str, float]]:
    order = np.argsort(-p)[:top]
    return [(names[j], float(p[j])) for j in order]


class Workspace:
    """A fitted workspace. Arrays and models load lazily, on first use."""

    def __init__(self, path: str | Path, device: str = "cpu", runtime: str | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        if not is_workspace(self.path):
            raise FileNotFoundError(f"not a fitted workspace (no manifest.json): {self.path}")
        self.manifest: dict = json.loads((self.path / "manifest.json").read_text())
        self.device = device
        self.runtime = runtime  # None: the fit's runtime (core.runtimes)
        self._label_terms: dict[tuple, list[np.ndarray]] = {}

    # --- metadata ----------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def multilabel(self) -> bool:
        return bool(self.manifest["dataset"]["multilabel"])

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        return self.manifest["metrics"]

    @property
    def config(self):  # -> FitConfig (import kept local: pipeline imports this module)
        from core.pipeline import FitConfig

        return FitConfig.from_dict(self.manifest["config"])

    @cached_property
    def items(self) -> pd.DataFrame:
        df = pd.read_parquet(self.path / "items.parquet")
        for col in ("labels", "tags"):
            df[col] = df[col].map(list)
        return df

    @cached_property
    def issues(self) -> list[DatasetIssue]:
        return [DatasetIssue(**d) for d in json.loads((self.path / "issues.json").read_text())]

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        return load_file(str(self.path / "arrays.safetensors"))

    @cached_property
    def predictions(self) -> dict[str, np.ndarray]:
        return load_file(str(self.path / "predictions.safetensors"))

    @cached_property
    def phrases(self) -> list[str]:
        if self.manifest.get("phrases"):
            return list(self.manifest["phrases"])
        return self.generator.vocab.phrases

    # --- models ------------------------------------------------------------------------
    @cached_property
    def generator(self):
        from core.phrases.generator import PhraseGenerator

        folder = self.path / "generator"
        if not folder.is_dir():
            raise ValueError("this workspace uses the ImageNet phrase source: it has no co-embedding")
        return PhraseGenerator.load(folder)

    @cached_property
    def classifiers(self) -> dict:
        from core.classifiers import Classifier

        return {m: Classifier.load(self.path / "classifiers", m) for m in ("baseline", "multimodal", "text_only")}

    @cached_property
    def backbone(self):
        from core.backbones import create_backbone

        cfg = self.config
        runtime = self.runtime or cfg.runtime
        return create_backbone(cfg.backbone, weights=cfg.backbone_weights, device=self.device, runtime=runtime)

    @cached_property
    def generator_backbone(self):
        from core.backbones import create_backbone

        name = self.config.generator_backbone
        return create_backbone(name, device=self.device, runtime=self.runtime or self.config.runtime) if name else None

    @cached_property
    def text_encoder(self):
        from core.text import TextEncoder

        return TextEncoder(self.config.text_model, device=self.device)

    @cached_property
    def zeroshot_mapper(self):
        from core.zeroshot import TextToCoEmbedding

        return TextToCoEmbedding.load(str(self.path / "zeroshot.safetensors"))

    # --- per-image views ---------------------------------------------------------------
    def item_phrases(self, row: int, k: int = 10) -> list[tuple[str, float]]:
        ids, scores = self.arrays["phrase_ids"][row], self.arrays["phrase_scores"][row]
        return [(self.phrases[j], float(s)) for j, s in zip(ids[:k], scores[:k]) if j >= 0]

    def item_prediction(self, row: int, top: int = 5) -> Prediction:
        p = self.predictions
        return Prediction(
            image=str(self.items.at[row, "item"]),
            phrases=self.item_phrases(row),
            **{m: _ranked(self.labels, p[m][row], top) for m in ("baseline", "multimodal", "text_only", "zeroshot")},
        )

    # --- new images ----------------------------------------------------------------------
    def embed(self, images: list[str | Path | bytes]) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """Features of new images (paths or bytes): ``(classifier features, generator input, errors)``,
        errors mapping index -> reason."""
        from core.data.images import ImageError
        from core.pipeline import generator_input

        decoded, errors = {}, {}
        for i, img in enumerate(images):
            try:
                decoded[i] = _decode(img)
            except ImageError as exc:
                errors[i] = str(exc)
        feats = _embed_decoded(self.backbone, decoded, len(images))
        second = self.generator_backbone
        extra = _embed_decoded(second, decoded, len(images)) if second is not None else None
        return feats, generator_input(feats, extra), errors

    def phrase_outputs(
        self, feats: np.ndarray, gen_in: np.ndarray, k: int = 10
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """(co-embedding or None, phrase ids, scores) of new images from :meth:`embed`'s outputs."""
        from core.phrases.combined import COMBINED, combine_outputs
        from core.phrases.crossfit import apply_generator
        from core.phrases.imagenet import imagenet_top_phrases

        source = self.config.phrase_source
        if source == "imagenet":
            ids, scores = imagenet_top_phrases(self.backbone.imagenet_logits(feats), k)
            return None, ids, scores
        emb, ids, scores = apply_generator(self.generator, gen_in, k)
        if source == COMBINED:
            half = k // 2
            inet = imagenet_top_phrases(self.backbone.imagenet_logits(feats), half)
            ids, scores = combine_outputs((ids, scores), inet, len(self.generator.vocab), half)
        return emb, ids, scores

    def text_vectors(self, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Text vectors of images from their phrase ids and scores, as at fit time."""
        from core.phrases.combined import COMBINED, image_text_vectors

        cfg = self.config
        return image_text_vectors(
            self.arrays["phrase_embeddings"],
            ids,
            scores,
            top_k=cfg.top_k,
            weighting=cfg.weighting,
            combined=cfg.phrase_source == COMBINED,
        )

    def zeroshot_scores(
        self,
        labels: list[tuple[str, list[str]]],
        *,
        embeddings: np.ndarray | None = None,
        text_vectors: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, L) zero-shot scores of images (co-embeddings, or text vectors for the ImageNet source)."""
        from core.zeroshot import zero_shot_scores

        terms = self.label_term_embeddings(labels)
        return zero_shot_scores(text_vectors if self.config.phrase_source == "imagenet" else embeddings, terms)  # type: ignore[arg-type]

    def label_term_embeddings(self, labels: list[tuple[str, list[str]]]) -> list[np.ndarray]:
        """Embeddings of every label's terms, cached per label spec (labels repeat on every image)."""
        from core.zeroshot import label_embeddings, text_label_embeddings

        key = tuple((name, tuple(syns)) for name, syns in labels)
        cache = self._label_terms
        if key not in cache:
            if self.config.phrase_source == "imagenet":
                cache[key] = text_label_embeddings(labels, self.text_encoder.encode)
            else:
                gen = self.generator
                cache[key] = label_embeddings(
                    labels,
                    vocab_index=gen.vocab.index,
                    prototypes=gen.prototypes,
                    embed_text=self.text_encoder.encode,
                    mapper=self.zeroshot_mapper,
                )
            if len(cache) > 64:  # typed label sets from the app: keep the newest
                cache.pop(next(iter(cache)))
        return cache[key]

    def probabilities(
        self, feats: np.ndarray, gen_in: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Phrase ids, phrase scores and every model's label probabilities from :meth:`embed`'s outputs
        (what :meth:`predict` and batch prediction, :mod:`core.batch`, compute)."""
        from core.phrases.generator import l2n
        from core.zeroshot import scores_to_proba

        emb, ids, scores = self.phrase_outputs(feats, gen_in)
        text_vec = self.text_vectors(ids, scores)
        visual = l2n(feats)
        inputs = {"baseline": visual, "multimodal": np.concatenate([visual, text_vec], 1), "text_only": text_vec}
        probs = {m: self.classifiers[m].predict_proba(x) for m, x in inputs.items()}
        probs["zeroshot"] = scores_to_proba(
            self.zeroshot_scores([(n, []) for n in self.labels], embeddings=emb, text_vectors=text_vec)
        )
        return ids, scores, probs

    def predict(self, images: list[str | Path | bytes], names: list[str] | None = None, top: int = 5) -> list[Prediction | str]:
        """Run the whole pipeline on new images.

        Returns:
            One :class:`Prediction` per image, or an error message for images that could not
            be decoded.
        """
        feats, gen_in, errors = self.embed(images)
        ids, scores, probs = self.probabilities(feats, gen_in)
        names = names or [str(im) if not isinstance(im, bytes) else f"image {i}" for i, im in enumerate(images)]
        out: list[Prediction | str] = []
        for i in range(len(images)):
            if i in errors:
                out.append(f"{names[i]}: {errors[i]}")
                continue
            out.append(
                Prediction(
                    image=names[i],
                    phrases=[(self.phrases[j], float(s)) for j, s in zip(ids[i], scores[i]) if j >= 0],
                    **{m: _ranked(self.labels, probs[m][i], top) for m in probs},
                    features=feats[i],
                )
            )
        return out


def _decode(image: str | Path | bytes):
    from core.data.images import load_image

    return load_image(image, max_side=1024)


def _embed_decoded(backbone, decoded: dict, n: int) -> np.ndarray:
    out = np.zeros((n, backbone.dim), dtype=np.float32)
    rows = sorted(decoded)
    for b in range(0, len(rows), 32):
        chunk = rows[b : b + 32]
        out[chunk] = backbone.embed_batch(np.stack([backbone.preprocess(decoded[i]) for i in chunk]))
    return out


def open_workspace(path: str | Path, device: str = "cpu", runtime: str | None = None) -> Workspace:
    """Open a fitted workspace folder (fast: models load on first use); ``runtime`` overrides the fit's."""
    return Workspace(path, device=device, runtime=runtime)
