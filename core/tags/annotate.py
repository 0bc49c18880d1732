"""Tag-neighbourhood annotation on a workspace: fit, evaluate (Table 1 of Tesan et al.), reopen.

Neighbours come from the training images (never the image itself); every image, test images
included, has its tags at prediction time (they are metadata, not labels). Stored under
``WS/tags/``: ``config.json`` (settings and evaluation), one model per (kind, m, M)
(safetensors + JSON), and ``neighbours.safetensors`` (neighbour ids and distances, tag vectors).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from core.features import default_cache_dir
from core.metrics import evaluate
from core.progress import ProgressFn, silent
from core.safetensors_mmap import load_mmap
from core.tags.models import TagModel, TagModelConfig
from core.tags.neighbours import binary_tags, embedded_tags, nearest, normalize_tags, tag_vocabulary
from core.text import embed_texts
from core.training import label_targets
from core.vectors import l2n
from core.workspace import Workspace
from core.workspace_files import addon_folder

FOLDER = "tags"
SETTINGS = ((3, 6), (6, 12), (12, 24))


def _name(kind: str, m: int, big_m: int) -> str:
    return "visual_only" if kind == "visual_only" else f"{kind}_{m}_{big_m}"


def _one_hot(y: np.ndarray, n: int, multilabel: bool) -> np.ndarray:
    if multilabel:
        return y
    out = np.zeros((len(y), n), dtype=np.float32)
    ok = y >= 0
    out[np.flatnonzero(ok), y[ok]] = 1.0
    return out


def tag_vectors(ws: Workspace, tag_lists: list[list[str]], progress: ProgressFn = silent) -> np.ndarray:
    """Embedded tags of each image (sentence-transformers, cached by tag)."""
    return embedded_tags(tag_lists, lambda ts: embed_texts(ts, ws.text_encoder, default_cache_dir(), progress))


def tag_neighbours(
    ws: Workspace, tag_lists: list[list[str]], vectors: np.ndarray, *, metric: str, big_m: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, distances) of each image's ``big_m`` nearest training images by tags (workspace rows)."""
    pool = np.flatnonzero(ws.items["split"].to_numpy() != "test")
    if metric == "embedding":
        query, pool_x = vectors, vectors[pool]
    else:
        vocab = tag_vocabulary([tag_lists[i] for i in pool])
        query = binary_tags(tag_lists, vocab)
        pool_x = query[pool]
    own = np.full(len(tag_lists), -1, dtype=np.int64)
    own[pool] = np.arange(len(pool))
    ids, dist = nearest(query, pool_x, big_m, metric=metric, self_index=own)
    return pool[ids], dist


def fit_tag_models(
    ws: Workspace,
    *,
    metric: str = "embedding",
    settings: tuple[tuple[int, int], ...] = SETTINGS,
    config: TagModelConfig | None = None,
    progress: ProgressFn = silent,
) -> dict:
    """Fit visual-only, LTN and LTwin for every (m, M) in ``settings``, evaluate them on the test
    split and store them under ``WS/tags/`` (written whole under the workspace's lock, then
    swapped in: :func:`core.workspace_files.addon_folder`).

    Args:
        ws: a fitted workspace whose images carry tags (the ``tags`` column).
        metric: neighbourhoods by ``embedding`` (cosine of mean tag embeddings) or ``jaccard``.
        settings: (m, M) pairs.
        config: training settings shared by every model (kind, m, M are set per model).

    Returns:
        The evaluation: ``{"settings": {"m,M": {kind: metrics}}, kind: metrics at the last (largest) setting}``.

    Raises:
        ValueError: the dataset has no tags.
        WorkspaceBusyError: another process is writing the workspace.
    """
    tag_lists = [normalize_tags(t) for t in ws.items["tags"]]
    if not any(tag_lists):
        raise ValueError("this dataset has no tags: tag neighbourhoods need the 'tags' column")
    with addon_folder(ws.path, FOLDER) as folder:  # under the lock; the previous models stay until these are complete
        return _fit_into(folder, ws, tag_lists, metric, settings, config or TagModelConfig(), progress)


