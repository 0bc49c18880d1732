"""Hugging Face ``datasets`` layouts, read and written without ``datasets`` itself.

* **imagefolder**: ``DIR/[SPLIT/]LABEL/file`` (label = the folder path under the split), plus an
  optional ``metadata.csv`` or ``metadata.jsonl`` whose ``file_name`` column (relative to the
  metadata file) adds per-image columns (``text``, ``tags``, ``label`` ...).
* **parquet**: a ``.parquet`` file, or a folder of them (``data/train-00000-of-00001.parquet``
  as ``datasets`` pushes them), with an ``image`` column of ``{"bytes", "path"}`` structs and a
  ``label`` column (strings, or integers named by the ``ClassLabel`` in the schema's
  ``huggingface`` metadata). Embedded image bytes are written once to the product's cache
  (``$PIXCTX_CACHE_DIR/extracted/<hash>/``), never next to the user's files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

from core.data.manifest import IMAGE_EXTENSIONS, SPLIT_ALIASES
from core.formats.common import ForeignRows, flat_name, place_image, row_labels

METADATA = ("metadata.csv", "metadata.jsonl")


# --- imagefolder -----------------------------------------------------------------------------
def sniff_imagefolder(path: Path) -> bool:
    """A folder with a ``metadata`` file, or whose top folders are all split names."""
    if not path.is_dir():
        return False
    if any((path / m).is_file() for m in METADATA):
        return True
    tops = [p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return bool(tops) and all(t.lower() in SPLIT_ALIASES for t in tops)


def _metadata(path: Path) -> dict[str, dict]:
    for name in METADATA:
        f = path / name
        if not f.is_file():
            continue
        if name.endswith(".csv"):
            with f.open(newline="", encoding="utf-8-sig") as fh:
                records = list(csv.DictReader(fh))
        else:
            records = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        return {str(r.pop("file_name", "")): r for r in records if isinstance(r, dict)}
    return {}


def read_imagefolder(path: Path) -> ForeignRows:
    """Rows of a Hugging Face imagefolder."""
    meta = _metadata(path)
    rows: list[dict[str, object]] = []
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path)
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS or any(s.startswith(".") for s in rel.parts):
            continue
        parts = list(rel.parts[:-1])
        row: dict[str, object] = {"image": rel.as_posix()}
        if parts and parts[0].lower() in SPLIT_ALIASES:
            row["split"] = parts.pop(0)
        row["label"] = "/".join(parts)
        row.update(meta.get(rel.as_posix(), {}))
        rows.append(row)
    return ForeignRows(path, rows, next((m for m in METADATA if (path / m).is_file()), path.name))


def write_imagefolder(rows: list[dict], out: Path, *, root: Path, multilabel: bool) -> None:
    """``out/SPLIT/LABEL/file`` (images copied; unlabelled ones in ``out/SPLIT/``) and
    ``metadata.csv`` for the other columns."""
    if multilabel:
        raise ValueError("an imagefolder holds one label per image; export a multi-label dataset as parquet, coco or fiftyone")
    meta = []
    for r in rows:
        label = str(r.get("label") or "")  # an unlabelled image sits directly in its split folder
        rel = Path(str(r.get("split") or "train")) / label / flat_name(str(r["image"]))
        place_image(root / str(r["image"]), out / rel)
        meta.append({"file_name": rel.as_posix(), **{k: v for k, v in r.items() if k not in ("image", "label", "split")}})
    fields = list(dict.fromkeys(k for m in meta for k in m))
    with (out / "metadata.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(meta)


# --- parquet ---------------------------------------------------------------------------------
def parquet_files(path: Path) -> list[Path]:
    """The parquet files of a file or folder (``data/`` or the folder itself, split order kept)."""
    if path.is_file():
        return [path] if path.suffix.lower() == ".parquet" else []
    if not path.is_dir():
        return []
    return sorted(path.glob("*.parquet")) or sorted((path / "data").glob("*.parquet"))


def _class_names(schema) -> list[str] | None:
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    features = json.loads(raw).get("info", {}).get("features", {})
    label = features.get("label", {})
    return label.get("names") if label.get("_type") == "ClassLabel" else None


def _split_of(file: Path) -> str:
    head = file.stem.split("-")[0].lower()
    return head if head in SPLIT_ALIASES else ""


def _ext(data: bytes, fallback: str) -> str:
    from PIL import Image

    try:
        fmt = Image.open(io.BytesIO(data)).format or ""
    except Exception:  # undecodable bytes: the loader reports the row when it embeds it
        return fallback or ".bin"
    known = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
    return known.get(fmt, fallback or ".bin")


def read_parquet(path: Path) -> ForeignRows:
    """Rows of Hugging Face parquet files; embedded images are extracted to the product's cache."""
    import pyarrow.parquet as pq

    from core.features import default_cache_dir

    files = parquet_files(path)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    out = default_cache_dir() / "extracted" / digest.hexdigest()[:16]
    base = path if path.is_dir() else path.parent
    rows: list[dict[str, object]] = []
    for f in files:
        table = pq.read_table(f)
        names = _class_names(table.schema)
        for i, rec in enumerate(table.to_pylist()):
            rows.append(_parquet_row(rec, names, f, i, out, base))
    if not any(str(r["image"]).startswith("extracted:") for r in rows):
        return ForeignRows(base, rows, files[0].name if files else path.name)
    for r in rows:  # embedded images: the cache folder is the root (rows with a path only are then reported missing)
        r["image"] = str(r["image"]).removeprefix("extracted:")
    return ForeignRows(out, rows, files[0].name if files else path.name)


