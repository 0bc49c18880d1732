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
import io
import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path

import pandas as pd

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jfif", ".png", ".webp", ".avif", ".bmp", ".gif", ".tif", ".tiff"}
#: image formats Pillow cannot decode here: reported in image folders, not silently ignored
UNSUPPORTED_EXTENSIONS = {".heic", ".heif", ".jxl", ".svg", ".raw", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".psd"}
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
        p = visible_text(p.strip())
        if p:
            seen.setdefault(p, None)
    return list(seen)


def visible_text(text: str) -> str:
    """``text``, or "" when it has no visible character (only spaces, zero-width spaces, a
    byte-order mark...): such a caption, tag or label says nothing."""
    return text if any(ch.isprintable() and not ch.isspace() for ch in text) else ""


def _clean(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return visible_text(str(value).strip())


#: a manifest row, or the reason it cannot be read
Row = dict[str, object] | str


def _decode(path: Path) -> tuple[str, str | None]:
    """The manifest's text and a note when it was not UTF-8.

    UTF-8 (with or without a byte-order mark) and UTF-16/32 with a byte-order mark are read as
    such; any other byte string is read as Latin-1 (every byte is a character there), with a note
    saying so. Text with NUL characters (UTF-16 without a byte-order mark, a binary file) is refused.
    """
    data = path.read_bytes()
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(codec)
            except UnicodeDecodeError as exc:
                reason = f"starts with a {codec} byte-order mark but is not valid {codec} ({exc.reason})"
                raise ValueError(f"{path.name}: {reason}") from exc
            return _no_nul(path, text), None if codec == "utf-8" else f"read as {codec.upper()} (byte-order mark)"
    try:
        return _no_nul(path, data.decode("utf-8")), None
    except UnicodeDecodeError as exc:
        note = (
            f"not UTF-8 (byte {exc.start} is 0x{data[exc.start]:02x}); read as Latin-1: check accented characters, "
            "or save the manifest as UTF-8"
        )
        return _no_nul(path, data.decode("latin-1")), note


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def _no_nul(path: Path, text: str) -> str:
    if "\x00" in text:
        raise ValueError(
            f"{path.name}: holds NUL characters, so it is not a text manifest (UTF-16 without a byte-order mark, or a "
            "binary file); save it as UTF-8 CSV or JSONL"
        )
    return text


def _csv_rows(name: str, text: str) -> list[Row]:
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ValueError(f"{name}: not a readable CSV file ({exc})") from exc
    if not records:
        return []
    header = [h.strip() for h in records[0]]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        where = "; ".join(f"{h!r} in columns {', '.join(str(i + 1) for i, x in enumerate(header) if x == h)}" for h in dupes)
        raise ValueError(f"{name}: duplicate column names ({where}); rename or remove the extra columns")
    rows: list[Row] = []
    for fields in records[1:]:
        if len(fields) > len(header):
            rows.append(f"row has {len(fields)} fields but the header has {len(header)} (an unquoted comma?)")
        elif not any(f.strip() for f in fields):
            rows.append("")  # a blank line: skipped without a report
        else:
            rows.append(dict(zip(header, fields)))
    return rows


def _json_row(value: object, where: str) -> Row:
    if isinstance(value, dict):
        return value
    return f'{where} is JSON but not an object ({type(value).__name__}); expected {{"image": ..., "label": ...}}'


def _json_rows(name: str, text: str, *, whole: bool) -> list[Row]:
    if whole and text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{name}: not valid JSON ({exc})") from exc
        if not isinstance(data, list):  # pragma: no cover - a text starting with "[" decodes to a list
            raise ValueError(f"{name}: expected a JSON list of objects")
        return [_json_row(v, f"element {i}") for i, v in enumerate(data, start=1)]
    rows: list[Row] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            rows.append("")  # a blank line: skipped without a report (rows keep their line numbers)
            continue
        try:
            rows.append(_json_row(json.loads(line), f"line {i}"))
        except json.JSONDecodeError as exc:
            rows.append(f"invalid JSON on line {i}: {exc.msg}")
        except RecursionError:
            rows.append(f"line {i} is nested too deeply")
    return rows


def _read_rows(path: Path) -> tuple[list[Row], str | None]:
    """The manifest's rows (or the reason each cannot be read), and a note on its encoding."""
    text, note = _decode(path)
    if path.suffix.lower() == ".csv":
        return _csv_rows(path.name, text), note
    return _json_rows(path.name, text, whole=path.suffix.lower() == ".json"), note


def _folder_rows(root: Path) -> tuple[list[Row], list[DatasetIssue]]:
    """An image folder's rows (label = sub-folder) and the files in it that are not usable images."""
    rows: list[Row] = []
    unusable: list[DatasetIssue] = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        ext = p.suffix.lower()
        if ext in UNSUPPORTED_EXTENSIONS:
            reason = f"unsupported image format ({ext}); convert it to JPEG, PNG, WebP or AVIF"
            unusable.append(DatasetIssue(root.name, None, reason, rel.as_posix()))
        if ext not in IMAGE_EXTENSIONS:
            continue
        label = "/".join(rel.parts[:-1])
        sidecar = p.with_suffix(".txt")
        text = sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.is_file() else ""
        rows.append({"image": rel.as_posix(), "label": label, "text": text})
    return rows, unusable


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


def _source_rows(src: Path, format: str) -> tuple[Path | None, Path, list[Row], str, int, list[DatasetIssue]]:
    """``(manifest or None, root, raw rows, file label, number of the first row, notes)`` of a dataset source.

    The notes are file-level issues: a manifest that was not UTF-8, unsupported files in an image folder.
    """
    from core.formats import read_foreign  # dispatch hook: other formats give manifest-like rows

    foreign = read_foreign(src, format)
    if foreign is not None:
        return None, foreign.root.resolve(), list(foreign.rows), foreign.file_label, foreign.row_offset, []
    manifest = src if src.is_file() else next((src / n for n in MANIFEST_NAMES if (src / n).is_file()), None)
    if manifest is not None:
        row_offset = 2 if manifest.suffix.lower() == ".csv" else 1  # CSV row 1 is the header
        rows, note = _read_rows(manifest)
        notes = [DatasetIssue(manifest.name, None, note)] if note else []
        return manifest, manifest.parent, rows, manifest.name, row_offset, notes
    rows, unusable = _folder_rows(src)
    return None, src, rows, src.name, 1, unusable


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
        The :class:`Dataset`; skipped rows (and notes such as a non-UTF-8 manifest, unsupported
        image files, labels found only in the test split) are listed in ``dataset.issues``.
        Image decoding problems are found later, when the images are embedded.

    Raises:
        FileNotFoundError: if ``source`` does not exist.
        ValueError: if the manifest cannot be read as a table (duplicate column names, NUL
            bytes), has no ``image`` column or no usable row at all.
    """
    src = Path(source).expanduser().resolve()
    if not src.exists():
        raise FileNotFoundError(f"dataset not found: {source}")
    manifest, root, rows, file_label, row_offset, issues = _source_rows(src, format)
    if not any(isinstance(r, dict) for r in rows):
        first = next((r for r in rows if r), None)
        raise ValueError(f"{file_label}: no rows found" + (f" (first problem: {first})" if first else ""))
    columns = {str(k) for r in rows if isinstance(r, dict) for k in r}
    if manifest is not None and "image" not in columns:
        raise ValueError(f"{file_label}: no 'image' column (columns: {sorted(columns)})")
    multilabel = "labels" in columns and "label" not in columns
    allowed = (root.resolve(), *_export_links(root))
    records = _records(rows, root, allowed, file_label, row_offset, multilabel, sorted(columns - RESERVED), issues)
    if not records:
        raise ValueError(f"{file_label}: no usable rows ({len(issues)} skipped; first: {issues[0] if issues else '-'})")
    items = pd.DataFrame.from_records(records)
    items["split"] = assign_splits(list(items["labels"]), list(items["split"]), seed=seed)
    issues += _test_only_labels(items, file_label)
    return Dataset(root=root, items=items, multilabel=multilabel, issues=issues, source=str(manifest or src))


def _records(
    rows: list[Row],
    root: Path,
    allowed: tuple[Path, ...],
    file_label: str,
    row_offset: int,
    multilabel: bool,
    meta_keys: list[str],
    issues: list[DatasetIssue],
) -> list[dict[str, object]]:
    """The usable rows as records; every skipped row is appended to ``issues`` with its reason."""
    records: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        rownum = i + row_offset
        if isinstance(row, str):
            if row:
                issues.append(DatasetIssue(file_label, rownum, row))
            continue
        image = _clean(row.get("image"))
        reason = _image_problem(image, root, allowed, seen)
        if reason:
            issues.append(DatasetIssue(file_label, rownum, reason, image or None))
            continue
        path = Path(os.path.normpath(root / image))
        labels = _split_list(row.get("labels")) if multilabel else _split_list([_clean(row.get("label"))])
        text = _clean(row.get("text"))
        tags = _split_list(row.get("tags"))
        if not labels and not text and not tags:
            issues.append(DatasetIssue(file_label, rownum, "row has neither a label nor a text", image))
            continue
        split_raw = _clean(row.get("split")).lower()
        split = SPLIT_ALIASES.get(split_raw, "")
        if split_raw and not split:
            issues.append(DatasetIssue(file_label, rownum, f"unknown split {split_raw!r}; a split will be drawn", image))
        seen[image] = seen[path.as_posix()] = rownum
        rec: dict[str, object] = {
            "item": image,
            "path": str(path),
            "labels": labels,
            "text": text,
            "tags": tags,
            "split": split,
            "row": rownum,
        }
        rec.update({k: _clean(row.get(k)) for k in meta_keys})
        records.append(rec)
    return records


def _export_links(root: Path) -> tuple[Path, ...]:
    """Targets of the ``<stem>_images`` links that ``labels export`` made in ``root``.

    An export written outside its dataset's folder reaches the images through such a link; it
    counts as the product's own only beside an export marker (``<stem>.<ext>.pixctx-export.json``).
    """
    out = []
    for link in root.glob("*_images"):
        stem = link.name.removesuffix("_images")
        if link.is_symlink() and link.is_dir() and any(root.glob(f"{glob_escape(stem)}.*.pixctx-export.json")):
            out.append(link.resolve())
    return tuple(out)


def _image_problem(image: str, root: Path, allowed: tuple[Path, ...], seen: dict[str, int]) -> str | None:
    """Why a row's image cannot be used (``None`` when it can).

    The rule for paths: an image must lie inside the dataset folder, both as written (no ``..``,
    no absolute path) and once symbolic links are resolved (a link pointing outside is refused),
    so a manifest can only make the product read files under its own folder. The one exception
    is the images link that ``labels export`` writes beside an export (see :func:`_export_links`).
    """
    if not image:
        return "empty 'image' value"
    if "\x00" in image:
        return "image path holds a NUL character"
    path = Path(os.path.normpath(root / image))
    if not path.is_relative_to(root):
        return "path escapes the dataset folder"
    if image in seen or path.as_posix() in seen:
        return f"duplicate of row {seen.get(image, seen.get(path.as_posix()))}"
    try:
        if not any(path.resolve().is_relative_to(a) for a in allowed):
            return "symbolic link pointing outside the dataset folder (refused: copy the file into the folder)"
        if path.is_dir():
            return "image path is a folder, not a file"
        if not path.is_file():
            return "image file not found"
        if path.stat().st_size == 0:
            return "empty image file (0 bytes)"
    except (OSError, RuntimeError) as exc:  # a link loop, a name too long, no permission
        return f"image file cannot be read ({exc.__class__.__name__})"
    return None


def _test_only_labels(items: pd.DataFrame, file_label: str) -> list[DatasetIssue]:
    """Rows of labels that no train/val row has: no model can learn them, so the metrics leave them out."""
    test = items["split"].to_numpy() == "test"
    learnable = {lab for labs, t in zip(items["labels"], test) if not t for lab in labs}
    out = []
    for labs, t, row, item in zip(items["labels"], test, items["row"], items["item"]):
        missing = [lab for lab in labs if lab not in learnable]
        if t and missing:
            reason = (
                f"label {', '.join(map(repr, missing))} appears only in the test split: no model can learn it, "
                "so the test metrics leave it out"
            )
            out.append(DatasetIssue(file_label, int(row), reason, str(item)))
    return out
