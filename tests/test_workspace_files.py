"""Add-on models and cached files are written through :mod:`core.workspace_files`: whole, under the
workspace's lock, never leaving a half-written folder or a ``.partial`` behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.workspace import WorkspaceBusyError, WorkspaceError, open_workspace
from core.workspace_files import STAGING_MARK, addon_folder, cache_arrays, lock_path, workspace_lock, write_files
from tests.test_workspace_safety import _hold_lock


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _scratch(ws: Path) -> list[str]:
    return sorted(p.name for p in ws.iterdir() if p.name.endswith((".partial", ".replaced")))


@pytest.fixture
def ws_copy(extended_workspace: Path, tmp_path: Path) -> Path:
    """A copy of the session's workspace with semantic search and tag models (copied, never refitted)."""
    return shutil.copytree(extended_workspace, tmp_path / "ws")


def test_failed_search_fit_keeps_the_previous_models_and_holds_the_lock(ws_copy, monkeypatch):
    import core.retrieval.semantic as semantic
    from core.retrieval.model import RetrievalConfig

    before = _files(ws_copy / "retrieval")
    seen = {}

    def disk_full(search, r_max):  # the models are saved by now; the evaluation fails
        seen["lock"] = lock_path(ws_copy).read_text().strip()
        seen["staged"] = sorted(p.name for p in (ws_copy / "retrieval.partial").iterdir())
        seen["live"] = _files(ws_copy / "retrieval")
        raise OSError("No space left on device")

    monkeypatch.setattr(semantic, "evaluate_retrieval", disk_full)
    with pytest.raises(OSError, match="No space"):
        semantic.fit_retrieval(open_workspace(ws_copy), RetrievalConfig(epochs=2), r_max=10)
    assert seen["lock"] == str(os.getpid())  # written under the workspace's lock
    assert "database.safetensors" in seen["staged"] and seen["live"] == before  # into staging, not over the live models
    assert _files(ws_copy / "retrieval") == before and _scratch(ws_copy) == []
    assert lock_path(ws_copy).read_text() == ""  # released
    monkeypatch.undo()

    (ws_copy / "retrieval" / "v_stale.json").write_text("{}")  # a success replaces the folder, it does not merge
    ev = semantic.fit_retrieval(open_workspace(ws_copy), RetrievalConfig(epochs=2), r_max=10)
    assert not (ws_copy / "retrieval" / "v_stale.json").exists() and _scratch(ws_copy) == []
    stored = semantic.open_retrieval(open_workspace(ws_copy)).evaluation
    assert {m: stored[m]["ndcg_auc"] for m in semantic.METHODS} == {m: ev[m]["ndcg_auc"] for m in semantic.METHODS}


def test_failed_tag_fit_keeps_the_previous_models(ws_copy, monkeypatch):
    import core.tags.annotate as annotate
    from core.tags.models import TagModelConfig

    before = _files(ws_copy / "tags")
    real, calls = annotate.evaluate, []

    def fails_second(*args, **kwargs):  # after the first model is saved
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(annotate, "evaluate", fails_second)
    with pytest.raises(KeyboardInterrupt):
        annotate.fit_tag_models(open_workspace(ws_copy), settings=((3, 6),), config=TagModelConfig(epochs=2))
    assert len(calls) == 2 and _files(ws_copy / "tags") == before and _scratch(ws_copy) == []
    assert annotate.fitted_settings(open_workspace(ws_copy)) == [(3, 6), (6, 12)]


def test_addon_fits_refuse_while_another_process_writes(ws_copy):
    from core.labels.oof import OOF_DIR, out_of_fold
    from core.predictions import attach
    from core.retrieval.semantic import fit_retrieval
    from core.tags.annotate import fit_tag_models

    before = _files(ws_copy)
    ws = open_workspace(ws_copy)
    holder = _hold_lock(ws_copy)
    try:
        with pytest.raises(WorkspaceBusyError, match=f"process {holder.pid}"):
            fit_retrieval(ws)
        with pytest.raises(WorkspaceBusyError):
            fit_tag_models(ws)
        csv = ws_copy.parent / "preds.csv"
        csv.write_text("item,label,score\n" + "".join(f"{i},{ws.labels[0]},0.9\n" for i in ws.items["item"]))
        with pytest.raises(WorkspaceBusyError):
            attach(ws, csv, "mine")
        proba = out_of_fold(ws, "linear")  # the cache is skipped, the answer is not
        assert proba.shape == (len(ws.items), len(ws.labels))
    finally:
        holder.kill()
        holder.wait()
    assert _files(ws_copy) == before
    np.testing.assert_array_equal(out_of_fold(ws, "linear"), proba)  # now cached
    assert [p.name for p in (ws_copy / OOF_DIR).iterdir()] == ["linear.safetensors"]


def test_killed_addon_fit_and_interrupted_swap_are_cleaned_up(ws_copy):
    before = _files(ws_copy / "retrieval")
    (ws_copy / "retrieval").rename(ws_copy / "retrieval.replaced")  # killed between the two renames
    staging = ws_copy / "tags.partial"  # killed while fitting
    staging.mkdir()
    (staging / STAGING_MARK).write_text("123\n")
    (staging / "ltn_3_6.safetensors").write_bytes(b"half written")
    with workspace_lock(ws_copy):
        pass
    assert _files(ws_copy / "retrieval") == before and _scratch(ws_copy) == []


