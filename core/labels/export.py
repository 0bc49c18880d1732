"""Export the corrected dataset (the manifest format the project reads) and the correction log."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from core.data.manifest import MANIFEST_NAMES
from core.labels.session import current_labels
from core.labels.store import LabelStore
from core.workspace import Workspace

LOG_FIELDS = ["id", "item", "old", "new", "user", "at", "action", "strategy", "note", "undoes"]


def dataset_root(ws: Workspace) -> Path:
    """The folder the dataset's image paths are relative to."""
    if ws.manifest["dataset"].get("root"):
        return Path(ws.manifest["dataset"]["root"])
    src = Path(ws.manifest["dataset"]["source"])
    return src.parent if src.suffix.lower() in (".csv", ".jsonl", ".json") else src


MARK_SUFFIX = ".pixctx-export.json"


class ExportRefused(ValueError):
    """An export target the product may not write (a user's file, the dataset's own manifest)."""


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def mark_path(out: Path) -> Path:
    """The marker written beside an export: it proves the product wrote ``out`` (and what)."""
    return out.with_name(out.name + MARK_SUFFIX)


def is_previous_export(out: Path) -> bool:
    """Whether ``out`` is an export this product wrote and nobody changed since (its marker
    names it and the content hash matches; folders: the marker's file list hashes match)."""
    mark = mark_path(out)
    if not mark.is_file():
        return False
    try:
        meta = json.loads(mark.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    if not isinstance(meta, dict) or meta.get("pixctx_export") != out.name:
        return False
    if out.is_dir():
        return all((out / rel).is_file() and _sha256(out / rel) == digest for rel, digest in meta.get("files", {}).items())
    return out.is_file() and meta.get("sha256") == _sha256(out)


def guard_output(out: Path, ws: Workspace | None, *, overwrite: bool) -> None:
    """Refuse to write ``out`` unless it is new, or a previous export and ``overwrite`` is set.

    Raises:
        ExportRefused: ``out`` is (or holds) the dataset's own manifest or images, or an
            existing file or folder the product did not export.
    """
    if ws is not None:
        src = Path(ws.manifest["dataset"]["source"]).expanduser().resolve()
        root = dataset_root(ws).resolve()
        if out in (src, root) or (out.parent == root and out.name in MANIFEST_NAMES):
            raise ExportRefused(f"{out} is the dataset's own {'folder' if out == root else 'manifest'}: choose another --out")
        if out.is_dir() and root.is_relative_to(out):
            raise ExportRefused(f"{out} holds the dataset's images: choose another --out")
    if not (out.exists() or out.is_symlink()):
        return
    if not is_previous_export(out):
        raise ExportRefused(f"{out} exists and was not written by `labels export`: choose another --out (nothing was written)")
    if not overwrite:
        raise ExportRefused(f"{out} is a previous export: pass --overwrite to replace it")


def write_mark(out: Path, fmt: str) -> None:
    """Record that the product wrote ``out`` (a file, or a folder and every file in it)."""
    meta: dict = {"pixctx_export": out.name, "format": fmt}
    if out.is_dir():
        meta["files"] = {p.relative_to(out).as_posix(): _sha256(p) for p in sorted(out.rglob("*")) if p.is_file()}
    else:
        meta["sha256"] = _sha256(out)
    mark_path(out).write_text(json.dumps(meta, indent=1), encoding="utf-8")


def images_link(ws: Workspace, out: Path) -> str:
    """Prefix that makes the dataset's image paths valid from ``out``'s folder: nothing inside
    the dataset's folder, else a symbolic link ``<out stem>_images`` to it (created once; a
    user's file, folder or link of that name is never replaced).

    Raises:
        ExportRefused: ``<out stem>_images`` exists and is not a link to this dataset.
    """
    root = dataset_root(ws).resolve()
    if out.parent == root:
        return ""
    link = out.parent / f"{out.stem}_images"
    if link.is_symlink() and link.resolve() == root:
        return link.name + "/"
    if link.exists() or link.is_symlink():
        raise ExportRefused(f"{link} exists and is not a link to this dataset's images; choose another --out name")
    os.symlink(root, link, target_is_directory=True)
    return link.name + "/"


def export_manifest(ws: Workspace, store: LabelStore, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write every row of the workspace with its current labels as a manifest (CSV, or JSONL
    when ``out`` ends in ``.jsonl``) that :func:`core.data.load_dataset` reads back.

    Image paths stay as the dataset wrote them when ``out`` is in the dataset's folder.
    Elsewhere, a symbolic link ``<out stem>_images`` next to ``out`` points at the dataset
    folder and the paths go through it: nothing is copied, and nothing is written next to the
    user's images. Rows the fit skipped as unusable (``issues.json``) are not in a workspace
    and so not in the export. A marker ``<out>.pixctx-export.json`` records the export, so
    that only an unchanged previous export can be replaced (with ``overwrite``).

    Returns:
        The path written.

    Raises:
        ExportRefused: see :func:`guard_output` and :func:`images_link`.
    """
    out = Path(out).expanduser().absolute()
    guard_output(out.resolve(), ws, overwrite=overwrite)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = images_link(ws, out)
    rows = manifest_rows(ws, store, prefix)
    fmt = "jsonl" if out.suffix.lower() == ".jsonl" else "csv"
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(rows_text(rows, fmt), encoding="utf-8")
    tmp.replace(out)
    write_mark(out, fmt)
    return out


def export_dataset(
    ws: Workspace,
    store: LabelStore,
    out: str | Path,
    fmt: str = "manifest",
    *,
    overwrite: bool = False,
) -> Path:
    """Write the corrected dataset in format ``fmt`` (:data:`core.formats.FORMATS`).

    Folder formats (``fiftyone``, ``imagefolder``, ``folder``, ``parquet`` without a ``.parquet``
    suffix) are built in a temporary folder next to ``out`` and moved into place; their images
    are copies of the dataset's files (the loader reads no link that leaves a dataset's folder). Single-file formats
    (``coco``, ``labelstudio``) reach the images through ``<out stem>_images`` like the manifest;
    ``parquet`` embeds the image bytes. Every export is marked (see :func:`is_previous_export`).

    Raises:
        ExportRefused: see :func:`guard_output`.
        ValueError: an unknown format, or a multi-label dataset for a one-label-per-image format.
    """
    import shutil
    import tempfile

    from core.formats import FORMATS, coco, fiftyone, huggingface, labelstudio
    from core.formats.common import write_folder

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "manifest":
        return export_manifest(ws, store, out, overwrite=overwrite)
    out = Path(out).expanduser().absolute().resolve()
    guard_output(out, ws, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, root = manifest_rows(ws, store), dataset_root(ws).resolve()
    if fmt in ("coco", "labelstudio") or (fmt == "parquet" and out.suffix.lower() == ".parquet"):
        tmp = out.with_name(f".partial-{out.name}")
        if fmt == "parquet":
            huggingface.write_parquet(rows, tmp, root=root, multilabel=ws.multilabel)
        else:
            (coco if fmt == "coco" else labelstudio).write(rows, tmp, prefix=images_link(ws, out))
        tmp.replace(out)
    else:
        writer = {
            "fiftyone": fiftyone.write,
            "imagefolder": huggingface.write_imagefolder,
            "parquet": huggingface.write_parquet,
            "folder": write_folder,
        }[fmt]
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            writer(rows, tmp_dir, root=root, multilabel=ws.multilabel)
        except BaseException:
            shutil.rmtree(tmp_dir)
            raise
        if out.exists():  # a previous export (guard_output checked): ours to replace
            shutil.rmtree(out)
        tmp_dir.rename(out)
    write_mark(out, fmt)
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


def export_log(store: LabelStore, out: str | Path, *, ws: Workspace | None = None, overwrite: bool = False) -> Path:
    """Write the correction log to ``out`` (JSONL if it ends in ``.jsonl``, else CSV), under the
    same rules as :func:`export_manifest` (``ws`` given: never onto its dataset's files)."""
    out = Path(out).expanduser().resolve()
    guard_output(out, ws, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = "jsonl" if out.suffix.lower() == ".jsonl" else "csv"
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(log_text(store, fmt), encoding="utf-8")
    tmp.replace(out)
    write_mark(out, fmt)
    return out
