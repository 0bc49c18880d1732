"""A workspace: one folder with every artifact of a fit, and the API to use it.

Layout (no pickles anywhere)::

    manifest.json              format (1), config, versions, dataset fingerprint, labels, metrics,
                               per-label scores, timings, retrains; written last (marks a complete fit)
    items.parquet              one row per image: item, path, labels, text, tags, split, metadata,
                               labelled (used for training), is_test, fold (cross-fitting),
                               caption_label and caption_confidence (what the caption models trained
                               on for an unlabelled training image, :mod:`core.captions`);
                               after a retrain also labels_dataset (the labels before corrections)
    issues.json                rows skipped at load or embedding time, with reasons
    arrays.safetensors         per-image arrays, read through the typed accessors of
                               :class:`Workspace` (file key -> accessor):
                                 visual -> visual (raw backbone features)
                                 text_vec -> text_vectors (top-k phrase text vectors)
                                 phrase_ids, phrase_scores -> phrase_ids, phrase_scores
                                 phrase_embeddings -> phrase_embeddings (one row per phrase; past
                                   FitConfig.sample_above phrases instead phrase_embedding_ids and
                                   phrase_embedding_rows: the phrases the images use, core.text.PhraseVectors)
                                 bottleneck -> coembedding (the full generator's co-embedding)
                                 bottleneck_crossfit -> coembedding_crossfit (the cross-fitted one)
                                 map_images, map_prototypes, map_prototype_ids -> maps
                                   (:class:`ProjectionMaps`: 2-D UMAP of images and prototypes)
                                 caption_vec -> caption_vectors (caption embeddings; absent when no row has a caption)
    predictions.safetensors    every row's probabilities per model (baseline / multimodal /
                               text_only / zeroshot, and any registered add-on model); on the
                               rows a paper model trained on, cross-fitted probabilities
                               (manifest ``crossfit``), not its fit of those rows
    generator/                 the phrase generator (safetensors + JSON + vocabulary), if the source has one;
                               above 100k prototypes also its faiss index, the lists on disk
                               (``phrase_index.faiss`` + ``phrase_lists.ivfdata``, :mod:`core.phrases.index`)
    classifiers/               one head per classifier model (NAME.safetensors + NAME.json)
    zeroshot.safetensors       text -> co-embedding map (sources with a generator)
    oof/                       out-of-fold probabilities per source (cache of the label-error queue,
                               :mod:`core.labels.oof`; dropped by a refit or a retrain)
    index/                     the neighbour index of workspaces over 100k images (:mod:`core.vector_index`;
                               written by the fit, built on first use in older workspaces; replaced by a
                               refit, kept by a retrain, which changes no visual feature)
    predictions/               predictions a user attached (:mod:`core.predictions`; kept across refits)
    labels.sqlite              the label history (:mod:`core.labels.store`, with its ``-wal``/``-shm``
                               files; kept across refits)
    retrieval/                 semantic retrieval models (:mod:`core.retrieval.semantic`)
    tags/                      tag-neighbourhood models (:mod:`core.tags.annotate`); these two are kept
                               across a refit on the same images with the same backbone
    oof_multimodal.safetensors the label-error cache of older versions (dropped like ``oof/``)

The ``.safetensors`` arrays are read memory-mapped (:mod:`core.safetensors_mmap`): opening a
workspace of 1M images reads headers, not the 9 GB of arrays.

Beside it: ``WS.lock`` (the write lock) and, during a fit, ``WS.partial`` (the staging folder);
inside it, while an add-on model is fitted, ``retrieval.partial`` or ``tags.partial``; while a
retrain installs, ``classifiers.new``, ``*.retrain`` and the commit mark ``retrain.commit``.
Every file write -- fit, retrain, add-on model, cache, attached predictions -- goes through
:mod:`core.workspace_files` (writing, locking, replacing); the label history is written by SQLite's
own transactions (:mod:`core.labels.store`); this module only reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.config import ALL_MODELS, CLASSIFIER_MODELS, FitConfig
from core.data.manifest import DatasetIssue
from core.forward import MODEL_INPUTS, ImageArrays, generator_input, model_inputs
from core.phrases.sources import PhraseSource, stored_source
from core.safetensors_mmap import load_mmap
from core.text import PhraseVectors
from core.workspace_files import (
    FORMAT,
    WorkspaceBusyError,
    WorkspaceError,
    is_product_workspace,
    read_manifest,
    refit_hint,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "FORMAT",
    "Prediction",
    "ProjectionMaps",
    "Workspace",
    "WorkspaceBusyError",
    "WorkspaceError",
    "is_workspace",
    "open_workspace",
]

_REQUIRED_CONFIG = ("backbone", "text_model", "phrase_source", "top_k", "weighting")


def is_workspace(path: str | Path) -> bool:
    """Whether ``path`` holds a complete workspace this product wrote (it may still be another format version)."""
    return is_product_workspace(path)


@dataclass
class Prediction:
    """What the pipeline says about one image.

    Attributes:
        image: the image's name.
        phrases: ``(phrase, score)``, best first.
        rankings: per model, ``(label, probability)`` best first.
        features: classifier visual features of a new image (for neighbours).
        error: why the image could not be used (then everything else is empty).
    """

    image: str
    phrases: list[tuple[str, float]] = field(default_factory=list)
    rankings: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    features: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def baseline(self) -> list[tuple[str, float]]:
        return self.rankings.get("baseline", [])

    @property
    def multimodal(self) -> list[tuple[str, float]]:
        return self.rankings.get("multimodal", [])

    @property
    def text_only(self) -> list[tuple[str, float]]:
        return self.rankings.get("text_only", [])

    @property
    def zeroshot(self) -> list[tuple[str, float]]:
        return self.rankings.get("zeroshot", [])

    def to_dict(self, top: int = 5) -> dict:
        """JSON-ready: ``image``, then ``error`` or ``phrases`` and one list per model."""
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        out: dict = {"image": self.image, "phrases": [{"phrase": p, "score": round(s, 6)} for p, s in self.phrases[:top]]}
        for m, ranked in self.rankings.items():
            out[m] = [{"label": a, "prob": round(b, 6)} for a, b in ranked[:top]]
        return out


@dataclass(frozen=True)
class ProjectionMaps:
    """The 2-D UMAP maps computed at fit time (:mod:`core.projection`), drawn by :mod:`core.maps`.

    Attributes:
        images: (N, 2) position of every image.
        prototypes: (M, 2) position of each mapped phrase prototype.
        prototype_ids: (M,) vocabulary id of each mapped prototype.
    """

    images: np.ndarray
    prototypes: np.ndarray
    prototype_ids: np.ndarray


#: ``items.parquet`` columns of label lists, read as Python lists (the others as pandas reads them).
_LIST_COLUMNS = ("labels", "tags", "labels_dataset")


def _read_items(path: Path) -> pd.DataFrame:
    """``items.parquet`` with :data:`_LIST_COLUMNS` as lists of str (the others as pandas reads them)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    df = table.drop_columns([c for c in _LIST_COLUMNS if c in table.column_names]).to_pandas()
    for col in _LIST_COLUMNS:
        if col in table.column_names:
            df.insert(table.column_names.index(col), col, _shared_lists(table.column(col).combine_chunks(), col))
    return df