def _fit_into(
    folder: Path,
    ws: Workspace,
    tag_lists: list[list[str]],
    metric: str,
    settings: tuple[tuple[int, int], ...],
    base: TagModelConfig,
    progress: ProgressFn,
) -> dict:
    """Fit, save into ``folder`` and evaluate the tag models (see :func:`fit_tag_models`)."""
    vectors = tag_vectors(ws, tag_lists, progress)
    big = max(bm for _, bm in settings)
    ids, dist = tag_neighbours(ws, tag_lists, vectors, metric=metric, big_m=big)
    visual = l2n(ws.visual)
    y = label_targets([list(v) for v in ws.items["labels"]], ws.labels, ws.multilabel)
    has = (y.sum(1) > 0) if ws.multilabel else (y >= 0)
    train = np.flatnonzero(ws.items["labelled"].to_numpy() & has)
    test = np.flatnonzero(ws.items["is_test"].to_numpy())
    truth = _one_hot(y[test], len(ws.labels), ws.multilabel)
    plan = [("visual_only", *settings[-1])] + [(k, m, bm) for m, bm in settings for k in ("ltn", "ltwin")]
    results: dict[str, dict] = {}
    for kind, m, bm in plan:
        cfg = replace(base, kind=kind, m=m, big_m=bm)
        model = TagModel.fit(visual, vectors, ids, train, y, len(ws.labels), ws.multilabel, cfg, progress=progress)
        model.save(folder, _name(kind, m, bm))
        proba = model.predict_proba(visual, vectors, ids, test)
        results[_name(kind, m, bm)] = evaluate(truth, proba, multilabel=True)
    evaluation: dict = {"settings": {}}
    for m, bm in settings:
        evaluation["settings"][f"{m},{bm}"] = {
            "visual_only": results["visual_only"],
            "ltn": results[_name("ltn", m, bm)],
            "ltwin": results[_name("ltwin", m, bm)],
        }
    evaluation.update(evaluation["settings"][f"{settings[-1][0]},{settings[-1][1]}"])  # the largest, as in Table 1
    save_file({"ids": ids, "distances": dist, "tag_vectors": vectors}, str(folder / "neighbours.safetensors"))
    meta = {"metric": metric, "settings": [list(s) for s in settings], "n_train": len(train), "evaluation": evaluation}
    (folder / "config.json").write_text(json.dumps(meta, indent=2))
    return evaluation


def has_tag_models(ws: Workspace) -> bool:
    return (ws.path / FOLDER / "config.json").is_file()


@dataclass
class TagNeighbourhoods:
    """Fitted tag-neighbourhood models of a workspace, for browsing one image at a time."""

    ws: Workspace
    ids: np.ndarray
    distances: np.ndarray
    vectors: np.ndarray
    models: dict[str, TagModel]
    meta: dict

    def neighbourhood(self, row: int, m: int) -> list[tuple[int, float]]:
        """The ``m`` nearest training images of ``row`` by tags, nearest first."""
        return [(int(i), float(d)) for i, d in zip(self.ids[row, :m], self.distances[row, :m], strict=True)]

    def predict(self, row: int, top: int = 3) -> dict[str, list[tuple[str, float]]]:
        """Top labels of each model (visual-only, LTN, LTwin) for one image (reads the rows of the
        image and its neighbours only: the same numbers as over every row)."""
        need = np.unique(np.append(self.ids[row], row))  # sorted rows the models read
        visual, vectors = l2n(self.ws.visual[need]), np.ascontiguousarray(self.vectors[need])
        at = np.searchsorted(need, [row])  # the image's position among them
        hood = np.zeros((len(need), self.ids.shape[1]), dtype=np.int64)
        hood[at] = np.searchsorted(need, self.ids[row])  # its neighbours, as positions
        out = {}
        for kind, model in self.models.items():
            p = model.predict_proba(visual, vectors, hood, at)[0]
            order = np.argsort(-p)[:top]
            out[kind] = [(self.ws.labels[j], float(p[j])) for j in order]
        return out


def fitted_settings(ws: Workspace) -> list[tuple[int, int]]:
    """The (m, M) settings fitted in this workspace."""
    meta = json.loads((ws.path / FOLDER / "config.json").read_text())
    return [(int(m), int(bm)) for m, bm in meta["settings"]]


def open_tag_models(ws: Workspace, setting: tuple[int, int] | None = None) -> TagNeighbourhoods:
    """Reopen the models of one fitted (m, M) setting (default: the largest).

    Raises:
        FileNotFoundError: not fitted (``python -m core tags fit --workspace WS``).
    """
    folder = ws.path / FOLDER
    if not has_tag_models(ws):
        raise FileNotFoundError(f"no tag-neighbourhood models in {ws.path}: run `python -m core tags fit --workspace {ws.path}`")
    meta = json.loads((folder / "config.json").read_text())
    arrays = load_mmap(folder / "neighbours.safetensors")
    m, bm = setting or fitted_settings(ws)[-1]
    if [m, bm] not in meta["settings"]:
        raise ValueError(f"(m, M) = ({m}, {bm}) was not fitted; fitted: {meta['settings']}")
    models = {
        "visual_only": TagModel.load(folder, "visual_only"),
        "ltn": TagModel.load(folder, _name("ltn", m, bm)),
        "ltwin": TagModel.load(folder, _name("ltwin", m, bm)),
    }
    return TagNeighbourhoods(ws, arrays["ids"], arrays["distances"], arrays["tag_vectors"], models, meta)
