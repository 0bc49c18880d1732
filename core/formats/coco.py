"""COCO-style JSON with image-level categories: ``images``, ``categories`` and ``annotations``
that name an ``image_id`` and a ``category_id`` (boxes, if any, are ignored; an annotation with a
``caption`` gives the image's text). Image ``file_name`` values are relative to the JSON file's
folder (or its ``data/`` or ``images/`` sub-folder, as FiftyOne and COCO lay them out). The
export adds ``split``, ``text`` and ``tags`` fields to each image, which COCO readers ignore.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.formats.common import ForeignRows, relative_to_json, row_labels

SUBDIRS = ("data", "images")


def is_coco(data: object) -> bool:
    """Whether parsed JSON looks like COCO (``images`` and ``categories`` lists)."""
    return isinstance(data, dict) and isinstance(data.get("images"), list) and isinstance(data.get("categories"), list)


def read(path: Path, data: dict) -> ForeignRows:
    """Rows of a COCO JSON file (already parsed as ``data``)."""
    names = {c.get("id"): str(c.get("name", "")) for c in data["categories"] if isinstance(c, dict)}
    labels: dict[object, list[str]] = {}
    captions: dict[object, list[str]] = {}
    for a in data.get("annotations", []):
        if not isinstance(a, dict):
            continue
        if "caption" in a:
            captions.setdefault(a.get("image_id"), []).append(str(a["caption"]))
        if a.get("category_id") in names:
            labs = labels.setdefault(a.get("image_id"), [])
            if names[a["category_id"]] not in labs:
                labs.append(names[a["category_id"]])
    multilabel = any(len(v) > 1 for v in labels.values())
    images = [im for im in data["images"] if isinstance(im, dict)]
    first = str(images[0].get("file_name", "")) if images else ""
    root, _ = relative_to_json(first, path.parent, *SUBDIRS)
    rows: list[dict[str, object]] = []
    for im in images:
        labs = labels.get(im.get("id"), [])
        row: dict[str, object] = {k: im[k] for k in ("split", "text", "tags") if k in im}
        row["image"] = str(im.get("file_name", ""))
        if captions.get(im.get("id")) and not row.get("text"):
            row["text"] = " ".join(captions[im.get("id")])
        row["labels" if multilabel else "label"] = labs if multilabel else (labs[0] if labs else "")
        rows.append(row)
    return ForeignRows(root, rows, path.name)


def write(rows: list[dict], out: Path, *, prefix: str) -> None:
    """Write ``out`` (image paths through ``prefix``, see :func:`core.labels.export.images_link`)."""
    classes = sorted({lab for r in rows for lab in row_labels(r)})
    cat_id = {c: i + 1 for i, c in enumerate(classes)}
    images, annotations = [], []
    for i, r in enumerate(rows, start=1):
        extra = {k: r[k] for k in ("split", "text", "tags") if r.get(k)}
        images.append({"id": i, "file_name": prefix + str(r["image"]), **extra})
        for lab in row_labels(r):
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": cat_id[lab]})
    data = {
        "info": {"description": "exported by Pixel Context (image-level categories)"},
        "images": images,
        "categories": [{"id": cat_id[c], "name": c, "supercategory": c.split("/")[0]} for c in classes],
        "annotations": annotations,
    }
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
