"""A fit never deletes what it did not make, keeps the label history, locks, and reads damaged workspaces clearly.

Each test is a reproduction from issue #14 (items 1, 2, 5, 10), run on a small real subset of the demo.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from core.labels.session import open_label_store
from core.workspace import WorkspaceBusyError, WorkspaceError, open_workspace
from core.workspace_files import STAGING_MARK, lock_path, staging_path
from tests.conftest import ROOT, SMALL_LABELS, quick_fit, write_subset


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def _copy(src, dest):
    shutil.copytree(src, dest)
    return dest


# --- #14.1: fit must not delete a folder that is not a workspace -----------------------------------
def test_fit_refuses_a_folder_of_user_files(small_dataset, cache_dir, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.txt").write_text("four years of work")
    r = cli("fit", str(small_dataset), "--workspace", str(docs), "--cache-dir", str(cache_dir), "--no-maps")
    assert r.returncode == 2, r.stderr
    assert "not a Pixel Context workspace" in r.stderr and str(docs) in r.stderr
    assert (docs / "thesis.txt").read_text() == "four years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "docs.lock"]  # no .partial left behind


def test_fit_refuses_the_dataset_folder_and_its_parents(small_dataset, cache_dir, tmp_path):
    data = _copy(small_dataset, tmp_path / "data")
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    for target in (data, tmp_path):
        with pytest.raises(WorkspaceError, match="dataset folder"):
            quick_fit(data, target, cache_dir)
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_fit_into_an_empty_folder_works(small_dataset, cache_dir, tmp_path):
    (tmp_path / "ws").mkdir()
    ws = quick_fit(small_dataset, tmp_path / "ws", cache_dir)
    assert ws.metrics["baseline"]["top1"] > 1 / 6


# --- #14.2: a refit keeps the label history, the user's files and still-valid add-ons ----------------
@pytest.mark.slow
def test_refit_keeps_labels_user_files_and_valid_addons(fitted_workspace, small_dataset, cache_dir, tmp_path):
    from core.retrieval.model import RetrievalConfig
    from core.retrieval.semantic import fit_retrieval, has_retrieval, open_retrieval

    ws = open_workspace(_copy(fitted_workspace, tmp_path / "ws"))
    store = open_label_store(ws)
    item = str(ws.items.at[0, "item"])
    store.set_labels(item, SMALL_LABELS[1], user="alice")
    store.close()
    (ws.path / "notes.txt").write_text("mine")
    fit_retrieval(ws, RetrievalConfig(epochs=2), r_max=10)
    (ws.path / "oof").mkdir()
    (ws.path / "oof" / "multimodal.safetensors").write_bytes(b"stale cache of the old fit")

    new = quick_fit(small_dataset, ws.path, cache_dir, seed=1)  # same images, same backbone
    assert new.manifest["created"] >= ws.manifest["created"] and new.config.seed == 1
    history = open_label_store(new).history()
    assert [(c.item, c.new, c.user) for c in history] == [(item, [SMALL_LABELS[1]], "alice")]
    assert (new.path / "notes.txt").read_text() == "mine"
    assert has_retrieval(new) and len(open_retrieval(new).search(features=new.visual[0], k=3)) == 3
    assert not (new.path / "oof").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws", "ws.lock"]

    # other images: the retrieval models no longer describe the rows and are dropped; the labels stay
    other = write_subset(tmp_path / "other", SMALL_LABELS[:3], per_label=8)
    newer = quick_fit(other, ws.path, cache_dir)
    assert not has_retrieval(newer) and (newer.path / "labels.sqlite").is_file()


# --- #14.5: one writer at a time; stale locks and staging folders -----------------------------------
HOLD_LOCK = """
import sys, time
from core.workspace_files import workspace_lock
with workspace_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold_lock(ws) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(ws)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_writer_refuses_while_a_fit_holds_the_lock(fitted_workspace, small_dataset, cache_dir, tmp_path):
    from core.labels.retrain import retrain

    ws = open_workspace(_copy(fitted_workspace, tmp_path / "ws"))
    holder = _hold_lock(ws.path)
    try:
        assert lock_path(ws.path).read_text().strip() == str(holder.pid)
        with pytest.raises(WorkspaceBusyError, match=f"process {holder.pid}"):
            quick_fit(small_dataset, ws.path, cache_dir)
        with pytest.raises(WorkspaceBusyError):
            retrain(ws, open_label_store(ws))
        r = cli("fit", str(small_dataset), "--workspace", str(ws.path), "--cache-dir", str(cache_dir))
        assert r.returncode == 2 and "being written by another fit" in r.stderr
    finally:
        holder.kill()
        holder.wait()
    assert open_workspace(ws.path).manifest == ws.manifest  # untouched, still valid
    assert not staging_path(ws.path).exists()


