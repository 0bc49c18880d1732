"""`labels export` never overwrites a file the product did not create (issue #14, item 3)."""

from __future__ import annotations

import os
import shutil

import pytest

from core.cli import main as cli
from core.data import load_dataset
from core.labels.export import ExportRefused, export_log, export_manifest, is_previous_export, mark_path
from core.labels.session import open_label_store
from core.workspace import open_workspace


@pytest.fixture
def ws_copy(fitted_workspace, tmp_path):
    dest = tmp_path / "ws"
    shutil.copytree(fitted_workspace, dest)
    return open_workspace(dest)


def test_refuses_the_datasets_own_manifest_even_with_overwrite(ws_copy, small_dataset):
    ws = ws_copy
    store = open_label_store(ws)
    manifest = small_dataset / "manifest.csv"
    before = manifest.read_bytes()
    for overwrite in (False, True):
        with pytest.raises(ExportRefused, match="dataset's own manifest"):
            export_manifest(ws, store, manifest, overwrite=overwrite)
    with pytest.raises(ExportRefused, match="dataset's own manifest"):
        export_manifest(ws, store, small_dataset / "manifest.jsonl")  # a sibling manifest the loader would prefer
    with pytest.raises(ExportRefused, match="dataset's own folder"):
        export_log(store, small_dataset, ws=ws)
    assert manifest.read_bytes() == before and not (small_dataset / "manifest.jsonl").exists()


def test_refuses_any_existing_user_file(ws_copy, tmp_path):
    ws = ws_copy
    store = open_label_store(ws)
    mine = tmp_path / "theirs" / "manifest.csv"  # another dataset's manifest
    mine.parent.mkdir()
    mine.write_text("image,label\na.png,cat\n")
    for overwrite in (False, True):
        with pytest.raises(ExportRefused, match="not written by `labels export`"):
            export_manifest(ws, store, mine, overwrite=overwrite)
        with pytest.raises(ExportRefused, match="not written by `labels export`"):
            export_log(store, mine, overwrite=overwrite)
    assert mine.read_text() == "image,label\na.png,cat\n"
    assert not (mine.parent / "manifest_images").exists()  # nothing else was written either


def test_previous_export_needs_overwrite_and_must_be_unchanged(ws_copy, tmp_path):
    ws = ws_copy
    store = open_label_store(ws)
    out = export_manifest(ws, store, tmp_path / "out" / "corrected.csv")
    assert is_previous_export(out) and mark_path(out).is_file()
    with pytest.raises(ExportRefused, match="--overwrite"):
        export_manifest(ws, store, out)
    store.set_labels(str(ws.items.at[0, "item"]), "tools/weapons", user="ann")
    export_manifest(ws, store, out, overwrite=True)
    assert len(load_dataset(out).items) == len(ws.items)
    with out.open("a") as fh:  # the user edited it: theirs now
        fh.write("extra.png,food/fruit,,,train\n")
    assert not is_previous_export(out)
    with pytest.raises(ExportRefused, match="not written by"):
        export_manifest(ws, store, out, overwrite=True)


def test_never_replaces_a_users_images_link_or_folder(ws_copy, tmp_path):
    ws = ws_copy
    store = open_label_store(ws)
    elsewhere = tmp_path / "other-images"
    elsewhere.mkdir()
    link = tmp_path / "a_images"
    os.symlink(elsewhere, link, target_is_directory=True)
    with pytest.raises(ExportRefused, match="not a link to this dataset"):
        export_manifest(ws, store, tmp_path / "a.csv")
    assert link.is_symlink() and link.resolve() == elsewhere and not (tmp_path / "a.csv").exists()
    (tmp_path / "b_images").mkdir()
    (tmp_path / "b_images" / "keep.txt").write_text("mine")
    with pytest.raises(ExportRefused, match="not a link to this dataset"):
        export_manifest(ws, store, tmp_path / "b.csv")
    assert (tmp_path / "b_images" / "keep.txt").read_text() == "mine"


def test_cli_refuses_with_a_message(ws_copy, small_dataset, capsys):
    manifest = small_dataset / "manifest.csv"
    before = manifest.read_bytes()
    code = cli(["labels", "export", "--workspace", str(ws_copy.path), "--out", str(manifest), "--overwrite"])
    assert code == 2 and "dataset's own manifest" in capsys.readouterr().err
    assert manifest.read_bytes() == before
