"""A workspace's label store and the labels it derives: which database, current labels per row."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.labels.store import DEFAULT_DB_NAME, SET, UNDO, LabelStore
from core.workspace import Workspace

#: environment variable naming a shared database (e.g. ``postgresql+psycopg://labels@db/team``)
DB_ENV = "PIXCTX_LABELS_DB"


def dataset_labels(ws: Workspace) -> list[list[str]]:
    """Every row's labels as the dataset gave them (before any correction); the lists are the
    workspace's own (rows with the same labels share one): read them, do not change them."""
    col = "labels_dataset" if "labels_dataset" in ws.items.columns else "labels"
    return list(ws.items[col])


def label_db_url(ws: Workspace, url: str | None = None) -> str | Path:
    """``url``, else ``$PIXCTX_LABELS_DB``, else ``labels.sqlite`` in the workspace."""
    return url or os.environ.get(DB_ENV) or ws.path / DEFAULT_DB_NAME


def open_label_store(ws: Workspace, url: str | None = None, *, timeout_s: float | None = None) -> LabelStore:
    """The label store of a workspace (see :func:`label_db_url`). Rows are namespaced by the
    dataset's fingerprint, so one shared database serves several workspaces of different datasets."""
    items = dict(zip(ws.items["item"].astype(str), dataset_labels(ws), strict=True))
    taxonomy = set(ws.labels) | {lab for labs in items.values() for lab in labs}
    kwargs = {} if timeout_s is None else {"timeout_s": timeout_s}
    return LabelStore(
        label_db_url(ws, url), namespace=ws.manifest["dataset"]["fingerprint"], items=items, taxonomy=taxonomy, **kwargs
    )


def current_labels(ws: Workspace, store: LabelStore) -> list[list[str]]:
    """Every row's labels with the corrections applied."""
    labels = dataset_labels(ws)
    changed = store.current()
    for row, labs in zip(ws.rows_of(list(changed)), changed.values(), strict=True):
        if row >= 0:
            labels[row] = labs
    return labels


def reviewed_items(store: LabelStore) -> set[str]:
    """Items with a labeler's label in effect: set, and not undone (an undone change un-reviews its
    image; undoing the undo puts the change back): their current labels
    count as labelled. A "not sure" mark is never a label, whatever undo chain leads back to it."""
    history = store.history()
    by_id = {ch.id: ch for ch in history}
    active: set[int] = set()
    for ch in history:  # oldest first
        if ch.action == SET:
            active.add(ch.id)
        elif ch.action == UNDO:
            root, depth = ch, 0  # follow an undo of an undo ... back to the change it started from
            while root.action == UNDO and root.undoes in by_id:
                root, depth = by_id[root.undoes], depth + 1
            if root.action == SET:  # an odd chain takes the change back, an even one puts it back
                (active.discard if depth % 2 else active.add)(root.id)
    return {by_id[i].item for i in active}


def stored_corrections(
    workspace: str | Path, fingerprint: str, items: list[str], labels: list[list[str]]
) -> tuple[list[list[str]], np.ndarray] | None:
    """The label store's corrections for a fit into ``workspace``: every row's current labels and
    which rows a labeler reviewed (:func:`reviewed_items`); ``None`` when there is no store (a new
    workspace, no ``$PIXCTX_LABELS_DB``) or it has no change for this dataset (``fingerprint``).

    A refit keeps the label history (:mod:`core.workspace_files`); without this, its models would
    train on the dataset's labels and its caption labels would overwrite what the labelers wrote.
    """
    url = os.environ.get(DB_ENV) or Path(workspace) / DEFAULT_DB_NAME
    if isinstance(url, Path) and not url.is_file():
        return None
    store = LabelStore(url, namespace=fingerprint, items=dict(zip(items, labels, strict=True)), taxonomy=())
    try:
        changed, reviewed = store.current(), reviewed_items(store)
    finally:
        store.close()
    if not changed:
        return None
    current = [changed.get(item, labs) for item, labs in zip(items, labels, strict=True)]
    return current, np.array([item in reviewed for item in items], dtype=bool)
