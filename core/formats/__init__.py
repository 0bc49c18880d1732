"""Dataset formats in and out: FiftyOne, Hugging Face (imagefolder, parquet), a class-per-folder
tree, COCO-style JSON with image-level categories, Label Studio's JSON export.

:func:`read_foreign` is the hook :func:`core.data.load_dataset` calls first: it recognises (or
is told) a format and returns manifest-like rows, which the loader validates as it validates a
manifest. :data:`FORMATS` lists what ``fit --format`` and ``labels export --format`` accept.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.formats import coco, fiftyone, huggingface, labelstudio
from core.formats.common import ForeignRows

#: format name -> what it is (``manifest`` and ``folder`` are read by the manifest loader itself)
FORMATS = {
    "manifest": "the product's manifest (CSV, JSONL)",
    "folder": "a class-per-folder tree (LABEL/file, same-name .txt for text)",
    "fiftyone": "FiftyOne image-classification directory (data/ + labels.json)",
    "imagefolder": "Hugging Face imagefolder ([SPLIT/]LABEL/file + metadata.csv)",
    "parquet": "Hugging Face parquet (image bytes + ClassLabel label)",
    "coco": "COCO-style JSON with image-level categories",
    "labelstudio": "Label Studio JSON export (image classification choices)",
}
#: formats written as one file (the others are folders)
FILE_FORMATS = {"manifest": (".csv", ".jsonl"), "coco": (".json",), "labelstudio": (".json",), "parquet": (".parquet",)}


def _json(path: Path) -> object | None:
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, OSError, UnicodeDecodeError):
        return None


def sniff(path: str | Path) -> str:
    """The format of a dataset path (``manifest`` when nothing more specific matches)."""
    from core.data.manifest import MANIFEST_NAMES

    p = Path(path).expanduser()
    if p.is_dir() and any((p / n).is_file() for n in MANIFEST_NAMES):
        return "manifest"
    if huggingface.parquet_files(p):
        return "parquet"
    data = _json(p)
    if data is not None:
        return "coco" if coco.is_coco(data) else "labelstudio" if labelstudio.is_labelstudio(data) else "manifest"
    if p.is_dir():
        if fiftyone.sniff(p):
            return "fiftyone"
        if (p / "labels.json").is_file() and coco.is_coco(_json(p / "labels.json")):
            return "coco"
        return "imagefolder" if huggingface.sniff_imagefolder(p) else "folder"
    return "manifest"


def read_foreign(path: Path, fmt: str = "auto") -> ForeignRows | None:
    """Rows of ``path`` in another format, or ``None`` for the manifest loader's own
    (``manifest``, ``folder``).

    Raises:
        ValueError: an unknown format, or ``path`` is not in the format named.
    """
    if fmt not in FORMATS and fmt != "auto":
        raise ValueError(f"unknown format {fmt!r}; one of auto, {', '.join(FORMATS)}")
    found = sniff(path)
    fmt = found if fmt == "auto" else fmt
    if fmt in ("manifest", "folder"):
        return None
    if fmt == "fiftyone":
        if not fiftyone.sniff(path):
            raise ValueError(f"{path}: not a FiftyOne image-classification directory (data/ + labels.json)")
        return fiftyone.read(path)
    if fmt == "imagefolder":
        if not path.is_dir():
            raise ValueError(f"{path}: an imagefolder is a folder")
        return huggingface.read_imagefolder(path)
    if fmt == "parquet":
        if not huggingface.parquet_files(path):
            raise ValueError(f"{path}: no .parquet file")
        return huggingface.read_parquet(path)
    target = path / "labels.json" if path.is_dir() else path
    data = _json(target)
    if fmt == "coco" and coco.is_coco(data):
        return coco.read(target, data)  # type: ignore[arg-type]
    if fmt == "labelstudio" and labelstudio.is_labelstudio(data):
        return labelstudio.read(target, data)  # type: ignore[arg-type]
    raise ValueError(f"{path}: not a {FORMATS[fmt]} file (looks like: {found})")