def _parquet_row(rec: dict, names: list[str] | None, file: Path, i: int, out: Path, base: Path) -> dict[str, object]:
    image = rec.pop("image", None)
    label = rec.pop("label", rec.pop("labels", None))
    if isinstance(label, int) and names is not None:
        label = names[label] if 0 <= label < len(names) else ""
    row: dict[str, object] = {k: v for k, v in rec.items() if not isinstance(v, (bytes, dict))}
    if isinstance(label, list):
        row["labels"] = [names[x] if isinstance(x, int) and names else str(x) for x in label]
    else:
        row["label"] = "" if label is None else str(label)
    row.setdefault("split", _split_of(file))
    if isinstance(image, dict) and image.get("bytes"):
        data = image["bytes"]
        hint = Path(str(image.get("path") or ""))
        name = f"{file.stem}-{i:06d}-{hint.stem or 'image'}{_ext(data, hint.suffix)}"
        target = out / name
        if not target.is_file():
            out.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".partial")
            tmp.write_bytes(data)
            tmp.replace(target)
        row["image"] = "extracted:" + name
    elif isinstance(image, dict) and image.get("path"):
        row["image"] = str(image["path"])
    else:
        row["image"] = str(image or "")
    return row


def write_parquet(rows: list[dict], out: Path, *, root: Path, multilabel: bool) -> None:
    """One parquet file (``out`` ends in ``.parquet``: a ``split`` column) or a folder with one file
    per split, as ``datasets`` writes them: image bytes embedded, labels as a ``ClassLabel``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    classes = sorted({lab for r in rows for lab in row_labels(r)})
    index = {c: i for i, c in enumerate(classes)}
    label_type = (
        {"feature": {"names": classes, "_type": "ClassLabel"}, "_type": "List"}
        if multilabel
        else {
            "names": classes,
            "_type": "ClassLabel",
        }
    )
    extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in ("image", "label", "labels")]
    features = {"image": {"_type": "Image"}, ("labels" if multilabel else "label"): label_type}
    features.update({k: {"dtype": "string", "_type": "Value"} for k in extra})
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    groups = {"": rows} if out.suffix.lower() == ".parquet" else {}
    for r in rows if not groups else []:
        groups.setdefault(str(r.get("split") or "train"), []).append(r)
    for split, part in groups.items():
        images = [{"bytes": (root / str(r["image"])).read_bytes(), "path": flat_name(str(r["image"]))} for r in part]
        cols: dict[str, list] = {"image": images}
        labs = [[index[lab] for lab in row_labels(r)] for r in part]
        cols["labels" if multilabel else "label"] = labs if multilabel else [x[0] if x else None for x in labs]
        cols.update({k: [str(r.get(k, "")) for r in part] for k in extra})
        table = pa.table(cols).replace_schema_metadata(meta)
        target = out if not split else out / "data" / f"{split}-00000-of-00001.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