def _shared_lists(lists: pa.ListArray, name: str) -> np.ndarray:
    """An arrow list<string> column as an object array of Python lists, one list object per
    distinct value shared by the rows that have it (a label column of 1M rows holds a few hundred
    distinct lists: built in about 0.3 s where a list per row takes seconds). Rows' lists are
    read-only by contract: copy one before changing it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if lists.null_count:
        raise ValueError(f"column {name!r} has missing lists")
    if lists.type != pa.list_(pa.string()):  # e.g. list<null> when every list is empty
        lists = lists.cast(pa.list_(pa.string()))
    length = pc.cast(pc.list_value_length(lists), pa.string())
    key = pc.binary_join_element_wise(length, pc.binary_join(lists, "\x1f"), "\x1e")  # [] and [""] differ
    codes = pc.dictionary_encode(key).indices.to_numpy(zero_copy_only=False)
    _, first = np.unique(codes, return_index=True)  # a row of each distinct value, in code order
    cuts = lists.offsets.to_numpy()
    flat = lists.values
    distinct = np.empty(len(first), dtype=object)
    distinct[:] = [flat[cuts[r] : cuts[r + 1]].to_pylist() for r in first]
    return distinct[codes]


def _ranked(names: list[str], p: np.ndarray, top: int) -> list[tuple[str, float]]:
    order = np.argsort(-p)[:top]
    return [(names[j], float(p[j])) for j in order]


class Workspace:
    """A fitted workspace. Arrays and models load lazily, on first use, once (thread-safe).

    Raises (on open):
        FileNotFoundError: no ``manifest.json``.
        WorkspaceError: a damaged or foreign manifest (names the file and what to do).
    """

    def __init__(
        self, path: str | Path, device: str = "cpu", runtime: str | None = None, data_root: str | Path | None = None
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        self.data_root = Path(data_root).expanduser().resolve() if data_root else None
        self.manifest: dict = read_manifest(self.path)
        self.config: FitConfig = self._read_config()
        self.source: PhraseSource = stored_source(self.config.phrase_source)
        self.device = device
        self.runtime = runtime or self.config.runtime  # the backbone's runtime (core.runtimes); default: the fit's
        self._label_terms: dict[tuple, list[np.ndarray]] = {}
        self._lock = threading.RLock()

    def _read_config(self) -> FitConfig:
        stored = self.manifest["config"]
        missing = [k for k in _REQUIRED_CONFIG if not isinstance(stored, dict) or k not in stored]
        if missing:
            raise WorkspaceError(f"{self.path / 'manifest.json'}: config lacks {', '.join(missing)}; {refit_hint(self.path)}")
        try:
            return FitConfig.from_dict(stored)
        except ValueError as exc:
            raise WorkspaceError(f"{self.path / 'manifest.json'}: {exc}; {refit_hint(self.path)}") from None

    def _load(self, file: str, load: Callable[[Path], object]) -> object:
        """Load one artifact, turning a damaged file into a clear error."""
        path = self.path / file
        if not path.exists():
            raise WorkspaceError(f"{path} is missing: the workspace is incomplete; {refit_hint(self.path)}")
        try:
            return load(path)
        except Exception as exc:  # safetensors, JSON and torch each raise their own types
            raise WorkspaceError(f"{path} is damaged ({type(exc).__name__}: {exc}); {refit_hint(self.path)}") from None

    def _once(self, name: str, make: Callable[[], object]) -> object:
        """A lazily built attribute, built once even when Streamlit's threads ask at the same time."""
        with self._lock:
            if name not in self.__dict__:
                self.__dict__[name] = make()
            return self.__dict__[name]

    # --- metadata ----------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        """The label names, in the column order of every probability matrix."""
        return list(self.manifest["labels"])

    @property
    def multilabel(self) -> bool:
        return bool(self.manifest["dataset"]["multilabel"])

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Test metrics per model (``top1``, ``top5``, ``macro_f1`` or the multi-label ones); NaN
        where undefined (no test image of a known label): ``manifest.json`` holds ``null`` there
        (:mod:`core.jsonio`), workspaces written before it ``NaN``."""
        return {m: {k: np.nan if v is None else v for k, v in d.items()} for m, d in self.manifest["metrics"].items()}

    @property
    def models(self) -> list[str]:
        """The models this workspace has test metrics for, in display order (:data:`core.config.ALL_MODELS`)."""
        return [m for m in ALL_MODELS if m in self.metrics]

    @property
    def crossfit_models(self) -> list[str]:
        """Models whose :attr:`predictions` on their own training rows are cross-fitted (what a
        model that never saw the row predicts); the other models' are in-sample there. Empty for
        workspaces fitted before cross-fitting."""
        return list(self.manifest.get("crossfit", []))

    @property
    def items(self) -> pd.DataFrame:
        """One row per image (see the layout above); row ``i`` is row ``i`` of every array."""

        def read() -> pd.DataFrame:
            df = self._load("items.parquet", _read_items)
            if self._relocating:
                df["path"] = self._relocated(list(df["path"]))
            return df

        return self._once("_items", read)  # type: ignore[return-value]

    @property
    def _relocating(self) -> bool:
        """Whether image paths are read under ``data_root``: the dataset folder the fit read has
        moved (a clone elsewhere, a renamed folder); paths are stored absolute, as the fit found them."""
        root = Path(self.manifest["dataset"].get("root") or "")
        return not (self.data_root is None or self.data_root == root or root.exists() or not root.is_absolute())

    @property
    def _item_index(self) -> pd.Index:
        """Item id -> row (ids are unique: the manifest reader drops duplicate images)."""
        return self._once("_item_rows", lambda: pd.Index(self.items["item"].astype(str)))  # type: ignore[return-value]

    def row_of(self, item: str) -> int | None:
        """Row of an item id (the image path as written in the manifest), or ``None``."""
        index = self._item_index
        return int(index.get_loc(item)) if item in index else None

    def rows_of(self, items: list[str]) -> np.ndarray:
        """Rows of item ids (-1 for an unknown one)."""
        return self._item_index.get_indexer([str(i) for i in items])

    def _relocated(self, paths: list[str]) -> list[str]:
        """``paths`` moved under ``data_root`` (see :attr:`_relocating`)."""
        root = Path(self.manifest["dataset"].get("root") or "")
        out = []
        for p in paths:
            try:
                out.append(str(self.data_root / Path(p).relative_to(root)))
            except ValueError:  # not under the dataset folder: kept as it was
                out.append(p)
        return out

    @property
    def issues(self) -> list[DatasetIssue]:
        import json

        return self._once(  # type: ignore[return-value]
            "_issues", lambda: [DatasetIssue(**d) for d in self._load("issues.json", lambda p: json.loads(p.read_text()))]
        )

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The raw ``arrays.safetensors`` (prefer the typed accessors below): read-only views into a
        memory map of the file (:mod:`core.safetensors_mmap`), read from disk where touched."""
        return self._once("_arrays", lambda: self._load("arrays.safetensors", load_mmap))  # type: ignore[return-value]

    @property
    def predictions(self) -> dict[str, np.ndarray]:
        """Every row's probabilities per model, ``(N, len(labels))`` each (read-only, memory-mapped)."""
        return self._once("_predictions", lambda: self._load("predictions.safetensors", load_mmap))  # type: ignore[return-value]

    @property
    def phrases(self) -> Sequence[str]:
        """The phrase texts that ``phrase_ids`` index (a generator's are read from its file where indexed;
        ``corpus+imagenet``: the vocabulary's, then the manifest's ``extra_phrases``, or, fitted before
        those, every phrase listed in ``phrases``)."""
        if self.manifest.get("phrases"):
            return self._once("_phrases", lambda: list(self.manifest["phrases"]))  # type: ignore[return-value]
        if self.manifest.get("extra_phrases"):
            from core.phrases.combined import ChainedPhrases

            vocab, extra = self.generator.vocab.phrases, self.manifest["extra_phrases"]
            return self._once("_phrases", lambda: ChainedPhrases(vocab, extra))  # type: ignore[return-value]
        return self.generator.vocab.phrases

    # --- typed per-image arrays -----------------------------------------------------------
    @property
    def visual(self) -> np.ndarray:
        """(N, D) raw features of the classifier backbone."""
        return self.arrays["visual"]

    @property
    def text_vectors(self) -> np.ndarray:
        """(N, T) text vector of each image's top phrases (T doubles for ``corpus+imagenet``)."""
        return self.arrays["text_vec"]

    @property
    def phrase_ids(self) -> np.ndarray:
        """(N, k) ids into :attr:`phrases`, best first (-1 = none)."""
        return self.arrays["phrase_ids"]

    @property
    def phrase_scores(self) -> np.ndarray:
        """(N, k) scores of :attr:`phrase_ids`."""
        return self.arrays["phrase_scores"]

    @property
    def phrase_embeddings(self) -> np.ndarray | PhraseVectors:
        """(P, T) text embedding of every phrase, read by phrase id: the stored array, or, for a fit
        past ``FitConfig.sample_above`` phrases, a :class:`~core.text.PhraseVectors` over the stored
        rows of the phrases the images use, which embeds any other phrase when first read (with the
        text model, through the text-embedding cache)."""
        a = self.arrays
        if "phrase_embeddings" in a:
            return a["phrase_embeddings"]
        return self._once(  # type: ignore[return-value]
            "_phrase_vectors",
            lambda: PhraseVectors(a["phrase_embedding_ids"], a["phrase_embedding_rows"], self.phrases, self._embed_phrases),
        )

    def _embed_phrases(self, texts: list[str]) -> np.ndarray:
        """Text embeddings of phrases the fit did not store (one caller at a time: the cache is written)."""
        from core.text import embed_texts

        with self._lock:
            return embed_texts(texts, self.text_encoder, self.config.cache_root())

    @property
    def coembedding(self) -> np.ndarray | None:
        """(N, d) co-embedding of every image by the full phrase generator (maps, neighbours,
        zero-shot); ``None`` for the ImageNet phrase source."""
        return self.arrays.get("bottleneck")

    @property
    def coembedding_crossfit(self) -> np.ndarray | None:
        """(N, d) co-embedding by the generator that produced each row's phrases (cross-fitted)."""
        return self.arrays.get("bottleneck_crossfit")

    @property
    def caption_vectors(self) -> np.ndarray | None:
        """(N, T) embedding of each image's caption and tags (zeros where it has none; read by the caption
        models' retrain and the label-error queue); ``None`` when no row has a caption."""
        return self.arrays.get("caption_vec")

    @property
    def maps(self) -> ProjectionMaps | None:
        """The 2-D maps of images and prototypes; ``None`` if not computed."""
        a = self.arrays
        if "map_images" not in a:
            return None
        return ProjectionMaps(a["map_images"], a["map_prototypes"], a["map_prototype_ids"])

    @property
    def image_arrays(self) -> ImageArrays:
        """What every model's input is built from (:func:`core.forward.model_inputs`)."""
        return ImageArrays(self.visual, self.text_vectors)

    # --- models ------------------------------------------------------------------------
    @property
    def generator(self):
        """The phrase generator (:class:`core.phrases.generator.PhraseGenerator`)."""
        from core.phrases.generator import PhraseGenerator

        if not self.source.has_generator:
            raise ValueError("this workspace uses the ImageNet phrase source: it has no phrase generator or co-embedding")
        return self._once("_generator", lambda: self._load("generator", PhraseGenerator.load))

    @property
    def classifier_models(self) -> list[str]:
        """Names of the classifier heads stored in ``classifiers/`` (registered inputs only)."""
        folder = self.path / "classifiers"
        return [m for m in MODEL_INPUTS if (folder / f"{m}.safetensors").is_file()]

    @property
    def classifiers(self) -> dict:
        """``{model: Classifier}`` of every stored head."""
        from core.classifiers import Classifier

        def load() -> dict:
            missing = [m for m in CLASSIFIER_MODELS if m not in self.classifier_models]
            if missing:
                raise WorkspaceError(f"{self.path / 'classifiers'} lacks {', '.join(missing)}; {refit_hint(self.path)}")
            models = self.classifier_models
            return {m: self._load(f"classifiers/{m}.safetensors", lambda p, m=m: Classifier.load(p.parent, m)) for m in models}

        return self._once("_classifiers", load)  # type: ignore[return-value]

    @property
    def backbone(self):
        from core.backbones import create_backbone

        cfg = self.config
        return self._once(
            "_backbone",
            lambda: create_backbone(cfg.backbone, weights=cfg.backbone_weights, device=self.device, runtime=self.runtime),
        )

    @property
    def generator_backbone(self):
        from core.backbones import create_backbone

        name = self.config.generator_backbone
        return self._once(
            "_generator_backbone", lambda: create_backbone(name, device=self.device, runtime=self.runtime) if name else None
        )

    @property
    def text_encoder(self):
        from core.text import TextEncoder

        return self._once("_text_encoder", lambda: TextEncoder(self.config.text_model, device=self.device))

    @property
    def zeroshot_mapper(self):
        from core.zeroshot import TextToCoEmbedding

        return self._once(
            "_zeroshot_mapper", lambda: self._load("zeroshot.safetensors", lambda p: TextToCoEmbedding.load(str(p)))
        )

    # --- per-image views ---------------------------------------------------------------
    def item_phrases(self, row: int, k: int = 10) -> list[tuple[str, float]]:
        ids, scores = self.phrase_ids[row], self.phrase_scores[row]
        return [(self.phrases[j], float(s)) for j, s in zip(ids[:k], scores[:k]) if j >= 0]

    def item_prediction(self, row: int, top: int = 5) -> Prediction:
        p = self.predictions
        return Prediction(
            image=str(self.items.at[row, "item"]),
            phrases=self.item_phrases(row),
            rankings={m: _ranked(self.labels, p[m][row], top) for m in p},
        )

    # --- the forward path on new images ---------------------------------------------------
    def embed(self, images: list[str | Path | bytes]) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """Features of new images (paths or bytes): ``(classifier features, generator input, errors)``,
        errors mapping index -> reason."""
        from core.data.images import ImageError

        second = self.generator_backbone
        feats = np.zeros((len(images), self.backbone.dim), dtype=np.float32)
        extra = np.zeros((len(images), second.dim), dtype=np.float32) if second is not None else None
        errors: dict[int, str] = {}
        for start in range(0, len(images), EMBED_BATCH):  # decode one batch at a time: memory stays bounded
            decoded = {}
            for i in range(start, min(start + EMBED_BATCH, len(images))):
                try:
                    decoded[i] = _decode(images[i])
                except ImageError as exc:
                    errors[i] = str(exc)
            if decoded:
                rows = sorted(decoded)
                feats[rows] = _embed_decoded(self.backbone, [decoded[i] for i in rows])
                if extra is not None:
                    extra[rows] = _embed_decoded(second, [decoded[i] for i in rows])
        return feats, generator_input(feats, extra), errors

    def phrase_outputs(
        self, feats: np.ndarray, gen_in: np.ndarray, k: int = 10
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """(co-embedding or None, phrase ids, scores) of new images from :meth:`embed`'s outputs."""
        generator = self.generator if self.source.has_generator else None
        return self.source.apply(generator, self.backbone, feats, gen_in, k)

    def text_vectors_of(self, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Text vectors of images from their phrase ids and scores, as at fit time."""
        from core.phrases.combined import image_text_vectors

        cfg = self.config
        return image_text_vectors(
            self.phrase_embeddings, ids, scores, top_k=cfg.top_k, weighting=cfg.weighting, combined=self.source.combined
        )

    def model_probabilities(self, arrays: ImageArrays, coembedding: np.ndarray | None) -> dict[str, np.ndarray]:
        """Every model's probabilities for images given their arrays (and co-embedding, for zero-shot)."""
        from core.zeroshot import scores_to_proba

        inputs = model_inputs(arrays, self.classifiers)
        probs = {m: self.classifiers[m].predict_proba(x) for m, x in inputs.items()}
        labels = [(n, []) for n in self.labels]
        probs["zeroshot"] = scores_to_proba(
            self.zeroshot_scores(labels, embeddings=coembedding, text_vectors=arrays.text_vectors)
        )
        return {m: probs[m] for m in dict.fromkeys([*ALL_MODELS, *probs]) if m in probs}

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
        return zero_shot_scores(embeddings if self.source.has_generator else text_vectors, terms)  # type: ignore[arg-type]

    def zeroshot_rows(self, labels: list[tuple[str, list[str]]], rows: np.ndarray) -> np.ndarray:
        """(len(rows), L) zero-shot probabilities of workspace rows among typed ``labels``."""
        from core.zeroshot import scores_to_proba

        if self.source.has_generator:  # only the array that is scored is read
            scores = self.zeroshot_scores(labels, embeddings=self.coembedding[rows])  # type: ignore[index]
        else:
            scores = self.zeroshot_scores(labels, text_vectors=self.text_vectors[rows])
        return scores_to_proba(scores)

    def label_term_embeddings(self, labels: list[tuple[str, list[str]]]) -> list[np.ndarray]:
        """Embeddings of every label's terms, cached per label spec (labels repeat on every image)."""
        from core.zeroshot import label_embeddings, text_label_embeddings

        key = tuple((name, tuple(syns)) for name, syns in labels)
        with self._lock:
            cache = self._label_terms
            if key not in cache:
                if not self.source.has_generator:
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

    def predict(self, images: list[str | Path | bytes], names: list[str] | None = None, top: int = 5) -> list[Prediction]:
        """Run the whole pipeline on new images.

        Args:
            images: paths or encoded bytes.
            names: shown names (default: the paths, or ``image N`` for bytes).
            top: labels kept per model.

        Returns:
            One :class:`Prediction` per image, in order; images that could not be decoded have
            ``error`` set.
        """
        feats, gen_in, errors = self.embed(images)
        emb, ids, scores = self.phrase_outputs(feats, gen_in)
        probs = self.model_probabilities(ImageArrays(feats, self.text_vectors_of(ids, scores)), emb)
        names = names or [str(im) if not isinstance(im, bytes) else f"image {i}" for i, im in enumerate(images)]
        out: list[Prediction] = []
        for i in range(len(images)):
            if i in errors:
                out.append(Prediction(image=names[i], error=errors[i]))
                continue
            out.append(
                Prediction(
                    image=names[i],
                    phrases=[(self.phrases[j], float(s)) for j, s in zip(ids[i], scores[i]) if j >= 0],
                    rankings={m: _ranked(self.labels, probs[m][i], top) for m in probs},
                    features=feats[i],
                )
            )
        return out


EMBED_BATCH = 32  # images decoded, then embedded, together


def _decode(image: str | Path | bytes):
    from core.data.images import load_image

    return load_image(image, max_side=1024)


def _embed_decoded(backbone, decoded: list) -> np.ndarray:
    """Features of a batch of decoded images."""
    return backbone.embed_batch(np.stack([backbone.preprocess(im) for im in decoded]))


def open_workspace(
    path: str | Path, device: str = "cpu", runtime: str | None = None, data_root: str | Path | None = None
) -> Workspace:
    """Open a fitted workspace folder (fast: arrays and models load on first use); ``runtime``
    overrides the fit's backbone runtime; ``data_root`` is where the dataset's folder is now, when
    it has moved since the fit (images are then read from there).

    Raises:
        FileNotFoundError: not a fitted workspace.
        WorkspaceError: a damaged workspace, or one written by another format version.
    """
    return Workspace(path, device=device, runtime=runtime, data_root=data_root)
