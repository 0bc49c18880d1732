"""FiftyOne's image-classification directory format (``fiftyone.types.FiftyOneImageClassificationDataset``)::

    DIR/
        data/<uuid>.<ext>
        labels.json    {"classes": [...], "labels": {"<uuid>": <target>, ...}}

A target is an index into ``classes``, a label string (no ``classes``), a dict with ``label``
(and ``confidence``), a list of those (multi-label), or ``null`` (unlabelled). The export also
writes the product's columns (split, text, tags) under an extra ``pixctx`` key, which FiftyOne
ignores. :func:`to_fiftyone_dataset` builds a live ``fiftyone.Dataset`` when ``fiftyone`` is
installed (optional extra).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.formats.common import ForeignRows, flat_name, place_image, row_labels

LABELS = "labels.json"


def sniff(path: Path) -> bool:
    """A folder with ``data/`` and a ``labels.json`` holding ``labels`` as a mapping."""
    if not (path.is_dir() and (path / "data").is_dir() and (path / LABELS).is_file()):
        return False
    try:
        data = json.loads((path / LABELS).read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    return isinstance(data, dict) and isinstance(data.get("labels"), dict)


def _target_labels(target: object, classes: list[str] | None) -> list[str]:
    if target is None:
        return []
    if isinstance(target, list):
        return [lab for t in target for lab in _target_labels(t, classes)]
    if isinstance(target, dict):
        return _target_labels(target.get("label"), classes)
    if isinstance(target, int) and classes is not None and 0 <= target < len(classes):
        return [classes[target]]
    return [str(target)]


def read(path: Path) -> ForeignRows:
    """Rows of a FiftyOne image-classification directory."""
    data = json.loads((path / LABELS).read_text(encoding="utf-8"))
    classes = data.get("classes")
    extra = data.get("pixctx", {})
    files = {p.stem: p.name for p in sorted((path / "data").iterdir()) if p.is_file()}
    multilabel = any(isinstance(t, list) for t in data["labels"].values())
    rows: list[dict[str, object]] = []
    for uuid, target in data["labels"].items():
        labels = _target_labels(target, classes)
        row: dict[str, object] = {"image": files.get(uuid, uuid), **extra.get(uuid, {})}
        row["labels" if multilabel else "label"] = labels if multilabel else (labels[0] if labels else "")
        rows.append(row)
    return ForeignRows(path / "data", rows, LABELS)


def write(rows: list[dict], out: Path, *, root: Path, multilabel: bool) -> None:
    """Write a FiftyOne image-classification directory at ``out`` (images copied into ``data/``)."""
    classes = sorted({lab for r in rows for lab in row_labels(r)})
    index = {c: i for i, c in enumerate(classes)}
    labels, extra = {}, {}
    for r in rows:
        name = flat_name(str(r["image"]))
        uuid = Path(name).stem
        place_image(root / str(r["image"]), out / "data" / name)
        labs = [index[lab] for lab in row_labels(r)]
        labels[uuid] = labs if multilabel else (labs[0] if labs else None)
        extra[uuid] = {k: v for k, v in r.items() if k not in ("image", "label", "labels") and v not in ("", None)}
    (out / LABELS).write_text(json.dumps({"classes": classes, "labels": labels, "pixctx": extra}, indent=1), encoding="utf-8")


def to_fiftyone_dataset(path: str | Path, name: str | None = None):
    """A ``fiftyone.Dataset`` of an exported directory (needs ``pip install fiftyone``)."""
    try:
        import fiftyone as fo
    except ImportError as exc:
        raise ImportError("a FiftyOne dataset needs fiftyone: pip install 'pixctx[fiftyone]'") from exc
    return fo.Dataset.from_dir(dataset_dir=str(path), dataset_type=fo.types.FiftyOneImageClassificationDataset, name=name)
