"""A workspace's label store and the labels it derives: which database, current labels per row."""

from __future__ import annotations

import os
from pathlib import Path

from core.labels.store import DEFAULT_DB_NAME, LabelStore
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
