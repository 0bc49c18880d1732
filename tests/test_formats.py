"""Dataset formats in and out: every format round-trips the corrected labels of a real demo subset."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from core.cli import main as cli
from core.data import load_dataset
from core.formats import FORMATS, sniff
from core.labels.export import ExportRefused, export_dataset, is_previous_export
from core.labels.session import current_labels, open_label_store
from core.workspace import open_workspace
from tests.conftest import quick_fit


@pytest.fixture
def ws_copy(fitted_workspace, tmp_path):
    dest = tmp_path / "ws"
    shutil.copytree(fitted_workspace, dest)
    return open_workspace(dest)


def _digest(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _pairs(items, labels) -> Counter:
    """(image content, labels) pairs: independent of the names a format gives the images."""
    return Counter((_digest(p), tuple(sorted(labs))) for p, labs in zip(items["path"], labels, strict=True))


@pytest.mark.parametrize("fmt,name", [(f, n) for f in FORMATS for n in (["out.parquet", "out"] if f == "parquet" else ["out"])])
def test_export_and_read_back_gives_the_same_labels(ws_copy, tmp_path, fmt, name):
    ws = ws_copy
    store = open_label_store(ws)
    store.set_labels(str(ws.items.at[0, "item"]), "tools/weapons", user="ann")  # a correction travels
    suffix = {"manifest": ".csv", "coco": ".json", "labelstudio": ".json"}.get(fmt, "")
    out = export_dataset(ws, store, tmp_path / "export" / (name + suffix if name == "out" else name), fmt)
    assert is_previous_export(out)
    assert sniff(out) == fmt
    back = load_dataset(out)
    assert not back.issues, back.issues[:3]
    assert _pairs(back.items, back.items["labels"]) == _pairs(ws.items, current_labels(ws, store))
    if fmt not in ("folder", "fiftyone"):  # these two formats have no place for a split
        by_digest = {_digest(p): s for p, s in zip(ws.items["path"], ws.items["split"], strict=True)}
        assert [by_digest[_digest(p)] for p in back.items["path"]] == list(back.items["split"])
    with pytest.raises(ExportRefused, match="--overwrite"):
        export_dataset(ws, store, out, fmt)
    assert export_dataset(ws, store, out, fmt, overwrite=True) == out


def test_fiftyone_directory_as_fiftyone_writes_it(small_dataset, tmp_path):
    rows = list(csv.DictReader((small_dataset / "manifest.csv").open(encoding="utf-8")))[:12]
    classes = sorted({r["label"] for r in rows})
    (tmp_path / "fo" / "data").mkdir(parents=True)
    labels = {}
    for i, r in enumerate(rows):
        uuid = f"{i:08x}-aaaa"
        shutil.copy(small_dataset / r["image"], tmp_path / "fo" / "data" / (uuid + Path(r["image"]).suffix))
        labels[uuid] = classes.index(r["label"]) if i % 3 else {"label": r["label"], "confidence": None}
    labels["missing-file"] = 0
    (tmp_path / "fo" / "labels.json").write_text(json.dumps({"classes": classes, "labels": labels}))
    ds = load_dataset(tmp_path / "fo")
    assert Counter(lab for labs in ds.items["labels"] for lab in labs) == Counter(r["label"] for r in rows)
    assert [i.reason for i in ds.issues] == ["image file not found"]


def test_imagefolder_with_splits_and_metadata(small_dataset, tmp_path):
    rows = list(csv.DictReader((small_dataset / "manifest.csv").open(encoding="utf-8")))[:10]
    root = tmp_path / "hf"
    meta = []
    for r in rows:
        rel = Path(r["split"]) / r["label"] / Path(r["image"]).name
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(small_dataset / r["image"], root / rel)
        meta.append({"file_name": rel.as_posix(), "text": r["text"]})
    (root / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    assert sniff(root) == "imagefolder"
    ds = load_dataset(root)
    assert sorted(ds.items["split"]) == sorted(r["split"] for r in rows)
    assert sorted(labs[0] for labs in ds.items["labels"]) == sorted(r["label"] for r in rows)
    assert sorted(ds.items["text"]) == sorted(r["text"] for r in rows)


def test_labelstudio_latest_annotation_wins(small_dataset, tmp_path):
    rows = list(csv.DictReader((small_dataset / "manifest.csv").open(encoding="utf-8")))[:3]
    for r in rows:
        (tmp_path / r["image"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(small_dataset / r["image"], tmp_path / r["image"])

    def choice(label: str, cancelled: bool = False) -> dict:
        return {"was_cancelled": cancelled, "result": [{"type": "choices", "value": {"choices": [label]}}]}

    tasks = [
        {"id": 1, "data": {"image": f"/data/local-files/?d={rows[0]['image']}"}, "annotations": [choice("a"), choice("b")]},
        {"id": 2, "data": {"image": rows[1]["image"]}, "annotations": [choice("c"), choice("x", cancelled=True)]},
        {"id": 3, "data": {"image": rows[2]["image"], "text": "hello"}, "annotations": [], "predictions": [choice("d")]},
    ]
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(tasks))
    assert sniff(path) == "labelstudio"
    ds = load_dataset(path)
    assert [labs[0] for labs in ds.items["labels"]] == ["b", "c", "d"] and ds.items["text"].iloc[2] == "hello"


def test_unknown_format_and_wrong_format_are_named(small_dataset):
    with pytest.raises(ValueError, match="unknown format"):
        load_dataset(small_dataset, format="yaml")
    with pytest.raises(ValueError, match="not a FiftyOne"):
        load_dataset(small_dataset, format="fiftyone")


@pytest.mark.slow
def test_fit_reads_fiftyone_and_imagefolder_exports_directly(ws_copy, tmp_path, cache_dir):
    ws = ws_copy
    store = open_label_store(ws)
    fo = export_dataset(ws, store, tmp_path / "fo", "fiftyone")
    assert cli(["labels", "export", "--workspace", str(ws.path), "--out", str(tmp_path / "hf"), "--format", "imagefolder"]) == 0
    for data in (fo, tmp_path / "hf"):
        refit = quick_fit(data, tmp_path / f"ws-{data.name}", cache_dir, epochs=3, max_epochs=10)
        assert refit.manifest["dataset"]["n_items"] == len(ws.items)
        assert sorted(refit.labels) == sorted(ws.labels)