def test_stale_lock_and_staging_of_a_killed_fit_are_taken_over(small_dataset, cache_dir, tmp_path):
    ws_path = tmp_path / "ws"
    holder = _hold_lock(ws_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock_path(ws_path).read_text().strip() == str(holder.pid)  # the dead writer's PID is still there
    partial = staging_path(ws_path)
    partial.mkdir()
    (partial / STAGING_MARK).write_text("123\n")
    (partial / "items.parquet").write_bytes(b"half written")
    ws = quick_fit(small_dataset, ws_path, cache_dir)
    assert ws.metrics["multimodal"]["top1"] > 1 / 6 and not partial.exists()


def test_a_partial_folder_the_product_did_not_make_is_kept(small_dataset, cache_dir, tmp_path):
    partial = staging_path(tmp_path / "ws")
    partial.mkdir()
    (partial / "draft.docx").write_text("user file")
    with pytest.raises(WorkspaceError, match="not made by a fit"):
        quick_fit(small_dataset, tmp_path / "ws", cache_dir)
    assert (partial / "draft.docx").read_text() == "user file"


def test_failed_fit_leaves_no_partial_and_keeps_the_old_workspace(fitted_workspace, cache_dir, tmp_path):
    ws = open_workspace(_copy(fitted_workspace, tmp_path / "ws"))
    one_label = write_subset(tmp_path / "one", SMALL_LABELS[:1], per_label=6)
    with pytest.raises(ValueError, match="at least 2 labels"):
        quick_fit(one_label, ws.path, cache_dir)
    assert not staging_path(ws.path).exists()
    assert open_workspace(ws.path).manifest == ws.manifest


def test_interrupted_swap_is_finished_by_the_next_writer(fitted_workspace, tmp_path):
    from core.workspace_files import workspace_lock

    ws_path = tmp_path / "ws"
    old = _copy(fitted_workspace, tmp_path / "ws.replaced")  # killed after moving the old workspace aside
    (old / "labels.sqlite").write_bytes(b"")
    with workspace_lock(ws_path):
        pass
    assert open_workspace(ws_path).manifest["created"] and (ws_path / "labels.sqlite").exists() and not old.exists()


# --- #14.10: a tampered workspace gives a clear error naming the file --------------------------------
def _tamper_manifest(ws_path, edit) -> None:
    path = ws_path / "manifest.json"
    m = json.loads(path.read_text())
    edit(m)
    path.write_text(json.dumps(m))


def test_unknown_format_is_refused_with_what_to_do(fitted_workspace, tmp_path):
    ws_path = _copy(fitted_workspace, tmp_path / "ws")
    _tamper_manifest(ws_path, lambda m: m.update(format=99))
    with pytest.raises(WorkspaceError, match="format 99") as err:
        open_workspace(ws_path)
    assert str(ws_path / "manifest.json") in str(err.value) and "fit it again" in str(err.value)
    r = cli("evaluate", "--workspace", str(ws_path))
    assert r.returncode == 2 and "format 99" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["config"].update(colour="blue"), "colour"),
        (lambda m: m["config"].pop("backbone"), "lacks backbone"),
        (lambda m: m["config"]["classifier"].update(depth=3), "depth"),
        (lambda m: m.pop("format"), "no 'format' key"),
    ],
)
def test_bad_config_keys_are_named(fitted_workspace, tmp_path, edit, message):
    ws_path = _copy(fitted_workspace, tmp_path / "ws")
    _tamper_manifest(ws_path, edit)
    with pytest.raises(WorkspaceError, match=message):
        open_workspace(ws_path)


def test_truncated_safetensors_names_the_file(fitted_workspace, tmp_path):
    ws_path = _copy(fitted_workspace, tmp_path / "ws")
    for name in ("arrays.safetensors", "classifiers/multimodal.safetensors"):
        path = ws_path / name
        path.write_bytes(path.read_bytes()[:200])
    ws = open_workspace(ws_path)
    with pytest.raises(WorkspaceError, match=r"arrays\.safetensors is damaged"):
        ws.visual  # noqa: B018
    with pytest.raises(WorkspaceError, match="classifiers"):
        ws.classifiers  # noqa: B018
    r = cli("predict", "--workspace", str(ws_path), str(ws.items.at[0, "path"]))
    assert r.returncode == 2 and "is damaged" in r.stderr and "Traceback" not in r.stderr


def test_missing_generator_is_not_called_imagenet(fitted_workspace, tmp_path):
    ws_path = _copy(fitted_workspace, tmp_path / "ws")
    shutil.rmtree(ws_path / "generator")
    with pytest.raises(WorkspaceError, match="generator is missing") as err:
        open_workspace(ws_path).generator  # noqa: B018
    assert "ImageNet" not in str(err.value)


def test_two_threads_fitting_one_workspace(small_dataset, cache_dir, tmp_path):
    """In one process (the app's threads), the second writer is refused too; the first one's workspace is valid."""
    import threading

    from core.workspace_files import workspace_lock

    errors: list[BaseException] = []
    started = threading.Event()

    def hold() -> None:
        with workspace_lock(tmp_path / "ws"):
            started.set()
            time.sleep(1.0)

    t = threading.Thread(target=hold)
    t.start()
    started.wait()
    try:
        quick_fit(small_dataset, tmp_path / "ws", cache_dir)
    except WorkspaceBusyError as exc:
        errors.append(exc)
    t.join()
    assert len(errors) == 1


def test_moved_dataset_is_read_from_its_new_folder(fitted_workspace, small_dataset, tmp_path):
    """A workspace whose dataset folder has moved (a clone elsewhere) reads the images from the
    folder it is told; without it the stored paths stay as they were."""
    import pandas as pd

    ws_dir = tmp_path / "ws"
    shutil.copytree(fitted_workspace, ws_dir)
    manifest = json.loads((ws_dir / "manifest.json").read_text())
    old_root = str(tmp_path / "gone" / "dataset")  # where the fit read it: no longer there
    items = pd.read_parquet(ws_dir / "items.parquet")
    items["path"] = [p.replace(manifest["dataset"]["root"], old_root) for p in items["path"]]
    items.to_parquet(ws_dir / "items.parquet")
    manifest["dataset"]["root"] = old_root
    (ws_dir / "manifest.json").write_text(json.dumps(manifest))

    moved = open_workspace(ws_dir, data_root=small_dataset)
    assert all(os.path.isfile(p) for p in moved.items["path"])
    assert all(p.startswith(str(small_dataset)) for p in moved.items["path"])
    assert not any(os.path.exists(p) for p in open_workspace(ws_dir).items["path"])
