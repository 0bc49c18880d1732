"""Load a dataset from a CSV/JSONL manifest or an image-folder layout.

Manifest columns:

* ``image`` (required): path relative to the manifest's folder.
* ``label`` (single-label) or ``labels`` (``;``-separated, multi-label).
* ``text`` (optional): caption, title or web query.
* ``tags`` (optional): ``;``-separated.
* ``split`` (optional): ``train``, ``val`` or ``test``; missing splits are drawn
  deterministically (stratified 80/20 train/test).
* any other column is kept as per-image metadata.

A row needs a label or a text: unlabelled rows with text feed the phrase generator only.
Bad rows are skipped and reported as :class:`DatasetIssue`; nothing is ever written
next to the user's files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl", "manifest.json")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
RESERVED = {"image", "label", "labels", "text", "tags", "split"}


@dataclass(frozen=True)
class DatasetIssue:
    """A row that was skipped (or an image that could not be used), and why."""

    file: str
    row: int | None
    reason: str
    image: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}" + (f", row {self.row}" if self.row is not None else "")
        what = f" [{self.image}]" if self.image else ""
        return f"{where}{what}: {self.reason}"


@dataclass
class Dataset:
    """A validated dataset.

    Attributes:
        root: folder that image paths are relative to.
        items: one row per usable image with columns ``item`` (the image path exactly as
            written in the source), ``path`` (absolute), ``labels`` (list of str), ``text``,
            ``tags`` (list of str), ``split`` and the extra metadata columns.
        multilabel: whether the source used a ``labels`` column.
        issues: rows that were skipped, with reasons.
        source: the manifest file or folder it was read from.
    """

    root: Path
    items: pd.DataFrame
    multilabel: bool
    issues: list[DatasetIssue] = field(default_factory=list)
    source: str = ""

    @property
    def label_names(self) -> list[str]:
        """Sorted taxonomy: every label used by at least one row."""
        return sorted({lab for labs in self.items["labels"] for lab in labs})

    @property
    def meta_columns(self) -> list[str]:
        return [c for c in self.items.columns if c not in {"item", "path", "labels", "text", "tags", "split", "row"}]

    def fingerprint(self) -> str:
        """Hash of the dataset's rows (paths, labels, text, tags, splits), not of pixels."""
        h = hashlib.sha256()
        for row in self.items[["item", "labels", "text", "tags", "split"]].itertuples(index=False):
            h.update(json.dumps([row.item, list(row.labels), row.text, list(row.tags), row.split]).encode())
        return h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.items)


