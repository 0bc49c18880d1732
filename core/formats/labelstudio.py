"""Label Studio's JSON export of image-classification tasks::

    [{"id": 1, "data": {"image": "/data/local-files/?d=images/a.png", "text": "..."},
      "annotations": [{"result": [{"type": "choices", "from_name": "label", "to_name": "image",
                                   "value": {"choices": ["cat"]}}], "was_cancelled": false}]}]

A task's labels are the choices of its latest annotation that was not cancelled (or, without
one, of its first prediction). Image references are paths relative to the JSON file's folder, also
behind Label Studio's local-files prefix ``/data/local-files/?d=``; uploads (``/data/upload/...``)
and URLs are not on this machine and are reported as missing. The export writes one
annotation per task (``split`` and ``tags`` in ``data``), importable as tasks with annotations.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

from core.formats.common import ForeignRows, row_labels

LOCAL = "/data/local-files/?d="


def is_labelstudio(data: object) -> bool:
    """Whether parsed JSON is a list of tasks with ``data`` and annotations or predictions."""
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return False
    return isinstance(data[0].get("data"), dict) and ("annotations" in data[0] or "predictions" in data[0])


def _choices(results: object) -> list[str]:
    out: list[str] = []
    for res in results if isinstance(results, list) else []:
        if isinstance(res, dict) and res.get("type") == "choices":
            out += [str(c) for c in res.get("value", {}).get("choices", [])]
    return out


def _task_labels(task: dict) -> list[str]:
    done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if done:
        return _choices(done[-1].get("result"))
    preds = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
    return _choices(preds[0].get("result")) if preds else []


def _image_ref(value: object) -> str:
    ref = str(value or "")
    return unquote(ref[len(LOCAL) :]) if ref.startswith(LOCAL) else ref


def read(path: Path, data: list) -> ForeignRows:
    """Rows of a Label Studio JSON export (already parsed as ``data``)."""
    tasks = [t for t in data if isinstance(t, dict) and isinstance(t.get("data"), dict)]
    image_key = next((k for k in ("image", "img", "image_url") if k in tasks[0]["data"]), "image") if tasks else "image"
    multilabel = any(len(_task_labels(t)) > 1 for t in tasks)
    rows: list[dict[str, object]] = []
    for t in tasks:
        d = t["data"]
        labs = _task_labels(t)
        row: dict[str, object] = {k: v for k, v in d.items() if k != image_key and isinstance(v, (str, int, float))}
        row["text"] = str(d.get("text") or d.get("caption") or "")
        row["image"] = _image_ref(d.get(image_key))
        row["labels" if multilabel else "label"] = labs if multilabel else (labs[0] if labs else "")
        rows.append(row)
    return ForeignRows(path.parent, rows, path.name)


def write(rows: list[dict], out: Path, *, prefix: str) -> None:
    """Write ``out`` as Label Studio tasks with one annotation each (images through ``prefix``)."""
    tasks = []
    for i, r in enumerate(rows, start=1):
        data = {k: v for k, v in r.items() if k not in ("image", "label", "labels") and v not in ("", None)}
        data["image"] = LOCAL + prefix + str(r["image"])
        result = [{"type": "choices", "from_name": "label", "to_name": "image", "value": {"choices": row_labels(r)}}]
        tasks.append({"id": i, "data": data, "annotations": [{"result": result if row_labels(r) else []}]})
    out.write_text(json.dumps(tasks, indent=1, ensure_ascii=False), encoding="utf-8")