def test_a_partial_folder_the_product_did_not_make_is_kept(ws_copy):
    staging = ws_copy / "tags.partial"
    staging.mkdir()
    (staging / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceError, match="not made by this product"), addon_folder(ws_copy, "tags"):
        pass
    assert (staging / "notes.txt").read_text() == "mine" and (ws_copy / "tags" / "config.json").is_file()


def test_refit_carry_over_skips_scratch_folders(ws_copy, tmp_path):
    from tests.test_workspace_safety import _copy

    old = _copy(ws_copy, tmp_path / "new.replaced")  # a refit killed after moving the old workspace aside
    (old / "retrieval.partial").mkdir()
    (old / "retrieval.partial" / STAGING_MARK).write_text("1\n")
    new = _copy(ws_copy, tmp_path / "new")
    shutil.rmtree(new / "retrieval")
    with workspace_lock(new):
        pass
    assert (new / "retrieval" / "config.json").is_file() and _scratch(new) == [] and not old.exists()


def test_names_outside_the_known_set_are_refused(ws_copy, tmp_path):
    for name in ("generator", "classifiers", "../retrieval", "oof"):
        with pytest.raises(ValueError, match="unknown add-on"), addon_folder(ws_copy, name):
            pass
    with pytest.raises(ValueError, match="unknown workspace folder"):
        write_files(ws_copy, "classifiers", {"x.json": lambda p: p.write_text("{}")})
    for bad in ("../manifest.json", ".hidden", "x.partial"):
        with pytest.raises(ValueError, match="plain file names"):
            write_files(ws_copy, "oof", {bad: lambda p: p.write_text("{}")})
    (tmp_path / "mine").mkdir()
    with pytest.raises(WorkspaceError, match="not a fitted"):
        cache_arrays(tmp_path / "mine", "oof", "x.safetensors", {"a": np.zeros(2)})
    with pytest.raises(WorkspaceError, match="not a fitted"), addon_folder(tmp_path / "mine", "retrieval"):
        pass
    assert list((tmp_path / "mine").iterdir()) == []


def test_a_failed_file_write_leaves_the_old_file(ws_copy):
    write_files(ws_copy, "predictions", {"a.json": lambda p: p.write_text('{"v": 1}')})

    def broken(p: Path) -> None:
        p.write_text('{"v": ')
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_files(ws_copy, "predictions", {"a.json": broken})
    assert [p.name for p in (ws_copy / "predictions").iterdir()] == ["a.json"]
    assert (ws_copy / "predictions" / "a.json").read_text() == '{"v": 1}'


def test_a_killed_retrain_is_cleaned_up(ws_copy):
    before = _files(ws_copy / "classifiers")
    (ws_copy / "classifiers").rename(ws_copy / "classifiers.old")  # killed between commit_retrain's renames
    (ws_copy / "classifiers.new").mkdir()
    (ws_copy / "classifiers.new" / "baseline.safetensors").write_bytes(b"half written")
    with workspace_lock(ws_copy):
        pass
    assert _files(ws_copy / "classifiers") == before
    assert not (ws_copy / "classifiers.old").exists() and not (ws_copy / "classifiers.new").exists()
    ws = open_workspace(ws_copy)
    assert ws.classifiers["baseline"].predict_proba(ws.visual[:2]).shape == (2, len(ws.labels))


def _stage_retrain(ws: Path) -> dict:
    """What a retrain stages before its commit mark: new classifiers, predictions, items, manifest."""
    import json

    shutil.copytree(ws / "classifiers", ws / "classifiers.new")
    (ws / "classifiers.new" / "retrained.txt").write_text("new")
    for name in ("predictions.safetensors", "items.parquet"):
        shutil.copy(ws / name, ws / (name + ".retrain"))
    manifest = json.loads((ws / "manifest.json").read_text())
    manifest["retrains"] = [*manifest.get("retrains", []), {"at": "now"}]
    (ws / "manifest.json.retrain").write_text(json.dumps(manifest))
    return manifest


def test_a_retrain_killed_after_its_commit_mark_is_finished(ws_copy):
    import json

    from core.workspace_files import RETRAIN_MARK

    manifest = _stage_retrain(ws_copy)
    (ws_copy / RETRAIN_MARK).write_text("staged\n")
    (ws_copy / "classifiers").rename(ws_copy / "classifiers.old")  # killed between the classifier renames
    with workspace_lock(ws_copy):
        pass
    assert (ws_copy / "classifiers" / "retrained.txt").is_file()
    assert json.loads((ws_copy / "manifest.json").read_text()) == manifest
    leftovers = [p.name for p in ws_copy.iterdir() if p.name.endswith(".retrain") or p.name in (RETRAIN_MARK, "classifiers.old")]
    assert leftovers == []
    ws = open_workspace(ws_copy)
    assert ws.classifiers["baseline"].predict_proba(ws.visual[:2]).shape == (2, len(ws.labels))


def test_a_retrain_killed_before_its_commit_mark_leaves_the_old_workspace(ws_copy):
    before = {name: (ws_copy / name).read_bytes() for name in ("manifest.json", "items.parquet", "predictions.safetensors")}
    classifiers = _files(ws_copy / "classifiers")
    _stage_retrain(ws_copy)  # no commit mark: the retrain never finished staging
    with workspace_lock(ws_copy):
        pass
    assert {name: (ws_copy / name).read_bytes() for name in before} == before
    assert _files(ws_copy / "classifiers") == classifiers
    assert not [p.name for p in ws_copy.iterdir() if p.name.endswith(".retrain") or p.name == "classifiers.new"]
