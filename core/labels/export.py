"""Export the corrected dataset (the manifest format the project reads) and the correction log."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from core.labels.session import current_labels
from core.labels.store import LabelStore
from core.workspace import Workspace

LOG_FIELDS = ["id", "item", "old", "new", "user", "at", "action", "strategy", "note", "undoes"]


def dataset_root(ws: Workspace) -> Path:
    """The folder the dataset's image paths are relative to."""
    src = Path(ws.manifest["dataset"]["source"])
    return src.parent if src.suffix.lower() in (".csv", ".jsonl", ".json") else src


def export_manifest(ws: Workspace, store: LabelStore, out: str | Path) -> Path:
    """Write every row of the workspace with its current labels as a manifest (CSV, or JSONL
    when ``out`` ends in ``.jsonl``) that :func:`core.data.load_dataset` reads back.

    Image paths stay as the dataset wrote them when ``out`` is in the dataset's folder.
    Elsewhere, a symbolic link ``<out stem>_images`` next to ``out`` points at the dataset
    folder and the paths go through it: nothing is copied, and nothing is written next to the
    user's images. Rows the fit skipped as unusable (``issues.json``) are not in a workspace
    and so not in the export.

    Returns:
        The path written.
    """
    out = Path(out).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    root = dataset_root(ws).resolve()
    prefix = ""
    if out.parent != root:
        link = out.parent / f"{out.stem}_images"
        if link.is_symlink() and link.resolve() != root:
            link.unlink()  # an older export of another dataset
        elif link.exists() and not link.is_symlink():
            raise ValueError(f"{link} exists and is not our link to the images; choose another --out name")
        if not link.exists():
            os.symlink(root, link, target_is_directory=True)
        prefix = link.name + "/"
    rows = manifest_rows(ws, store, prefix)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(rows_text(rows, "jsonl" if out.suffix.lower() == ".jsonl" else "csv"), encoding="utf-8")
    tmp.replace(out)
    return out


def manifest_rows(ws: Workspace, store: LabelStore, prefix: str = "") -> list[dict[str, str]]:
    """Every workspace row in manifest form (``image``, ``label``/``labels``, ``text``, ``tags``,
    ``split``, metadata) with its current labels; ``prefix`` is prepended to image paths."""
    items = ws.items
    labels = current_labels(ws, store)
    meta = [c for c in ws.manifest["dataset"].get("meta_columns", []) if c in items.columns]
    label_key = "labels" if ws.multilabel else "label"
    rows = []
    for i in range(len(items)):
        row = {
            "image": prefix + str(items.at[i, "item"]),
            label_key: ";".join(labels[i]) if ws.multilabel else (labels[i][0] if labels[i] else ""),
            "text": items.at[i, "text"],
            "tags": ";".join(items.at[i, "tags"]),
            "split": items.at[i, "split"],
        }
        row.update({c: items.at[i, c] for c in meta})
        rows.append(row)
    return rows


def rows_text(rows: list[dict], fmt: str = "csv") -> str:
    """Rows as CSV (header from the first row's keys) or JSONL."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def log_text(store: LabelStore, fmt: str = "csv") -> str:
    """The correction log, oldest first: CSV (label sets ``;``-joined) or JSONL."""
    changes = [c.to_dict() for c in store.history()]
    if fmt == "jsonl":
        return rows_text(changes, "jsonl")
    if not changes:
        return ",".join(LOG_FIELDS) + "\n"
    return rows_text([{**c, "old": ";".join(c["old"]), "new": ";".join(c["new"])} for c in changes])


def export_log(store: LabelStore, out: str | Path) -> Path:
    """Write the correction log to ``out`` (JSONL if it ends in ``.jsonl``, else CSV)."""
    out = Path(out).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(log_text(store, "jsonl" if out.suffix.lower() == ".jsonl" else "csv"), encoding="utf-8")
    tmp.replace(out)
    return out
