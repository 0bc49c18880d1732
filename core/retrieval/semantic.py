"""Semantic retrieval on a workspace: fit the embeddings, search by image and/or text, evaluate.

Stored under ``WS/retrieval/``: ``config.json`` (settings and evaluation), the (V) and (V+T)
embeddings (safetensors + JSON), the tf-idf vocabulary (JSON) and the database embeddings of
every workspace image (safetensors). The database holds images only; text enters through the
query.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from core.features import default_cache_dir
from core.progress import ProgressFn, silent
from core.retrieval.evaluate import auc, ranking_curves
from core.retrieval.model import RetrievalConfig, SemanticEmbedding
from core.retrieval.tfidf import TfIdf, image_texts
from core.safetensors_mmap import load_mmap
from core.vector_index import NeighbourSearch, neighbour_index, visual_index
from core.vectors import l2n
from core.workspace import Workspace
from core.workspace_files import addon_folder

FOLDER = "retrieval"
TEXT_ENCODERS = ("tfidf", "minilm")
METHODS = ("random", "visual_baseline", "semantic_v", "semantic_vt_query_v", "semantic_vt_query_vt")


@dataclass
class SemanticSearch:
    """A fitted semantic retrieval for one workspace (what :func:`open_retrieval` returns)."""

    ws: Workspace
    v: SemanticEmbedding
    vt: SemanticEmbedding
    tfidf: TfIdf
    text_encoder: str
    database: np.ndarray  # (N, D) (V+T) embeddings of every workspace image
    evaluation: dict

    def text_vectors(self, texts: list[str]) -> np.ndarray:
        """The text side's input for texts: tf-idf rows or sentence-transformers embeddings."""
        if self.text_encoder == "tfidf":
            return self.tfidf.transform(texts).toarray()
        return self.ws.text_encoder.encode(texts)

    def query(self, *, features: np.ndarray | None = None, text: str | None = None, text_weight: float = 1.0) -> np.ndarray:
        """A query embedding from image features, a text, or both (``phi + text_weight * theta``,
        re-normalised; a larger weight lets the text move an image query further).

        Raises:
            ValueError: nothing to query with, or a text with no known word (tf-idf encoder).
        """
        parts = []
        if features is not None:
            parts.append(self.vt.embed_visual(np.atleast_2d(features))[0])
        if text and text.strip():
            vec = self.text_vectors([text.strip()])
            if not np.abs(vec).sum():
                raise ValueError(f"no word of {text!r} is in the retrieval vocabulary")
            parts.append(text_weight * self.vt.embed_text(vec)[0])
        if not parts:
            raise ValueError("give an image, a text, or both")
        return l2n(np.sum(parts, axis=0, keepdims=True))[0]

    def search(
        self,
        *,
        features: np.ndarray | None = None,
        text: str | None = None,
        text_weight: float = 1.0,
        k: int = 12,
        exclude: int | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` workspace images nearest the query (rows, cosine), ``exclude`` left out."""
        query = self.query(features=features, text=text, text_weight=text_weight)
        return self._database_index.top(query, k, exclude) if k > 0 else []

    @cached_property
    def _database_index(self) -> NeighbourSearch:
        return neighbour_index(self.database, reduce=False)  # 256-d rows: scanned exactly where they lie

    @cached_property
    def _raw_index(self) -> NeighbourSearch:
        return visual_index(self.ws.visual, self.ws.path)  # Explore's neighbour index (cached in the workspace above 100k images)

    def raw_search(self, features: np.ndarray, k: int = 12, exclude: int | None = None) -> list[tuple[int, float]]:
        """The raw backbone features' ranking (the visual baseline), for comparison."""
        return self._raw_index.top(l2n(np.atleast_2d(features))[0], k, exclude) if k > 0 else []


def _texts(ws: Workspace) -> list[str]:
    return image_texts(list(ws.items["text"]), list(ws.items["tags"]))


def fit_retrieval(
    ws: Workspace,
    config: RetrievalConfig | None = None,
    *,
    text_encoder: str = "tfidf",
    r_max: int = 100,
    progress: ProgressFn = silent,
) -> dict:
    """Train the (V) and (V+T) semantic embeddings on the training split, evaluate them on the
    test split, and store everything under ``WS/retrieval/`` (written whole under the workspace's
    lock, then swapped in: :func:`core.workspace_files.addon_folder`).

    Args:
        ws: a fitted workspace (its visual features are reused; nothing is re-embedded).
        config: embedding settings (``joint`` is set per model).
        text_encoder: the text side's input: ``tfidf`` (the paper) or ``minilm``
            (sentence-transformers; any word of a query then has a vector).
        r_max: deepest rank of the evaluation curves.

    Returns:
        The evaluation (see :func:`evaluate_retrieval`).

    Raises:
        WorkspaceBusyError: another process is writing the workspace.
    """
    if text_encoder not in TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder {text_encoder!r}; one of {TEXT_ENCODERS}")
    cfg = config or RetrievalConfig()
    with addon_folder(ws.path, FOLDER) as folder:  # under the lock; the previous models stay until these are complete
        return _fit_into(folder, ws, cfg, text_encoder, r_max, progress)


def _fit_into(folder: Path, ws: Workspace, cfg: RetrievalConfig, text_encoder: str, r_max: int, progress: ProgressFn) -> dict:
    """Fit, save into ``folder`` and evaluate the retrieval models (see :func:`fit_retrieval`)."""
    texts = _texts(ws)
    split = ws.items["split"].to_numpy()
    train = np.flatnonzero((split != "test") & np.array([bool(t) for t in texts]))
    tfidf = TfIdf.fit([texts[i] for i in train])
    train_rows = tfidf.transform([texts[i] for i in train])
    if text_encoder == "tfidf":
        text_in = train_rows.toarray()
    else:
        from core.text import embed_texts

        text_in = embed_texts([texts[i] for i in train], ws.text_encoder, default_cache_dir(), progress)
    visual = ws.visual
    v = SemanticEmbedding.fit(
        visual[train], text_in, train_rows, replace(cfg, joint=False), progress=lambda s, d, n: progress(f"{s} (V)", d, n)
    )
    vt = SemanticEmbedding.fit(
        visual[train], text_in, train_rows, replace(cfg, joint=True), progress=lambda s, d, n: progress(f"{s} (V+T)", d, n)
    )
    v.save(folder, "v")
    vt.save(folder, "vt")
    tfidf.save(folder / "tfidf.json")
    database = vt.embed_visual(visual)
    save_file({"database": database}, str(folder / "database.safetensors"))
    search = SemanticSearch(ws, v, vt, tfidf, text_encoder, database, {})
    evaluation = evaluate_retrieval(search, r_max=r_max)
    meta = {"config": asdict(cfg), "text_encoder": text_encoder, "n_train": len(train), "evaluation": evaluation}
    (folder / "config.json").write_text(json.dumps(meta, indent=2))
    return evaluation


def evaluate_retrieval(search: SemanticSearch, *, r_max: int = 100, seed: int = 0) -> dict:
    """NDCG and PCC curves and AUCs on the test split (queries and database: the test images;
    ground truth: tf-idf of their texts, vocabulary fitted on every text) for each of
    :data:`METHODS`.

    Returns:
        ``{method: {"ndcg_auc", "pcc_auc", "ndcg", "pcc"}}`` plus ``n_queries`` and ``r_max``.
    """
    ws = search.ws
    texts = _texts(ws)
    test = np.flatnonzero((ws.items["split"].to_numpy() == "test") & np.array([bool(t) for t in texts]))
    if len(test) < 3:
        raise ValueError("semantic retrieval evaluation needs at least 3 test images with text")
    gt_rows = TfIdf.fit(texts, min_df=1, max_df=1.0).transform([texts[i] for i in test])
    truth = (gt_rows @ gt_rows.T).toarray().astype(np.float64)
    np.fill_diagonal(truth, np.nan)
    visual = ws.visual[test]
    raw = l2n(visual)
    ev, evt = search.v.embed_visual(visual), search.vt.embed_visual(visual)
    query_vt = l2n(evt + search.vt.embed_text(search.text_vectors([texts[i] for i in test])))
    scores = {
        "random": np.random.default_rng(seed).random((len(test), len(test))),
        "visual_baseline": raw @ raw.T,
        "semantic_v": ev @ ev.T,
        "semantic_vt_query_v": evt @ evt.T,
        "semantic_vt_query_vt": query_vt @ evt.T,
    }
    out: dict = {"n_queries": len(test), "r_max": r_max}
    for name in METHODS:
        ndcg, pcc = ranking_curves(scores[name], truth, r_max)
        out[name] = {
            "ndcg_auc": auc(ndcg),
            "pcc_auc": auc(pcc),
            "ndcg": [round(float(x), 5) for x in ndcg],
            "pcc": [round(float(x), 5) for x in pcc],
        }
    return out


def has_retrieval(ws: Workspace) -> bool:
    return (ws.path / FOLDER / "config.json").is_file()


def open_retrieval(ws: Workspace) -> SemanticSearch:
    """The fitted semantic retrieval of a workspace.

    Raises:
        FileNotFoundError: not fitted yet (``python -m core retrieval fit --workspace WS``).
    """
    folder = ws.path / FOLDER
    if not has_retrieval(ws):
        raise FileNotFoundError(f"no semantic retrieval in {ws.path}: run `python -m core retrieval fit --workspace {ws.path}`")
    meta = json.loads((folder / "config.json").read_text())
    return SemanticSearch(
        ws,
        SemanticEmbedding.load(folder, "v"),
        SemanticEmbedding.load(folder, "vt"),
        TfIdf.load(folder / "tfidf.json"),
        meta["text_encoder"],
        load_mmap(folder / "database.safetensors")["database"],
        meta["evaluation"],
    )
