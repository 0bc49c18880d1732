"""The prototype map: 2-D UMAP positions of phrase prototypes and images (computed at fit
time, :mod:`core.projection`), with what the app colours, samples and selects by."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.explore import Explorer
from core.vectors import l2n, top_k

#: Points per layer above which the map shows a sample (WebGL scatter stays smooth below).
MAX_POINTS = 50_000


def map_sample(explorer: Explorer) -> tuple[int, int] | None:
    """``(mapped, of)`` when the fit laid out a sample of the distinct prototypes (above
    ``FitConfig.sample_above``: the map, its highlights and its selections then cover only the
    ``mapped`` ones); ``None`` when the map holds every one (workspaces fitted before the sample
    hold every one)."""
    counts = explorer.ws.manifest.get("map_prototypes") or {}
    mapped, of = counts.get("mapped"), counts.get("of")
    return (int(mapped), int(of)) if mapped is not None and of is not None and mapped < of else None


def has_map(explorer: Explorer) -> bool:
    """Whether the workspace has a prototype map (not for the ImageNet source or ``projections=False``)."""
    return explorer.ws.maps is not None


def _label_centroids(explorer: Explorer) -> np.ndarray:
    """(L, d) mean co-embedding of each label's labelled training images."""
    emb = explorer.ws.coembedding
    train = explorer.ws.items["labelled"].to_numpy()
    t = explorer.truth & train[:, None]
    return l2n((t.T.astype(np.float32) @ emb) / np.maximum(t.sum(0), 1)[:, None])


def prototype_table(explorer: Explorer) -> pd.DataFrame:
    """One row per mapped prototype: ``x``, ``y``, ``phrase``, ``images`` (how many training
    images carry it), ``label`` (the label whose training images lie nearest in the co-embedding)
    and ``vocab_id``."""
    ws = explorer.ws
    ids = ws.maps.prototype_ids
    xy = ws.maps.prototypes
    gen = ws.generator
    nearest = (gen.prototypes[ids] @ _label_centroids(explorer).T).argmax(1)
    return pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "phrase": gen.vocab.texts(ids),
            "images": gen.vocab.counts[ids],
            "label": np.asarray(explorer.labels, dtype=object)[nearest],
            "vocab_id": ids,
        }
    )


def image_table(explorer: Explorer) -> pd.DataFrame:
    """One row per image on the map: ``x``, ``y``, ``row``, ``label`` (first true label), ``split``."""
    xy = explorer.ws.maps.images
    items = explorer.ws.items
    return pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "row": np.arange(len(items)),
            "label": items["labels"].map(lambda ls: ls[0] if ls else "(none)"),
            "split": items["split"],
        }
    )


def display_sample(df: pd.DataFrame, max_points: int = MAX_POINTS, seed: int = 0) -> tuple[pd.DataFrame, bool]:
    """At most ``max_points`` rows for drawing (a seeded random sample above that), and whether
    it was sampled."""
    if len(df) <= max_points:
        return df, False
    return df.sample(n=max_points, random_state=seed).sort_index(), True


def images_near(explorer: Explorer, vocab_ids: np.ndarray, k: int = 12) -> list[tuple[int, float]]:
    """Images nearest (co-embedding cosine) to the mean prototype of the selected phrases."""
    if len(vocab_ids) == 0:
        return []
    centre = l2n(explorer.ws.generator.prototypes[np.asarray(vocab_ids)].mean(0, keepdims=True))[0]
    return top_k(explorer.ws.coembedding @ centre, k)  # a partial sort: 1M images in milliseconds
