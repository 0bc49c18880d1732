from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from core.data.manifest import assign_splits, load_dataset
from tests.conftest import DEMO, demo_rows


def _img(path: Path, color=(200, 10, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), color).save(path)


def test_demo_manifest_loads_as_is():
    ds = load_dataset(DEMO)
    prov = json.loads((DEMO / "PROVENANCE.json").read_text())
    assert len(ds) == prov["counts"]["images"] and not ds.issues
    assert len(ds.label_names) == prov["counts"]["labels"]
    assert set(ds.items["split"]) == {"train", "test"}
    assert ds.meta_columns == ["folder"]


def test_validation_skips_and_reports_bad_rows(tmp_path):
    _img(tmp_path / "a.png")
    _img(tmp_path / "b.png")
    (tmp_path / "empty.png").write_bytes(b"")
    outside = tmp_path.parent / "outside.png"
    _img(outside)
    (tmp_path / "m.csv").write_text(
        "image,label,text,tags,split,source\n"
        "a.png,cat,a cat,pet;animal,train,web\n"
        "a.png,cat,dup,,train,web\n"
        "missing.png,cat,,,train,web\n"
        "empty.png,dog,x,,train,web\n"
        "../outside.png,dog,x,,train,web\n"
        "b.png,,,,train,web\n"
        "b.png,,only text,,bogus,web\n"
    )
    ds = load_dataset(tmp_path / "m.csv")
    reasons = {i.row: i.reason for i in ds.issues}
    assert "duplicate of row 2" in reasons[3]
    assert "not found" in reasons[4]
    assert "0 bytes" in reasons[5]
    assert "escapes" in reasons[6]
    assert "neither a label nor a text" in reasons[7]
    assert "unknown split" in reasons[8]
    assert list(ds.items["item"]) == ["a.png", "b.png"]
    assert ds.items.loc[0, "tags"] == ["pet", "animal"] and ds.items.loc[0, "source"] == "web"
    assert ds.items.loc[1, "labels"] == [] and ds.items.loc[1, "text"] == "only text"  # unlabelled but kept


def test_jsonl_multilabel(tmp_path):
    _img(tmp_path / "x.png")
    _img(tmp_path / "y.png")
    lines = [
        {"image": "x.png", "labels": ["sky", "sea"], "text": "beach"},
        {"image": "y.png", "labels": "sky;cloud"},
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(d) for d in lines) + "\n{broken\n")
    ds = load_dataset(tmp_path / "m.jsonl")
    assert ds.multilabel and ds.label_names == ["cloud", "sea", "sky"]
    assert ds.items.loc[0, "labels"] == ["sky", "sea"]
    assert ds.issues and "invalid JSON" in ds.issues[0].reason


def test_image_folder_layout_with_sidecars(tmp_path):
    rows = [r for r in demo_rows() if r["label"] in ("food/fruit", "animals/birds")][:6]
    for r in rows:
        dest = tmp_path / r["label"].split("/")[-1] / Path(r["image"]).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEMO / r["image"], dest)
        dest.with_suffix(".txt").write_text(r["text"])
    ds = load_dataset(tmp_path)
    assert len(ds) == 6 and set(ds.label_names) <= {"fruit", "birds"}
    assert all(ds.items["text"].str.len() > 0)


def test_user_files_are_never_modified(tmp_path):
    _img(tmp_path / "a.png")
    (tmp_path / "manifest.csv").write_text("image,label\na.png,cat\n")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    load_dataset(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_assign_splits_is_stratified_and_deterministic():
    labels = [["a"]] * 10 + [["b"]] * 5 + [[]]
    s1 = assign_splits(labels, [""] * 16, seed=3)
    assert s1 == assign_splits(labels, [""] * 16, seed=3)
    assert s1[:10].count("test") == 2 and s1[10:15].count("test") == 1 and s1[15] == "train"


def test_missing_image_column_is_a_clear_error(tmp_path):
    (tmp_path / "m.csv").write_text("file,label\na.png,cat\n")
    with pytest.raises(ValueError, match="no 'image' column"):
        load_dataset(tmp_path / "m.csv")


def test_invisible_text_tags_and_labels_count_as_none(tmp_path):
    """A caption of zero-width spaces (or a byte-order mark) says nothing: before, such a row was
    kept as captioned and got a caption label from it."""
    for name in ("a.png", "b.png", "c.png"):
        _img(tmp_path / name)
    (tmp_path / "m.csv").write_text(
        "image,label,text,tags,split\n"
        "a.png,cat,\u200b\u200b,\ufeff;pet,train\n"
        "b.png,,\u200b \u2060,\u200b,train\n"
        "c.png,\u200b,a dog,,train\n",
        encoding="utf-8",
    )
    ds = load_dataset(tmp_path / "m.csv")
    assert ds.items.loc[0, "text"] == "" and ds.items.loc[0, "tags"] == ["pet"]
    assert [i.row for i in ds.issues if "neither a label nor a text" in i.reason] == [3]
    assert list(ds.items["item"]) == ["a.png", "c.png"] and ds.items.loc[1, "labels"] == []