def _split_list(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    else:
        parts = str(value).split(";")
    seen: dict[str, None] = {}
    for p in parts:
        p = p.strip()
        if p:
            seen.setdefault(p, None)
    return list(seen)


def _clean(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value).strip()


def _read_rows(path: Path) -> list[dict[str, object]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return [dict(r) for r in csv.DictReader(fh)]
    rows: list[dict[str, object]] = []
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        data = json.loads(text)
        return [dict(r) for r in data]
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                rows.append({"__error__": f"invalid JSON on line {i}: {exc.msg}"})
    return rows


def _folder_rows(root: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        label = "/".join(rel.parts[:-1])
        sidecar = p.with_suffix(".txt")
        text = sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.is_file() else ""
        rows.append({"image": rel.as_posix(), "label": label, "text": text})
    return rows


def assign_splits(labels: list[list[str]], splits: list[str], seed: int = 0, test_fraction: float = 0.2) -> list[str]:
    """Fill empty splits with a deterministic stratified train/test draw.

    Rows are grouped by their first label (unlabelled rows go to ``train``: they only
    feed the phrase generator); within a group, ``round(test_fraction * n)`` rows go to test.
    """
    out = list(splits)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, (labs, sp) in enumerate(zip(labels, splits)):
        if sp:
            continue
        if not labs:
            out[i] = "train"
        else:
            groups[labs[0]].append(i)
    rng = random.Random(seed)
    for key in sorted(groups):
        idx = groups[key]
        rng.shuffle(idx)
        n_test = round(test_fraction * len(idx)) if len(idx) >= 2 else 0
        for j, i in enumerate(idx):
            out[i] = "test" if j < n_test else "train"
    return out


def _source_rows(src: Path, format: str) -> tuple[Path | None, Path, list[dict], str, int]:
    """``(manifest or None, root, raw rows, file label, number of the first row)`` of a dataset source."""
    from core.formats import read_foreign  # dispatch hook: other formats give manifest-like rows

    foreign = read_foreign(src, format)
    if foreign is not None:
        return None, foreign.root.resolve(), foreign.rows, foreign.file_label, foreign.row_offset
    manifest = src if src.is_file() else next((src / n for n in MANIFEST_NAMES if (src / n).is_file()), None)
    if manifest is not None:
        row_offset = 2 if manifest.suffix.lower() == ".csv" else 1  # CSV row 1 is the header
        return manifest, manifest.parent, _read_rows(manifest), manifest.name, row_offset
    return None, src, _folder_rows(src), src.name, 1


def load_dataset(source: str | Path, *, seed: int = 0, format: str = "auto") -> Dataset:
    """Load and validate a dataset.

    Args:
        source: a manifest file (``.csv``, ``.jsonl``, ``.json``), a folder holding one
            (``manifest.csv``/``manifest.jsonl``), or an image folder whose sub-folders are labels
            (optional same-name ``.txt`` sidecars give the text).
        seed: seed of the split drawn for rows without a ``split``.
        format: ``auto`` (sniffed) or a name of :data:`core.formats.FORMATS` (FiftyOne, Hugging
            Face, COCO, Label Studio ... read by :func:`core.formats.read_foreign`).

    Returns:
        The :class:`Dataset`; skipped rows are listed in ``dataset.issues``. Image decoding
        problems are found later, when the images are embedded.

    Raises:
        FileNotFoundError: if ``source`` does not exist.
        ValueError: if the manifest has no ``image`` column or no usable row at all.
    """
    src = Path(source).expanduser().resolve()
    if not src.exists():
        raise FileNotFoundError(f"dataset not found: {source}")
    manifest, root, rows, file_label, row_offset = _source_rows(src, format)
    if not rows:
        raise ValueError(f"{file_label}: no rows found")
    columns = {k for r in rows for k in r if not k.startswith("__")}
    if manifest is not None and "image" not in columns:
        raise ValueError(f"{file_label}: no 'image' column (columns: {sorted(columns)})")
    multilabel = "labels" in columns and "label" not in columns
    label_key = "labels" if multilabel else "label"
    meta_keys = sorted(columns - RESERVED)

    issues: list[DatasetIssue] = []
    records: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        rownum = i + row_offset
        if "__error__" in row:
            issues.append(DatasetIssue(file_label, rownum, str(row["__error__"])))
            continue
        image = _clean(row.get("image"))
        if not image:
            issues.append(DatasetIssue(file_label, rownum, "empty 'image' value"))
            continue
        # lexical check: "../" and absolute paths escape; symlinks inside the dataset folder are the user's choice
        path = Path(os.path.normpath(root / image))
        if not path.is_relative_to(root):
            issues.append(DatasetIssue(file_label, rownum, "path escapes the dataset folder", image))
            continue
        if image in seen or path.as_posix() in seen:
            first = seen.get(image, seen.get(path.as_posix()))
            issues.append(DatasetIssue(file_label, rownum, f"duplicate of row {first}", image))
            continue
        labels = _split_list(row.get(label_key)) if multilabel else _split_list([_clean(row.get("label"))])
        text = _clean(row.get("text"))
        tags = _split_list(row.get("tags"))
        if not labels and not text and not tags:
            issues.append(DatasetIssue(file_label, rownum, "row has neither a label nor a text", image))
            continue
        if not path.is_file():
            issues.append(DatasetIssue(file_label, rownum, "image file not found", image))
            continue
        if path.stat().st_size == 0:
            issues.append(DatasetIssue(file_label, rownum, "empty image file (0 bytes)", image))
            continue
        split_raw = _clean(row.get("split")).lower()
        split = SPLIT_ALIASES.get(split_raw, "")
        if split_raw and not split:
            issues.append(DatasetIssue(file_label, rownum, f"unknown split {split_raw!r}; a split will be drawn", image))
        seen[image] = rownum
        seen[path.as_posix()] = rownum
        rec: dict[str, object] = {
            "item": image,
            "path": str(path),
            "labels": labels,
            "text": text,
            "tags": tags,
            "split": split,
            "row": rownum,
        }
        for k in meta_keys:
            rec[k] = _clean(row.get(k))
        records.append(rec)
    if not records:
        raise ValueError(f"{file_label}: no usable rows ({len(issues)} skipped; first: {issues[0] if issues else '-'})")
    items = pd.DataFrame.from_records(records)
    items["split"] = assign_splits(list(items["labels"]), list(items["split"]), seed=seed)
    return Dataset(root=root, items=items, multilabel=multilabel, issues=issues, source=str(manifest or src))
